"""The amount text of the Multi-GNN export: datatable's fread of %f text, then its to_csv text,
reproduced column-wise (export/_dtfloat.py). Fixed cases always; against datatable itself, on
edge cases and random values, where datatable is installed."""
from __future__ import annotations

import numpy as np
import pytest

from amlgraph.export._dtfloat import datatable_text, fread_values, multignn_amount_text

# (value, datatable's to_csv text): the layouts, the switch to exponents, trailing zeros, digits
# that are not the shortest round trip, zeros, subnormals and infinities.
CASES = [
    (0.1, "0.1"), (1e-05, "1.0e-5"), (0.0001, "0.0001"), (0.00025, "0.00025"), (4.35e-06, "4.35e-6"),
    (123456789.0, "123456789.0"), (1e16, "1.0e+16"), (1e15, "1.0e+15"), (999999999999999.9,
                                                                         "999999999999999.9"),
    (10779.65, "10779.65"), (0.0, "0.0"), (-0.0, "-0.0"), (5.0, "5.0"), (100.0, "100.0"),
    (1e5, "100000.0"), (1234567890123.45, "1234567890123.45"), (2.0 ** 53, "9.007199254740992e+15"),
    (0.30000000000000004, "0.30000000000000004"), (96363701138.50279, "96363701138.5028"),
    (0.00015000000000000001, "0.00015"), (1.0000000000000001e+23, "1.0e+23"), (-2.5, "-2.5"),
    (5e-324, "0.0"), (1e300, "1.0e+300"), (1.5e-7, "1.5e-7"), (float("inf"), "inf"),
    (float("-inf"), "-inf"), (0.005473, "0.005473"), (12.0, "12.0"), (70.69, "70.69"),
]


def test_fixed_cases():
    values = np.array([v for v, _ in CASES])
    assert datatable_text(values).to_list() == [t for _, t in CASES]


def test_empty_and_one_value():
    assert datatable_text(np.zeros(0)).to_list() == []
    assert multignn_amount_text(np.zeros(0)).to_list() == []
    assert multignn_amount_text(np.array([1300.5])).to_list() == ["1300.5"]


def test_fread_reads_plain_amounts_exactly():
    values = np.round(np.random.default_rng(0).exponential(1e4, 10_000), 2)
    np.testing.assert_array_equal(fread_values(values), values)
    assert fread_values(np.array([123456789012345.67]))[0] == 123456789012345.67  # 21 digits: cut


@pytest.mark.skipif(np.finfo(np.longdouble).nmant != 63, reason="x86 80-bit long double only")
def test_fread_rounds_twice_as_datatable_does_on_x86():
    # long double(5473) * 1e-6L, then to double: one unit in the last place above 0.005473
    assert fread_values(np.array([0.005473]))[0] == 0.0054730000000000004
    assert multignn_amount_text(np.array([0.005473])).to_list() == ["0.005473"]


def _random_values(seed: int, n: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([
        np.round(rng.exponential(1e4, n) * 10.0 ** rng.integers(-3, 9, n), 2),  # amounts
        rng.exponential(1.0, n) * 10.0 ** rng.integers(-6, 13, n),  # many digits
        np.array([10.0 ** k for k in range(-8, 20)] + [1.5 * 10.0 ** k for k in range(-8, 20)]),
    ])


def test_to_csv_text_equals_datatables():
    dt = pytest.importorskip("datatable")
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2 ** 64 - 1, 50_000, dtype=np.uint64).view(np.float64)
    values = np.concatenate([_random_values(1, 50_000), bits[~np.isnan(bits)],
                             np.array([v for v, _ in CASES])])
    expected = dt.Frame(A=values).to_csv().split("\n")[1:1 + len(values)]
    assert datatable_text(values).to_list() == expected


def test_fread_equals_datatables():
    dt = pytest.importorskip("datatable")
    values = _random_values(2, 50_000)
    text = "A\n" + "\n".join("%f" % v for v in values) + "\n"
    expected = dt.fread(text=text)["A"].to_numpy().ravel()
    np.testing.assert_array_equal(fread_values(values).view(np.uint64), expected.view(np.uint64))
