"""Readers of the IBM AML input files: transactions, accounts, laundering patterns.

Public surface: :func:`find_inputs`, :func:`read_transactions` (a :class:`TransactionReader`
yielding typed Polars batches), :func:`read_accounts`, :func:`read_patterns`,
:func:`match_patterns`; the parse by byte ranges: :func:`plan_ranges`, :func:`parse_range`,
:func:`write_quarantine`. Validation, the byte-block splitting and the fast path are private.
See docs/INPUT.md for what is accepted.
"""
from amlgraph.ingest._patterns import match_pattern_lines, match_patterns, read_patterns
from amlgraph.ingest._ranges import RangePlan, RangeResult, parse_range, plan_ranges, write_quarantine
from amlgraph.ingest._rates import RATES_HEADER, read_rates
from amlgraph.ingest._reader import (
    ON_BAD_ROWS, QUARANTINE_COLUMNS, InputFiles, TransactionReader, find_inputs, read_accounts,
    read_transactions,
)

__all__ = ["ON_BAD_ROWS", "QUARANTINE_COLUMNS", "RATES_HEADER", "InputFiles", "RangePlan", "RangeResult",
           "TransactionReader", "find_inputs", "match_pattern_lines", "match_patterns", "parse_range",
           "plan_ranges", "read_accounts", "read_patterns", "read_rates", "read_transactions",
           "write_quarantine"]
