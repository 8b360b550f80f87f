"""The book's chapters as parameterised notebooks: find them, read their parameters, run them.

A *chapter* is a MyST-markdown notebook ``book/<name>.md`` kept with jupytext (its YAML front
matter has a ``jupytext`` or ``kernelspec`` entry). Its first code cell tagged ``parameters``
declares what a reader may change, one annotated assignment per line with a trailing comment
that documents it::

    ```{code-cell} ipython3
    :tags: [parameters]

    dataset: str = "synthetic"  # dataset to use: synthetic, ml-100k, ml-1m
    dims: list[int] = [16, 32]  # embedding dimensions to train
    ```

Supported types are ``int``, ``float``, ``str``, ``bool``, ``list[int]``, ``list[float]``,
``list[str]`` and any of them ``| None`` (the kernel evaluates the annotations, so only builtin
names work: ``typing.Optional`` would need an import, which a parameters cell may not hold).
Names, types, defaults and comments come from ``papermill.inspect_notebook``; this module checks
them and converts command-line values. The book (:data:`REPO_ROOT`) is the current directory if
it has a ``_toc.yml``, else ``$NCF_VS_MF_BOOK``, else this package's checkout (config.book_root).

:func:`run_chapter` checks every override *before* anything runs, executes the chapter with
papermill (its file is only read) and writes a sanitised ``<output_dir>/<name>.ipynb``;
:func:`check_executed` tells whether an executed notebook still matches its chapter's code.
"""

from __future__ import annotations

import ast
import contextlib
import copy
import difflib
import io
import logging
import os
import re
import tempfile
import tokenize
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

from .config import book_root

if TYPE_CHECKING:
    from nbformat import NotebookNode

REPO_ROOT = book_root()
BOOK_DIR = REPO_ROOT / "book"
TOC_FILE = REPO_ROOT / "_toc.yml"
DEFAULT_OUTPUT_DIR = REPO_ROOT / "_build" / "executed"
KERNEL_NAME = "python3"
KERNELSPEC = {"name": KERNEL_NAME, "language": "python", "display_name": "Python 3"}

BASE_TYPES = ("int", "float", "str", "bool")
PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,), "float": (int, float), "str": (str,), "bool": (bool,)}
NONE_STRINGS = ("None", "none", "null")
TRUE_STRINGS = ("true", "yes", "on", "1")
FALSE_STRINGS = ("false", "no", "off", "0")
LITERAL_ERRORS = (ValueError, TypeError, SyntaxError, MemoryError, RecursionError)

# Directory prefixes of absolute paths (``/work/main/results/``) in text outputs become
# ``<path>/``. The same regex is the first rule of tests/nbval_sanitize.cfg, and applying it
# twice changes nothing, so a stored notebook and a fresh run made anywhere compare equal.
PATH_REGEX = r"(?<![\w.])/(?:[\w.+-]+/)+"
PATH_REPLACEMENT = "<path>/"
_PATH_RE = re.compile(PATH_REGEX)
# Outputs whose text is sanitised; images and JSON payloads are left alone (base64 has '/').
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_TEXT_MIME_TYPES = ("text/plain", "text/html", "text/markdown", "text/latex")


class ChapterError(ValueError):
    """A chapter cannot be found, or its parameters cell breaks the conventions above."""


class ParameterError(ValueError):
    """Overrides that do not fit a chapter's parameters (raised before anything runs)."""


class ChapterExecutionError(RuntimeError):
    """A cell of a chapter raised while the chapter was executed."""


# Types and values ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamType:
    """The declared type of a parameter: a base type, maybe a list of it, maybe optional."""

    base: str
    is_list: bool = False
    optional: bool = False

    def __str__(self) -> str:
        text = f"list[{self.base}]" if self.is_list else self.base
        return f"{text} | None" if self.optional else text

    @classmethod
    def parse(cls, text: str) -> ParamType:
        """The type an annotation's text names (``ValueError`` if unsupported)."""
        try:
            node = ast.parse(text.strip(), mode="eval").body
        except SyntaxError:
            raise ValueError(f"unsupported type annotation {text!r}") from None
        return _parse_annotation(node)

    def convert(self, value: Any) -> Any:
        """``value`` (a command-line string or a Python value) as this type, else ValueError."""
        if value is None:
            if self.optional:
                return None
            raise ValueError("None is not allowed (the type is not optional)")
        if isinstance(value, str):
            return self._from_string(value)
        if self.is_list:
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"expected a list, got {type(value).__name__}")
            return [_python_scalar(self.base, item) for item in value]
        return _python_scalar(self.base, value)

    def _from_string(self, text: str) -> Any:
        """A command-line string as this type (a list as ``16,32`` or ``[16, 32]``)."""
        stripped = text.strip()
        if self.optional and stripped in NONE_STRINGS:
            return None
        if not self.is_list:
            return _string_scalar(self.base, text)
        if not stripped.startswith("["):
            return [_string_scalar(self.base, item.strip()) for item in stripped.split(",")
                    ] if stripped else []
        try:
            items = ast.literal_eval(stripped)
        except (ValueError, SyntaxError) as exc:
            raise ValueError(f"not a list literal ({exc.__class__.__name__})") from None
        if not isinstance(items, (list, tuple)):
            raise ValueError("not a list literal")
        return [_python_scalar(self.base, item) for item in items]


def _python_scalar(base: str, value: Any) -> Any:
    """A Python value of the base type ``base`` (an int is accepted as a float, a bool is not)."""
    if isinstance(value, PYTHON_TYPES[base]) and isinstance(value, bool) == (base == "bool"):
        return float(value) if base == "float" else value
    raise ValueError(f"{value!r} is a {type(value).__name__}, not a {base}")


def _string_scalar(base: str, text: str) -> Any:
    """A command-line string as the base type ``base``."""
    stripped = text.strip()
    if base == "str":
        return text
    if base == "bool":
        if stripped.lower() in TRUE_STRINGS + FALSE_STRINGS:
            return stripped.lower() in TRUE_STRINGS
        raise ValueError(f"{text!r} is not a boolean (use true/false, yes/no, 1/0)")
    try:
        return PYTHON_TYPES[base][-1](stripped)
    except ValueError:
        raise ValueError(f"{text!r} is not {'an integer' if base == 'int' else 'a number'}"
                         ) from None


def _check_default(ptype: ParamType, default: Any) -> None:
    """A default must already be a Python value of the declared type (no string parsing)."""
    if isinstance(default, str) and (ptype.base != "str" or ptype.is_list):
        raise ValueError(f"{default!r} is a str, not a {ptype}")
    if ptype.is_list and not isinstance(default, list):
        raise ValueError(f"{default!r} is not a list")
    ptype.convert(default)


def _parse_annotation(node: ast.expr) -> ParamType:
    """A :class:`ParamType` from an annotation's syntax tree (``ValueError`` if unsupported)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        for inner, other in ((node.left, node.right), (node.right, node.left)):
            if isinstance(other, ast.Constant) and other.value is None:
                inner_type = _parse_annotation(inner)
                if inner_type.optional:
                    break
                return ParamType(inner_type.base, inner_type.is_list, optional=True)
    elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        # Only builtin names: the kernel evaluates the annotations, and a parameters cell
        # cannot import typing.Optional or typing.List.
        if node.value.id == "list":
            if isinstance(node.slice, ast.Name) and node.slice.id in BASE_TYPES:
                return ParamType(node.slice.id, is_list=True)
    elif isinstance(node, ast.Name) and node.id in BASE_TYPES:
        return ParamType(node.id)
    raise ValueError(f"unsupported type annotation {ast.unparse(node)!r}")


SUPPORTED_TYPES = ("int, float, str, bool, list[int], list[float], list[str], "
                   "and any of them '| None' (not typing.Optional: the cell cannot import it)")


# Parameters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Parameter:
    """One documented parameter of a chapter."""

    name: str
    type: ParamType
    default: Any
    doc: str
    line: int = 0  # line in the parameters cell (1-based)


@contextlib.contextmanager
def quiet_papermill() -> Iterator[None]:
    """Silence papermill's warnings (and its translators') about lines its regex cannot read."""
    logger = logging.getLogger("papermill")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def cell_notebook(source: str) -> NotebookNode:
    """A Python notebook whose only cell, tagged ``parameters``, holds ``source``."""
    import nbformat

    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["parameters"]})
    return nbformat.v4.new_notebook(cells=[cell], metadata={"kernelspec": dict(KERNELSPEC)})


def inspect_parameters(nb: NotebookNode) -> dict[str, dict[str, str]]:
    """``papermill.inspect_notebook`` of a notebook: name -> inferred_type_name, default, help."""
    import nbformat
    import papermill

    nb = copy.deepcopy(nb)
    nb.metadata.setdefault("kernelspec", dict(KERNELSPEC))  # papermill picks its translator
    with tempfile.TemporaryDirectory(prefix="ncf-vs-mf-inspect-") as tmp, quiet_papermill():
        path = Path(tmp) / "notebook.ipynb"
        nbformat.write(nb, path)
        return papermill.inspect_notebook(str(path))


def _declaration(stmt: ast.AnnAssign, source: str, comments: Mapping[int, str],
                 inspected: Mapping[str, str] | None) -> Mapping[str, str]:
    """papermill's reading of one declaration, or the syntax tree's where papermill misread it."""
    # Minimal parsing kept on purpose: papermill gives no line numbers (the errors name one) and
    # accepts any statement; its line regex also drops `X | None` annotations and every line
    # with a second '=' (even in the comment, as for 10 of the book's parameters), and cuts a
    # default at a '#' inside a string. Where papermill has no entry for the name, or read
    # another default, the syntax tree's annotation, value and trailing comment stand.
    value = ast.get_source_segment(source, stmt.value) or ast.unparse(stmt.value)
    if inspected is not None:
        try:
            same = ast.literal_eval(inspected["default"]) == ast.literal_eval(value)
        except LITERAL_ERRORS:
            same = inspected["default"].strip() == value.strip()
        if same:
            return inspected
    return {"inferred_type_name": ast.unparse(stmt.annotation), "default": value,
            "help": comments.get(stmt.end_lineno or stmt.lineno, "")}


def parse_parameters(source: str, origin: str = "<parameters cell>",
                     notebook: NotebookNode | None = None) -> list[Parameter]:
    """A cell's ``name: type = literal  # doc`` lines (papermill inspects ``notebook``), checked."""
    # Anything else (imports, plain assignments, computed defaults, a missing comment) is a
    # ChapterError naming ``origin`` and the line. ``notebook`` defaults to one of ``source``.
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise ChapterError(f"{origin}: parameters cell is not valid Python: {exc}") from None
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    inspected = inspect_parameters(notebook if notebook is not None else cell_notebook(source))

    parameters: list[Parameter] = []
    seen: set[str] = set()
    for stmt in tree.body:
        where = f"{origin}, line {stmt.lineno}"
        if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and stmt.value is not None):
            raise ChapterError(
                f"{where}: a parameters cell may only hold annotated assignments "
                f"'name: type = value  # doc', found {ast.unparse(stmt)!r}")
        name = stmt.target.id
        if name in seen:
            raise ChapterError(f"{where}: parameter {name!r} is declared twice")
        seen.add(name)
        found = _declaration(stmt, source, comments, inspected.get(name))
        try:
            ptype = ParamType.parse(found["inferred_type_name"])
        except ValueError as exc:
            raise ChapterError(f"{where}: parameter {name!r}: {exc}; supported: "
                               f"{SUPPORTED_TYPES}") from None
        try:
            default = ast.literal_eval(found["default"].strip())
        except LITERAL_ERRORS:
            raise ChapterError(f"{where}: the default of {name!r} must be a literal, found "
                               f"{found['default']!r}") from None
        try:
            _check_default(ptype, default)
        except ValueError as exc:
            raise ChapterError(f"{where}: the default of {name!r} does not match its type "
                               f"{ptype}: {exc}") from None
        if not found["help"]:
            raise ChapterError(f"{where}: parameter {name!r} needs a trailing '# comment' "
                               "that documents it")
        parameters.append(Parameter(name, ptype, default, found["help"], stmt.lineno))
    return parameters


def convert_parameters(parameters: Iterable[Parameter], values: Mapping[str, Any],
                       chapter: str = "chapter") -> dict[str, Any]:
    """``values`` converted to their parameters' types; one ParameterError lists every problem."""
    by_name = {p.name: p for p in parameters}
    problems: list[str] = []
    converted: dict[str, Any] = {}
    for name, value in values.items():
        param = by_name.get(name)
        if param is None:
            close = difflib.get_close_matches(name, list(by_name), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            valid = ", ".join(f"{p.name} ({p.type})" for p in by_name.values()) or "none"
            problems.append(f"unknown parameter {name!r} for {chapter}{hint}; valid "
                            f"parameters: {valid}")
            continue
        try:
            converted[name] = param.type.convert(value)
        except ValueError as exc:
            problems.append(f"parameter {name!r} of {chapter} expects {param.type}, got "
                            f"{value!r}: {exc}")
    if problems:
        raise ParameterError("\n".join(problems))
    return converted


# Chapters ------------------------------------------------------------------------------------


def _front_matter(text: str) -> dict[str, Any] | None:
    """The YAML front matter of a markdown text, or None."""
    import yaml

    end = re.search(r"^---\s*$", text[3:], flags=re.MULTILINE)
    if not text.startswith("---") or end is None:
        return None
    try:
        data = yaml.safe_load(text[3:3 + end.start()])
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def is_notebook(path: str | os.PathLike) -> bool:
    """Whether a markdown file is a jupytext notebook (front matter with jupytext/kernelspec)."""
    path = Path(path)
    if path.suffix != ".md" or not path.is_file():
        return False
    meta = _front_matter(path.read_text(encoding="utf-8"))
    return bool(meta) and ("jupytext" in meta or "kernelspec" in meta)


@dataclass(frozen=True)
class Chapter:
    """A chapter notebook ``book/<name>.md``."""

    name: str
    path: Path

    def read(self) -> NotebookNode:
        """The chapter as an in-memory notebook (nbformat v4); the file is only read."""
        import jupytext

        return jupytext.read(self.path, fmt="md:myst")

    @property
    def title(self) -> str:
        """The first level-1 heading, else the name."""
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                return line[2:].strip()
        return self.name

    def parameters_source(self, nb: NotebookNode | None = None) -> str | None:
        """Source of the first code cell tagged ``parameters`` (of ``nb``, else read), or None."""
        for cell in (nb if nb is not None else self.read()).cells:
            if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
                return cell.source
        return None

    def parameters(self) -> list[Parameter]:
        """The parameters papermill inspects in the chapter's notebook, checked."""
        nb = self.read()
        source = self.parameters_source(nb)
        if source is None:
            return []
        return parse_parameters(source, origin=f"{self.path.name} (parameters cell)",
                                notebook=nb)

    def code_cells(self) -> list[str]:
        """The sources of the code cells, in order."""
        return [cell.source for cell in self.read().cells if cell.cell_type == "code"]


def toc_files(toc: str | os.PathLike = TOC_FILE) -> list[str]:
    """The documents of a Jupyter Book ``_toc.yml`` in reading order (paths without suffix)."""
    import yaml

    data = yaml.safe_load(Path(toc).read_text(encoding="utf-8")) or {}
    found: list[str] = []

    def walk(node: Any) -> None:
        """Collect the documents under ``node``."""
        if isinstance(node, list):
            for child in node:
                walk(child)
        elif isinstance(node, dict):
            found.extend(re.sub(r"\.(md|ipynb)$", "", node[key]) for key in ("root", "file")
                         if isinstance(node.get(key), str))
            for key in ("parts", "chapters", "sections"):
                walk(node.get(key) or [])

    walk(data)
    return found


def find_chapters(book_dir: str | os.PathLike = BOOK_DIR) -> list[Chapter]:
    """The notebooks (not plain pages) of ``book_dir``: the table of contents' order, then a-z."""
    book_dir = Path(book_dir)
    toc = book_dir.parent / "_toc.yml"
    order: dict[str, int] = {}
    if toc.is_file():
        for index, entry in enumerate(toc_files(toc)):
            order.setdefault(str((book_dir.parent / entry).with_suffix(".md")), index)
    paths = [p for p in sorted(book_dir.glob("*.md")) if is_notebook(p)]
    paths.sort(key=lambda p: order.get(str(p), len(order)))
    return [Chapter(p.stem, p) for p in paths]


def book_chapters(root: str | os.PathLike = REPO_ROOT) -> list[Chapter]:
    """The notebooks listed in ``<root>/_toc.yml`` (not plain pages), in reading order."""
    root = Path(root)
    toc = root / "_toc.yml"
    if not toc.is_file():
        return []
    paths = [root / f"{entry}.md" for entry in toc_files(toc)]
    return [Chapter(path.stem, path.resolve()) for path in paths if is_notebook(path)]


def resolve_chapter(spec: str | os.PathLike | Chapter,
                    book_dir: str | os.PathLike = BOOK_DIR) -> Chapter:
    """A chapter from its name (``definitions``), file name, ``book/<name>.md`` or a path."""
    if isinstance(spec, Chapter):
        return spec
    text = str(spec)
    for path in (Path(text), Path(book_dir) / f"{Path(text).name.removesuffix('.md')}.md"):
        if path.suffix == ".md" and path.is_file():
            if not is_notebook(path):
                raise ChapterError(f"{path} is not a jupytext notebook (no jupytext/kernelspec "
                                   "front matter), so it has nothing to run")
            return Chapter(path.stem, path.resolve())
    names = ", ".join(c.name for c in find_chapters(book_dir)) or "none"
    raise ChapterError(f"no chapter {text!r}; chapters: {names}")


def validate_parameters(chapter: str | os.PathLike | Chapter,
                        values: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides for a chapter, checked and converted (see :func:`convert_parameters`)."""
    chapter = resolve_chapter(chapter)
    return convert_parameters(chapter.parameters(), values, chapter=chapter.name)


# Running and sanitising ----------------------------------------------------------------------


def sanitize_text(text: str) -> str:
    """Replace the directory part of absolute paths with ``<path>/`` (idempotent)."""
    return _PATH_RE.sub(PATH_REPLACEMENT, text)


def _sanitize_value(value: Any) -> Any:
    """A text output (string or list of strings) sanitised; anything else unchanged."""
    if isinstance(value, str):
        return sanitize_text(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return [sanitize_text(v) for v in value]
    return value


def sanitize_notebook(nb: NotebookNode, chapter: Chapter | None = None,
                      parameters: Mapping[str, Any] | None = None) -> NotebookNode:
    """A copy of an executed notebook that is the same whenever and wherever it was run."""
    # No timestamps, durations or jupytext pairing; ids cell-0, cell-1, ...; execution counts
    # from 1; absolute paths in text outputs replaced.
    nb = copy.deepcopy(nb)
    for key in ("papermill", "jupytext", "widgets"):
        nb.metadata.pop(key, None)
    papermill_meta: dict[str, Any] = {"parameters": dict(parameters or {})}
    if chapter is not None:
        try:
            papermill_meta["input_path"] = chapter.path.relative_to(REPO_ROOT).as_posix()
        except ValueError:
            papermill_meta["input_path"] = chapter.path.name
    nb.metadata["papermill"] = papermill_meta
    count = 0
    for index, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{index}"
        for key in ("papermill", "execution", "ExecuteTime", "collapsed", "scrolled"):
            cell.metadata.pop(key, None)
        if cell.cell_type != "code":
            continue
        if cell.get("execution_count") is not None:
            count += 1
            cell.execution_count = count
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                output["text"] = _sanitize_value(output.get("text", ""))
            elif "data" in output:
                if "execution_count" in output and output["execution_count"] is not None:
                    output["execution_count"] = cell.execution_count
                for mime in _TEXT_MIME_TYPES:
                    if mime in output["data"]:
                        output["data"][mime] = _sanitize_value(output["data"][mime])
            elif output.get("output_type") == "error":
                output["traceback"] = [sanitize_text(t) for t in output.get("traceback", [])]
    return nb


def run_chapter(chapter: str | os.PathLike | Chapter,
                parameters: Mapping[str, Any] | None = None,
                output_dir: str | os.PathLike = DEFAULT_OUTPUT_DIR,
                cwd: str | os.PathLike | None = None, *,
                timeout: int | None = None, kernel_name: str = KERNEL_NAME) -> Path:
    """Execute a chapter with papermill, write and return ``<output_dir>/<name>.ipynb``."""
    # ``parameters``: Python values or command-line strings (``16,32``, ``None``), all checked
    # before the kernel starts; only these go into papermill's injected cell. ``cwd``: the
    # kernel's folder (default: the chapter's); ``timeout``: seconds per cell.
    import nbformat
    import papermill

    chapter = resolve_chapter(chapter)
    values = validate_parameters(chapter, parameters or {})
    output_dir = Path(output_dir)
    target = output_dir / f"{chapter.name}.ipynb"
    nb = chapter.read()
    with tempfile.TemporaryDirectory(prefix="ncf-vs-mf-run-") as tmp:
        source = Path(tmp) / f"{chapter.name}.ipynb"
        nbformat.write(nb, source)
        try:
            with quiet_papermill():
                executed = papermill.execute_notebook(
                    str(source), str(Path(tmp) / "executed.ipynb"), parameters=values,
                    kernel_name=kernel_name, progress_bar=False, log_output=False,
                    request_save_on_cell_execute=False,
                    cwd=str(Path(cwd) if cwd is not None else chapter.path.parent),
                    execution_timeout=timeout)
        except papermill.PapermillExecutionError as exc:
            trace = _ANSI_RE.sub("", "\n".join(exc.traceback or []))
            raise ChapterExecutionError(
                f"chapter {chapter.name} failed in cell {exc.exec_count}: {exc.ename}: "
                f"{exc.evalue}\n{trace}") from None
    executed = sanitize_notebook(executed, chapter, values)
    output_dir.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial")
    nbformat.write(executed, partial)
    partial.replace(target)
    return target


def check_executed(chapter: str | os.PathLike | Chapter,
                   executed: str | os.PathLike) -> list[str]:
    """How an executed notebook's code cells (but the injected one) differ from its chapter's."""
    import nbformat

    chapter = resolve_chapter(chapter)
    executed = Path(executed)
    if not executed.is_file():
        return [f"{executed} does not exist: run `make executed`"]
    nb = nbformat.read(executed, as_version=4)
    ran = [cell.source for cell in nb.cells if cell.cell_type == "code"
           and "injected-parameters" not in cell.metadata.get("tags", [])]
    expected = chapter.code_cells()
    problems = []
    if len(ran) != len(expected):
        problems.append(f"{executed.name} has {len(ran)} code cells, {chapter.path.name} has "
                        f"{len(expected)}")
    for index, (got, want) in enumerate(zip(ran, expected)):
        if got != want:
            diff = "\n".join(difflib.unified_diff(want.splitlines(), got.splitlines(),
                                                  "chapter", "executed", lineterm="", n=1))
            problems.append(f"code cell {index} of {executed.name} differs from "
                            f"{chapter.path.name}:\n{diff}")
    if problems:
        problems.append(f"regenerate it with: ncf-vs-mf run {chapter.name} -o {executed.parent}")
    return problems
