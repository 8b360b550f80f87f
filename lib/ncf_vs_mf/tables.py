"""Tables as a reader sees them: words as headers, no index, fixed decimals, "—" for missing.

Every table a chapter shows goes through :func:`show`, which turns a DataFrame into a small
HTML table (deterministic markup, so nbval can compare it) wrapped in a container that
scrolls sideways when the table is wider than the page column. Column names that look like
variables (``hr10_ci95``) must be given a header, from :data:`HEADERS` or the ``headers``
argument: a table never shows a variable name.
"""

from __future__ import annotations

import html
import math
import numbers
import re
from collections.abc import Mapping
from typing import Any

import pandas as pd

__all__ = ["HEADERS", "MISSING", "BookTable", "show", "format_value"]

MISSING = "—"
WRAP_LONGER_THAN = 32  # characters: a longer text value may wrap inside its cell

# Headers of the column names the library's summaries use, book-wide.
HEADERS: dict[str, str] = {
    "model": "Model",
    "dataset": "Dataset",
    "dim": "d",
    "embedding_dim": "d",
    "predictive_factor": "Predictive factor k",
    "seed": "Seed",
    "seeds": "Seeds",
    "epoch": "Epoch",
    "epochs": "Epochs",
    "lr": "Learning rate",
    "reg": "λ",
    "negatives": "Negatives m",
    "dtype": "Precision",
    "hr10": "HR@10",
    "ndcg10": "NDCG@10",
    "hr10_ci95": "HR@10 ± 95%",
    "ndcg10_ci95": "NDCG@10 ± 95%",
    "hr10_std": "HR@10 std",
    "ndcg10_std": "NDCG@10 std",
    "loss": "Training loss",
    "source": "Source",
    "seconds": "Seconds",
    "users": "Users M",
    "items": "Items",
    "width": "h / d",
    "hidden": "h",
    "parameters": "Parameters",
}

_VARIABLE = re.compile(r"^[a-z0-9_]+$")


def format_value(value: Any, decimals: int | None = None) -> str:
    """One cell as text: integers with thousands separators, floats with fixed decimals."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        if decimals is None:
            if value == int(value) and abs(value) < 1e15:
                return f"{int(value):,}"
            return f"{value:,.4g}" if abs(value) >= 1e-3 else f"{value:.3g}"
        return f"{value:,.{decimals}f}"
    try:
        if pd.isna(value):
            return MISSING
    except (TypeError, ValueError):
        pass
    return str(value)


class BookTable:
    """A formatted table: HTML for the book, aligned plain text for terminals and nbval."""

    def __init__(self, headers: list[str], rows: list[list[str]], numeric: list[bool],
                 caption: str | None = None):
        self.headers, self.rows, self.numeric, self.caption = headers, rows, numeric, caption
        # Text columns with long values (settings, sentences) may wrap between words.
        self.wrap = [not n and max((len(r[c]) for r in rows), default=0) > WRAP_LONGER_THAN
                     for c, n in enumerate(numeric)]

    def _repr_html_(self) -> str:
        def cell(tag: str, text: str, right: bool, wrap: bool = False) -> str:
            style = ' class="num"' if right else ' class="wrap"' if wrap else ""
            return f"<{tag}{style}>{html.escape(text)}</{tag}>"

        head = "".join(cell("th", h, n) for h, n in zip(self.headers, self.numeric))
        body = "".join("<tr>" + "".join(cell("td", v, n, w) for v, n, w
                                        in zip(row, self.numeric, self.wrap))
                       + "</tr>" for row in self.rows)
        # The caption sits above the scrolling box, so a phone shows all of it.
        caption = (f'<p class="book-table-caption">{html.escape(self.caption)}</p>'
                   if self.caption else "")
        return (f'{caption}<div class="book-table-scroll"><table class="book-table">'
                f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")

    def __repr__(self) -> str:
        columns = [self.headers, *self.rows]
        widths = [max(len(r[c]) for r in columns) for c in range(len(self.headers))]
        lines = ["  ".join(v.rjust(w) if n else v.ljust(w)
                           for v, w, n in zip(r, widths, self.numeric)).rstrip()
                 for r in columns]
        return "\n".join(([self.caption] if self.caption else []) + lines)

    def to_frame(self) -> pd.DataFrame:
        """The formatted cells as a DataFrame of text (for tests and glue)."""
        return pd.DataFrame(self.rows, columns=self.headers)


def show(table: pd.DataFrame, headers: Mapping[str, str] | None = None,
         decimals: int | Mapping[str, int] | None = 4, index: bool = False,
         caption: str | None = None) -> BookTable:
    """Format ``table`` for the page (see the module docstring).

    ``headers`` renames columns (on top of :data:`HEADERS`); ``decimals`` is one number for
    every float column, a mapping per column (others keep 4), or None for 4 significant
    digits; ``index=True`` keeps the index as the first column(s). Raises ValueError naming a
    column whose name is a variable name with no header.
    """
    frame = table.reset_index() if index else table
    names = {**HEADERS, **(headers or {})}
    shown = []
    for column in frame.columns:
        label = names.get(str(column), str(column))
        if _VARIABLE.match(label) and len(label) > 1:
            raise ValueError(f"column {column!r} has no header: pass headers={{{column!r}: "
                             "'words'}} or add it to ncf_vs_mf.tables.HEADERS")
        shown.append(label)

    def places(column: str) -> int | None:
        if isinstance(decimals, Mapping):
            return decimals.get(column, 4)
        return decimals

    numeric = [pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
               for c in frame.columns]
    # a float column whose values are all whole numbers is an integer column with gaps
    whole = [is_number and pd.api.types.is_float_dtype(frame[c])
             and bool(((frame[c].dropna() % 1) == 0).all()) and frame[c].notna().any()
             and frame[c].isna().any() for c, is_number in zip(frame.columns, numeric)]
    rows = []
    for values in frame.itertuples(index=False, name=None):
        row = []
        for column, value, is_number, is_whole in zip(frame.columns, values, numeric, whole):
            if is_whole and isinstance(value, float) and not math.isnan(value):
                value = int(value)
            is_float = isinstance(value, float) and is_number
            row.append(format_value(value, places(str(column)) if is_float else None))
        rows.append(row)
    return BookTable(shown, rows, numeric, caption)
