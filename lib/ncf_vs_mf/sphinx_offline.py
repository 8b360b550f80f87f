"""A small Sphinx extension of the book's build (``_config.yml``: ``extra_extensions``).

Jupyter Book 1.x always loads sphinx-thebe, which adds an inline script declaring
``const THEBE_JS_URL = "https://unpkg.com/..."`` to every page. Under Sphinx 7.4 that inline
script (and sphinx-togglebutton's) lands twice in each page, and the second ``const`` is a
JavaScript SyntaxError in the reader's console. The book has no live code (``thebe: false``,
no launch buttons), so this extension removes sphinx-thebe's scripts from every page and drops
exact duplicates of the remaining ones. Pages then name no other host at all.
"""

from __future__ import annotations

from typing import Any

THEBE_MARKERS = ("THEBE_JS_URL", "sphinx-thebe.js")


def _is_thebe(script: Any) -> bool:
    text = f"{getattr(script, 'filename', '') or ''} {getattr(script, 'attributes', {})}"
    return any(marker in text for marker in THEBE_MARKERS)


def _key(script: Any) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    return (getattr(script, "filename", str(script)) or "",
            tuple(sorted((k, str(v)) for k, v in attributes.items())))


def clean_scripts(app, pagename, templatename, context, doctree) -> None:
    if "script_files" not in context:
        return
    seen: set[tuple] = set()
    kept = []
    for script in context["script_files"]:
        key = _key(script)
        if _is_thebe(script) or key in seen:
            continue
        seen.add(key)
        kept.append(script)
    context["script_files"] = kept


def setup(app) -> dict[str, Any]:
    app.connect("html-page-context", clean_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
