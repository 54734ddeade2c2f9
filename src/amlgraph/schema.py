"""The IBM AML file formats and amlgraph's typed tables.

Everything that names a column lives here, so that the reader, the steps and the exports agree.
"""
from __future__ import annotations

# --- *_Trans.csv: 11 columns, read by position (the header repeats "Account") -----------------
TRANS_HEADER = (
    "Timestamp", "From Bank", "Account", "To Bank", "Account",
    "Amount Received", "Receiving Currency", "Amount Paid", "Payment Currency",
    "Payment Format", "Is Laundering",
)
# Our names for those positions (raw, typed output of the reader).
TRANS_COLUMNS = (
    "timestamp", "from_bank", "from_account", "to_bank", "to_account",
    "amount_received", "receiving_currency", "amount_paid", "payment_currency",
    "payment_format", "is_laundering",
)
TIMESTAMP_FORMAT = "%Y/%m/%d %H:%M"

# --- *_accounts.csv --------------------------------------------------------------------------
ACCOUNTS_HEADER = ("Bank Name", "Bank ID", "Account Number", "Entity ID", "Entity Name")
ACCOUNTS_COLUMNS = ("bank_name", "bank", "account", "entity_id", "entity_name")

# --- Vocabularies known from the IBM data sets ---------------------------------------------------
PAYMENT_FORMATS = ("ACH", "Bitcoin", "Cash", "Cheque", "Credit Card", "Reinvestment", "Wire")
CURRENCIES = (
    "Australian Dollar", "Bitcoin", "Brazil Real", "Canadian Dollar", "Euro", "Mexican Peso",
    "Ruble", "Rupee", "Saudi Riyal", "Shekel", "Swiss Franc", "UK Pound", "US Dollar", "Yen", "Yuan",
)
TYPOLOGIES = (
    "FAN-OUT", "FAN-IN", "CYCLE", "BIPARTITE", "STACK", "SCATTER-GATHER", "GATHER-SCATTER", "RANDOM",
)
CRYPTO = "Bitcoin"

# --- The pipeline's seven steps, in order: part of the public API (resume_from=...) ------------
STEPS = (
    "data_loaded", "node_features", "edge_features", "normalized", "imbalanced", "weights",
    "graph_created",
)

#: Steps that run only when the configuration asks for them (``--patterns``).
OPTIONAL_STEPS = ("pattern_features",)
#: Every step, optional ones included, in run order.
ALL_STEPS = STEPS[:3] + OPTIONAL_STEPS + STEPS[3:]

# Split codes stored in the `split` column.
TRAIN, VAL, TEST = 0, 1, 2
SPLIT_NAMES = ("train", "val", "test")


# --- Checkpoint names: the one naming rule of chunk checkpoints ---------------------------------
def chunk_name(step: str, index: int, phase: str | None = None) -> str:
    """``<step>_chunk_<index>``, or ``<step>_<phase>_chunk_<index>`` for a phase's chunks."""
    return f"{step}_{phase}_chunk_{index}" if phase else f"{step}_chunk_{index}"


def parse_chunk_name(name: str) -> tuple[str, int] | None:
    """``(owner, index)`` of a chunk checkpoint's name (owner: the step, or step_phase), else None."""
    head, sep, tail = name.rpartition("_chunk_")
    if sep and head and tail.isdigit() and tail == str(int(tail)):
        return head, int(tail)
    return None


def is_chunk_name(name: str) -> bool:
    """Whether ``name`` is a chunk checkpoint's name (see :func:`chunk_name`)."""
    return parse_chunk_name(name) is not None
