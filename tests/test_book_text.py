"""The book's text as a reader meets it: short enough, about its subject, and self-consistent.

Counts the main prose of every page in ``_toc.yml`` (outside code cells, exercises, solutions,
the glossary and display math) and checks it against the book-wide budget, and that no page
talks about how the book was made (commits, sessions, machines, time budgets).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from ncf_vs_mf.chapters import REPO_ROOT, toc_files

WORD_BUDGET = 14_400  # 12,000 plus the Table 1 and sampled-metrics chapters (about 1,200 each)
MAKING_OF = re.compile(r"\bcommitted\b|planned chapter|did not finish|time we had|our machine|"
                       r"shared cores|this session|\bcommit [0-9a-f]{7}", re.IGNORECASE)
_FENCE = re.compile(r"^(`{3,}|:{3,})\s*\{([\w:-]+)\}.*?^\1\s*$", re.DOTALL | re.MULTILINE)
_GATED = re.compile(r"^(`{3,})\{solution-start\}.*?^`{3,}\{solution-end\}\s*\n`{3,}\s*$",
                    re.DOTALL | re.MULTILINE)
_NOT_PROSE = {"code-cell", "exercise", "solution", "glossary", "bibliography", "math",
              "toctree", "tableofcontents", "glue:figure", "glue:math"}


def prose(text: str) -> str:
    """The main prose of a MyST page: without front matter, code, exercises, solutions,
    glossary, display math, HTML comments and inline roles' targets."""
    text = re.sub(r"\A---\n.*?\n---\n", "", text, flags=re.DOTALL)
    text = re.sub(r"<!--.*?-->", "", text, flags=re.DOTALL)
    text = re.sub(r"^(`{3,}|:{3,})\s*\{solution-start\}.*?\{solution-end\}.*?^\1\s*$", "",
                  text, flags=re.DOTALL | re.MULTILINE)

    def drop(match: re.Match) -> str:
        return "" if match.group(2) in _NOT_PROSE else match.group(0)

    text = _FENCE.sub(drop, text)
    text = re.sub(r"\$\$.*?\$\$", "", text, flags=re.DOTALL)
    return text


def words(text: str) -> int:
    """Words of prose: runs of letters or digits (math, punctuation and markup not counted)."""
    text = re.sub(r"\{[\w:-]+\}`[^`]*`", " x ", text)  # a role counts as one word
    text = re.sub(r"\$[^$\n]+\$", " x ", text)  # inline math counts as one word
    return len(re.findall(r"[A-Za-z0-9][A-Za-z0-9'’.-]*", text))


def pages() -> list[Path]:
    return [REPO_ROOT / f"{doc}.md" for doc in toc_files(REPO_ROOT / "_toc.yml")]


def word_counts() -> dict[str, int]:
    return {page.stem: words(prose(page.read_text(encoding="utf-8"))) for page in pages()}


def test_prose_counter_skips_code_exercises_and_math():
    page = ("---\nx: 1\n---\n# Title here\n\nOne two three.\n\n```{code-cell} ipython3\n"
            "a = 1\n```\n\n```{exercise}\n:label: e\nNot counted at all.\n```\n\n"
            "$$\na + b\n$$\n\nFour {term}`HR@10` $x^2$.\n")
    assert words(prose(page)) == 2 + 3 + 3  # "Title here", "One two three", "Four x x"


def test_main_prose_fits_the_budget():
    counts = word_counts()
    total = sum(counts.values())
    assert total <= WORD_BUDGET, f"{total:,} words of main prose (budget {WORD_BUDGET:,}): {counts}"


@pytest.mark.parametrize("page", pages(), ids=lambda p: p.stem)
def test_page_is_about_its_subject_not_its_making(page):
    hits = [line.strip() for line in prose(page.read_text(encoding="utf-8")).splitlines()
            if MAKING_OF.search(line)]
    assert not hits, f"{page.name}: prose about how the book was made: {hits[:3]}"


if __name__ == "__main__":  # python tests/test_book_text.py: words per page
    counts = word_counts()
    for name, n in counts.items():
        print(f"{name:24s} {n:6,d}")
    print(f"{'total':24s} {sum(counts.values()):6,d}  (budget {WORD_BUDGET:,})")
    sys.exit(0)
