"""tables.show: what a reader sees in a table (headers in words, no index, fixed decimals)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ncf_vs_mf import tables


def test_headers_decimals_thousands_and_missing_values():
    frame = pd.DataFrame({"model": ["MF", "MLP"], "hr10": [0.71234, math.nan],
                          "users": [128000, 4000], "seeds": [8.0, math.nan]})
    table = tables.show(frame)
    assert table.headers == ["Model", "HR@10", "Users M", "Seeds"]
    assert table.rows == [["MF", "0.7123", "128,000", "8"], ["MLP", "—", "4,000", "—"]]
    assert table.numeric == [False, True, True, True]


def test_html_has_no_index_escapes_text_and_scrolls():
    html = tables.show(pd.DataFrame({"Name": ["a<b"], "hr10": [0.5]}), decimals=2)._repr_html_()
    assert html.startswith('<div class="book-table-scroll"><table class="book-table">')
    captioned = tables.show(pd.DataFrame({"hr10": [0.5]}), caption="A & B")._repr_html_()
    assert captioned.startswith('<p class="book-table-caption">A &amp; B</p><div class=')
    assert "a&lt;b" in html and "<td class=\"num\">0.50</td>" in html
    assert html.count("<tr>") == 2  # the header row and one body row: no index column


def test_only_long_text_columns_may_wrap():
    frame = pd.DataFrame({"Model": ["iALS", "SLIM"],
                          "Setting": ["factors=192 iterations=12 reg=100 unobserved_weight=0.1",
                                      "alpha=0.003"], "hr10": [0.7, 0.6]})
    table = tables.show(frame)
    assert table.wrap == [False, True, False]
    html = table._repr_html_()
    assert html.count('<td class="wrap">') == 2 and "<th class=\"wrap\">" not in html


def test_variable_names_need_a_header():
    with pytest.raises(ValueError, match="'hr10_diff_ncf_rule' has no header"):
        tables.show(pd.DataFrame({"hr10_diff_ncf_rule": [0.1]}))
    shown = tables.show(pd.DataFrame({"hr10_diff_ncf_rule": [0.1]}),
                        headers={"hr10_diff_ncf_rule": "MF minus NCF's rule"})
    assert shown.headers == ["MF minus NCF's rule"]


def test_per_column_decimals_and_index():
    frame = pd.DataFrame({"lr": [0.002], "hr10": [0.7]}, index=pd.Index([64], name="dim"))
    table = tables.show(frame, decimals={"lr": 3}, index=True)
    assert table.headers == ["d", "Learning rate", "HR@10"]
    assert table.rows == [["64", "0.002", "0.7000"]]


@pytest.mark.parametrize("value, decimals, text", [
    (None, None, "—"), (pd.NA, None, "—"), (math.inf, 2, "∞"), (True, None, "yes"),
    (1234567, None, "1,234,567"), (0.000123, None, "0.000123"), (1234.5678, 1, "1,234.6"),
    (12.0, None, "12"), ("text", None, "text"),
])
def test_format_value(value, decimals, text):
    assert tables.format_value(value, decimals) == text


def test_plain_text_is_aligned_for_terminals():
    text = repr(tables.show(pd.DataFrame({"model": ["MF", "NeuMF"], "hr10": [0.7, 0.69]})))
    assert text.splitlines() == ["Model   HR@10", "MF     0.7000", "NeuMF  0.6900"]
