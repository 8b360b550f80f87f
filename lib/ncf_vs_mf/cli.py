"""The ``ncf-vs-mf`` command line (also ``python -m ncf_vs_mf``).

Subcommands come from the registrars listed in :data:`SUBCOMMANDS`. A registrar is a function
``add_subcommands(subparsers)`` that adds one or more parsers to the ``argparse`` subparsers
object and gives each a handler with ``parser.set_defaults(func=handler)``; the handler takes
the parsed ``argparse.Namespace`` and returns the exit status (0 for success). To add a
subcommand, write such a function in its own module and append ``"module:function"`` to
``SUBCOMMANDS``; modules are imported only when the command line is built.

Errors a user can fix (an unknown chapter, a bad parameter) print one clear message to stderr
and exit with status 2, like argparse's own usage errors.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

if TYPE_CHECKING:
    from .chapters import Chapter

# "module:function" of every registrar, in the order their subcommands are listed in --help.
SUBCOMMANDS: list[str] = [
    "ncf_vs_mf.cli:add_chapter_commands",
    "ncf_vs_mf.reproduce:add_subcommands",
]

USAGE_ERROR = 2


from .errors import OneLineParser, UsageError  # noqa: E402  (UsageError: re-exported)


def _parameter_pair(parser: argparse.ArgumentParser) -> None:
    """Add the repeatable ``-p NAME VALUE`` option."""
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[],
                        metavar=("NAME", "VALUE"),
                        help="override a chapter parameter (repeatable); lists as 16,32 or "
                             "[16, 32], optionals as None")


def _chapters_command(args: argparse.Namespace) -> int:
    """``ncf-vs-mf chapters``: list the chapters, or only their names."""
    from . import chapters

    if args.list_names:
        for chapter in chapters.book_chapters():
            print(chapter.name)
        return 0
    found = chapters.find_chapters()
    if args.names:
        found = [chapters.resolve_chapter(name) for name in args.names]
    if not found:
        print(f"no chapters found in {chapters.BOOK_DIR}")
        return 0
    sys.stdout.write(describe_chapters(found))
    return 0


def describe_chapters(found: Iterable[Chapter]) -> str:
    """A plain-text listing of chapters and their parameters (for ``ncf-vs-mf chapters``)."""
    from .chapters import REPO_ROOT, ChapterError

    lines: list[str] = []
    for chapter in found:
        try:
            rel = chapter.path.relative_to(REPO_ROOT).as_posix()
        except ValueError:
            rel = str(chapter.path)
        lines.append(f"{chapter.name}  ({rel}): {chapter.title}")
        try:
            params = chapter.parameters()
        except ChapterError as exc:
            lines.append(f"    ! {exc}")
            continue
        if not params:
            lines.append("    (no parameters)")
        width = max((len(p.name) for p in params), default=0)
        type_width = max((len(str(p.type)) for p in params), default=0)
        for p in params:
            lines.append(f"    {p.name:<{width}}  {str(p.type):<{type_width}}  "
                         f"= {p.default!r}  # {p.doc}")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _run_command(args: argparse.Namespace) -> int:
    """``ncf-vs-mf run``: check the overrides, then execute the chapter."""
    from . import chapters

    chapter = chapters.resolve_chapter(args.chapter)
    overrides: dict[str, str] = {}
    for name, value in args.parameter:
        if name in overrides:
            raise UsageError(f"parameter {name!r} given twice")
        overrides[name] = value
    chapters.validate_parameters(chapter, overrides)  # fail before any kernel starts
    shown = " ".join(f"{k}={v}" for k, v in overrides.items()) or "default parameters"
    print(f"running {chapter.name} with {shown} ...", file=sys.stderr, flush=True)
    target = chapters.run_chapter(chapter, overrides, args.output_dir, cwd=args.cwd,
                                  timeout=args.timeout)
    print(target)
    return 0


def add_chapter_commands(subparsers: argparse._SubParsersAction) -> None:
    """Register ``chapters`` and ``run``."""
    from .chapters import DEFAULT_OUTPUT_DIR

    listing = subparsers.add_parser(
        "chapters", help="list the chapters and their parameters",
        description="List the book's chapter notebooks with their parameters: name, type, "
                    "default and what each one does. The book is the current directory if it "
                    "has a _toc.yml, else $NCF_VS_MF_BOOK, else this package's checkout.")
    listing.add_argument("names", nargs="*", metavar="CHAPTER",
                         help="only these chapters (name or book/<name>.md)")
    listing.add_argument("--names", dest="list_names", action="store_true",
                         help="print only the names of the chapters in _toc.yml, one a line "
                              "(what `make executed` runs)")
    listing.set_defaults(func=_chapters_command)

    run = subparsers.add_parser(
        "run", help="execute a chapter with papermill, overriding parameters",
        description="Execute a chapter notebook with papermill and write the executed "
                    "notebook to OUTPUT_DIR/<chapter>.ipynb. Every parameter is checked "
                    "before anything runs; the chapter's source file is never modified.",
        epilog="example: ncf-vs-mf run definitions -p max_dim 1024 -p seed 1")
    run.add_argument("chapter", metavar="CHAPTER",
                     help="chapter name (definitions) or file (book/definitions.md)")
    _parameter_pair(run)
    run.add_argument("-o", "--output-dir", default=str(DEFAULT_OUTPUT_DIR),
                     help="folder of the executed notebook (default: %(default)s)")
    run.add_argument("--cwd", default=None,
                     help="working directory of the kernel (default: the chapter's folder)")
    run.add_argument("--timeout", type=_positive_int, default=None,
                     help="seconds each cell may run (default: no limit)")
    run.set_defaults(func=_run_command)


def _positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def _load(spec: str) -> Callable[[argparse._SubParsersAction], None]:
    """The registrar a ``module:function`` spec names."""
    module, _, function = spec.partition(":")
    return getattr(importlib.import_module(module), function)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every registrar's subcommands."""
    parser = OneLineParser(
        prog="ncf-vs-mf",
        description="Companion to 'Neural Collaborative Filtering vs. Matrix Factorization "
                    "Revisited': run the book's chapters and reproduce its experiments.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                       parser_class=OneLineParser)
    for spec in SUBCOMMANDS:
        _load(spec)(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; usage errors exit 2, failing chapters 1."""
    from .chapters import ChapterError, ChapterExecutionError, ParameterError
    from .data import DataError
    from .results import TableError

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, ChapterError, ParameterError, DataError, TableError) as exc:
        print(f"ncf-vs-mf {args.command}: error: {exc}", file=sys.stderr)
        return USAGE_ERROR
    except ChapterExecutionError as exc:
        print(f"ncf-vs-mf {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
