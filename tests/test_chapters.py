"""Chapters as parameterised notebooks: parameter parsing, validation, papermill runs, the CLI,
and that the committed executed notebooks (executed/) match the chapters."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from ncf_vs_mf import chapters, cli
from ncf_vs_mf.chapters import (ChapterError, ParameterError, ParamType, check_executed,
                                convert_parameters, find_chapters, parse_parameters,
                                resolve_chapter, run_chapter, toc_files)

REPO_ROOT = Path(__file__).resolve().parents[1]

FRONT_MATTER = """\
---
jupytext:
  text_representation:
    extension: .md
    format_name: myst
kernelspec:
  display_name: Python 3
  language: python
  name: python3
---
"""


def write_chapter(folder: Path, name: str, parameters: str, body: str = "") -> Path:
    """A small MyST chapter with a parameters cell (and optional further code)."""
    text = FRONT_MATTER + f"\n# Tiny {name}\n\nSome text with $x^2$.\n\n"
    text += "```{code-cell} ipython3\n:tags: [parameters]\n\n" + textwrap.dedent(parameters)
    text += "```\n"
    if body:
        text += "\nMore text.\n\n```{code-cell} ipython3\n" + textwrap.dedent(body) + "```\n"
    path = folder / f"{name}.md"
    path.write_text(text, encoding="utf-8")
    return path


TYPED = """\
n: int = 3  # number of things
lr: float = 0.5  # learning rate
name: str = "synthetic"  # dataset to use: synthetic, ml-100k, ml-1m
flag: bool = False  # whether to do it
dims: list[int] = [16, 32]  # dimensions
rates: list[float] = [0.1]  # rates
tags: list[str] = []  # labels
limit: int | None = None  # optional cap (None = no cap)
# a comment line on its own is allowed
out: str | None = "x"  # optional output folder
"""


@pytest.fixture()
def tiny(tmp_path):
    return resolve_chapter(write_chapter(tmp_path, "tiny", TYPED))


# --------------------------------------------------------------------------------------------
# Parsing


def test_parameters_are_parsed_with_types_defaults_and_docs(tiny):
    params = {p.name: p for p in tiny.parameters()}
    assert list(params) == ["n", "lr", "name", "flag", "dims", "rates", "tags", "limit", "out"]
    assert [str(p.type) for p in params.values()] == [
        "int", "float", "str", "bool", "list[int]", "list[float]", "list[str]", "int | None",
        "str | None"]
    assert params["n"].default == 3 and params["n"].doc == "number of things"
    assert params["name"].default == "synthetic"
    assert params["name"].doc == "dataset to use: synthetic, ml-100k, ml-1m"
    assert params["dims"].default == [16, 32]
    assert params["limit"].default is None and params["limit"].type.optional
    assert tiny.title == "Tiny tiny"


@pytest.mark.parametrize("source, message", [
    ("import os\n", "only hold annotated assignments"),
    ("n = 3  # untyped\n", "only hold annotated assignments"),
    ("n: int = 3\n", "needs a trailing '# comment'"),
    ("n: dict = {}  # a dict\n", "unsupported type annotation 'dict'"),
    ("n: list[list[int]] = []  # nested\n", "unsupported type annotation"),
    ("n: Optional[int] = None  # needs an import\n", "unsupported type annotation"),
    ("n: int = 1 + 2  # computed\n", "must be a literal"),
    ("n: int = 'three'  # wrong\n", "does not match its type int"),
    ("n: int = None  # not optional\n", "does not match its type int"),
    ("n: int = 1  # one\nn: int = 2  # two\n", "declared twice"),
    ("n: int = \n", "not valid Python"),
])
def test_bad_parameter_cells_are_rejected_with_line(source, message):
    with pytest.raises(ChapterError, match=re.escape(message)) as info:
        parse_parameters(source, origin="ch.md")
    assert "ch.md" in str(info.value)


def test_parameters_come_from_papermill_inspect_notebook(tiny, monkeypatch):
    import papermill

    calls = []
    real = papermill.inspect_notebook

    def spy(path, *args, **kwargs):
        calls.append(path)
        found = real(path, *args, **kwargs)
        found["n"] = dict(found["n"], help="as papermill read it")
        return found

    monkeypatch.setattr(papermill, "inspect_notebook", spy)
    params = {p.name: p for p in tiny.parameters()}
    assert len(calls) == 1 and params["n"].doc == "as papermill read it"
    assert params["limit"].doc == "optional cap (None = no cap)"  # papermill skips this line


def test_lines_papermill_misreads_fall_back_to_the_syntax_tree():
    source = ("s: str = 'a#b'  # a hash in a string\n"
              "cap: float = 0.5  # upper bound (<= 1)\n"
              "dims: list[int] = [\n    1,\n    2,\n]  # over lines\n")
    params = {p.name: p for p in parse_parameters(source)}
    assert params["s"].default == "a#b" and params["s"].doc == "a hash in a string"
    assert params["cap"].default == 0.5 and params["cap"].doc == "upper bound (<= 1)"
    assert params["dims"].default == [1, 2] and params["dims"].line == 3


def test_book_root_is_cwd_then_environment_then_checkout(tmp_path, monkeypatch):
    from ncf_vs_mf import config

    checkout = Path(chapters.__file__).resolve().parents[2]
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(config.BOOK_ENV, raising=False)
    assert config.book_root() == checkout
    monkeypatch.setenv(config.BOOK_ENV, str(tmp_path / "elsewhere"))
    assert config.book_root() == (tmp_path / "elsewhere").resolve()
    (tmp_path / "_toc.yml").write_text("root: intro\n")
    assert config.book_root() == tmp_path.resolve()
    assert chapters.REPO_ROOT == REPO_ROOT  # the suite runs from the checkout


def test_chapter_without_parameters_cell_has_no_parameters(tmp_path):
    path = tmp_path / "plain.md"
    path.write_text(FRONT_MATTER + "\n# Plain\n\n```{code-cell} ipython3\nx = 1\n```\n")
    assert resolve_chapter(path).parameters() == []


@pytest.mark.parametrize("ptype, text, value", [
    (ParamType("int"), "42", 42),
    (ParamType("float"), "1e-3", 0.001),
    (ParamType("bool"), "yes", True),
    (ParamType("bool"), "False", False),
    (ParamType("str"), "ml-1m", "ml-1m"),
    (ParamType("int", is_list=True), "16,32, 64", [16, 32, 64]),
    (ParamType("int", is_list=True), "[16, 32]", [16, 32]),
    (ParamType("int", is_list=True), "", []),
    (ParamType("float", is_list=True), "0.1,1", [0.1, 1.0]),
    (ParamType("str", is_list=True), "a,b", ["a", "b"]),
    (ParamType("str", is_list=True), "a, b", ["a", "b"]),
    (ParamType("int", optional=True), "None", None),
    (ParamType("int", optional=True), "7", 7),
    (ParamType("str", optional=True), "None", None),
])
def test_string_values_convert_to_the_declared_type(ptype, text, value):
    assert ptype.convert(text) == value


@pytest.mark.parametrize("ptype, value", [
    (ParamType("int"), "1.5"), (ParamType("int"), "ten"), (ParamType("int"), True),
    (ParamType("int"), 2.0), (ParamType("float"), "fast"), (ParamType("bool"), "maybe"),
    (ParamType("bool"), 1), (ParamType("int", is_list=True), "1,x"),
    (ParamType("int", is_list=True), 5), (ParamType("int"), None), (ParamType("str"), 3),
])
def test_values_that_do_not_fit_are_rejected(ptype, value):
    with pytest.raises(ValueError):
        ptype.convert(value)


# --------------------------------------------------------------------------------------------
# Validation before compute


def test_unknown_name_lists_the_valid_names_with_types(tiny):
    with pytest.raises(ParameterError) as info:
        chapters.validate_parameters(tiny, {"nn": "3"})
    message = str(info.value)
    assert "unknown parameter 'nn'" in message
    assert "did you mean 'n'?" in message
    for fragment in ("n (int)", "lr (float)", "dims (list[int])", "limit (int | None)"):
        assert fragment in message


def test_bad_value_error_names_parameter_type_and_value(tiny):
    with pytest.raises(ParameterError) as info:
        chapters.validate_parameters(tiny, {"n": "3.5", "dims": "16,x", "lr": "0.1"})
    message = str(info.value)
    assert "parameter 'n' of tiny expects int, got '3.5'" in message
    assert "parameter 'dims' of tiny expects list[int], got '16,x'" in message
    assert "lr" not in message  # the good one is not reported


def test_python_values_are_accepted_and_converted(tiny):
    values = convert_parameters(tiny.parameters(), {"n": 4, "lr": 1, "dims": (8,),
                                                    "limit": None, "flag": "true"})
    assert values == {"n": 4, "lr": 1.0, "dims": [8], "limit": None, "flag": True}
    assert isinstance(values["lr"], float)


def test_run_chapter_validates_before_starting_a_kernel(tiny, tmp_path, monkeypatch):
    import papermill

    def no_kernel(*args, **kwargs):
        raise AssertionError("papermill must not run on invalid parameters")

    monkeypatch.setattr(papermill, "execute_notebook", no_kernel)
    with pytest.raises(ParameterError):
        run_chapter(tiny, {"n": "x"}, tmp_path / "out")
    with pytest.raises(ParameterError):
        run_chapter(tiny, {"bogus": "1"}, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_resolve_chapter_accepts_names_and_paths():
    if not (REPO_ROOT / "book" / "definitions.md").is_file():
        pytest.skip("book/definitions.md not written yet")
    by_name = resolve_chapter("definitions")
    assert resolve_chapter("book/definitions.md") == by_name
    assert resolve_chapter("definitions.md") == by_name
    with pytest.raises(ChapterError, match="chapters: .*definitions"):
        resolve_chapter("no-such-chapter")


def test_plain_markdown_pages_are_not_chapters(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Just text\n")
    with pytest.raises(ChapterError, match="not a jupytext notebook"):
        resolve_chapter(page)
    write_chapter(tmp_path, "b_chapter", "x: int = 1  # x\n")
    write_chapter(tmp_path, "a_chapter", "x: int = 1  # x\n")
    assert [c.name for c in find_chapters(tmp_path)] == ["a_chapter", "b_chapter"]


# --------------------------------------------------------------------------------------------
# Real papermill runs of a tiny chapter


BODY = """\
import os
print(f"n={n} lr={lr} name={name} dims={dims} limit={limit}")
print("cwd:", os.path.basename(os.getcwd()))
print("here:", os.getcwd())
total = n * sum(dims)
total
"""


@pytest.fixture(scope="module")
def executed_tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("book")
    source = write_chapter(folder, "tiny", TYPED, BODY)
    before = hashlib.sha256(source.read_bytes()).hexdigest()
    mtime = source.stat().st_mtime_ns
    out = run_chapter(source, {"n": "5", "dims": "1,2", "limit": "9"},
                      tmp_path_factory.mktemp("out"), timeout=120)
    return source, before, mtime, out


def test_override_takes_effect_in_the_output(executed_tiny):
    source, _, _, out = executed_tiny
    assert out.name == "tiny.ipynb"
    nb = nbformat.read(out, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    injected = [c for c in code if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1
    assert injected[0].source.splitlines()[1:] == ["n = 5", "dims = [1, 2]", "limit = 9"]
    text = "".join(o.get("text", "") for o in code[-1].outputs if o.output_type == "stream")
    assert "n=5 lr=0.5 name=synthetic dims=[1, 2] limit=9" in text
    assert f"cwd: {source.parent.name}" in text  # the kernel ran in the chapter's folder
    result = [o for o in code[-1].outputs if o.output_type == "execute_result"]
    assert result[0].data["text/plain"] == "15"
    assert nb.metadata.papermill["parameters"] == {"n": 5, "dims": [1, 2], "limit": 9}


def test_run_never_modifies_the_source(executed_tiny):
    source, before, mtime, _ = executed_tiny
    assert hashlib.sha256(source.read_bytes()).hexdigest() == before
    assert source.stat().st_mtime_ns == mtime
    assert sorted(p.name for p in source.parent.iterdir()) == ["tiny.md"]


def test_executed_notebook_is_sanitised(executed_tiny):
    _, _, _, out = executed_tiny
    nb = nbformat.read(out, as_version=4)
    raw = out.read_text()
    assert "start_time" not in raw and "end_time" not in raw and "duration" not in raw
    assert "iopub" not in raw and "jupytext" not in raw
    assert [c.id for c in nb.cells] == [f"cell-{i}" for i in range(len(nb.cells))]
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))
    assert str(out.parent) not in raw and str(Path.home()) + "/" not in raw
    assert "here: <path>/" in raw  # the absolute working directory was replaced
    assert set(nb.metadata.papermill) == {"parameters", "input_path"}


def test_executed_notebook_matches_its_source_and_detects_drift(executed_tiny, tmp_path):
    source, _, _, out = executed_tiny
    assert check_executed(source, out) == []
    edited = tmp_path / "tiny.md"
    edited.write_text(source.read_text().replace("total = n * sum(dims)",
                                                 "total = n * max(dims)"))
    problems = check_executed(edited, out)
    assert problems and "code cell 1 " in problems[0] and "max(dims)" in problems[0]
    assert "ncf-vs-mf run" in problems[-1]
    assert check_executed(edited, tmp_path / "missing.ipynb")[0].endswith("make executed`")


def test_sanitising_is_idempotent_and_matches_the_nbval_rules():
    cfg = (REPO_ROOT / "tests" / "nbval_sanitize.cfg").read_text()
    rules = re.findall(r"^regex: (.*)$\n^replace: (.*)$", cfg, flags=re.MULTILINE)
    assert rules[0] == (chapters.PATH_REGEX, chapters.PATH_REPLACEMENT)
    for text in ["/work/main/results/x.csv", "a /tmp/pytest-1/book/ b", "../results/y.csv",
                 "http://example.org/a/b", "x = 1/2", "</td>"]:
        once = chapters.sanitize_text(text)
        assert chapters.sanitize_text(once) == once
        for regex, replace in rules:  # nbval applies all rules to the stored text again
            once_all = re.sub(regex, replace, once)
            assert re.sub(regex, replace, once_all) == once_all
    assert chapters.sanitize_text("../results/y.csv") == "../results/y.csv"


def test_failing_chapter_raises_without_writing(tmp_path):
    source = write_chapter(tmp_path, "broken", "n: int = 1  # n\n", "raise ValueError('boom')\n")
    with pytest.raises(chapters.ChapterExecutionError, match="ValueError: boom"):
        run_chapter(source, {}, tmp_path / "out", timeout=120)
    assert not (tmp_path / "out" / "broken.ipynb").exists()


# --------------------------------------------------------------------------------------------
# The command line


def test_cli_lists_chapters_with_parameters(capsys):
    if not find_chapters():
        pytest.skip("no chapters yet")
    assert cli.main(["chapters"]) == 0
    out = capsys.readouterr().out
    for chapter in find_chapters():
        assert chapter.name in out
        for p in chapter.parameters():
            assert re.search(rf"{re.escape(p.name)}\s+{re.escape(str(p.type))}\s+= ", out)


def test_cli_bad_parameters_exit_2_with_a_message(tiny, capsys):
    assert cli.main(["run", str(tiny.path), "-p", "n", "three"]) == 2
    err = capsys.readouterr().err
    assert "parameter 'n' of tiny expects int, got 'three'" in err
    assert cli.main(["run", str(tiny.path), "-p", "nope", "1"]) == 2
    assert "valid parameters: n (int), lr (float)" in capsys.readouterr().err
    assert cli.main(["run", str(tiny.path), "-p", "n", "1", "-p", "n", "2"]) == 2
    assert cli.main(["run", "no-such-chapter"]) == 2
    assert "no chapter 'no-such-chapter'" in capsys.readouterr().err


def test_cli_runs_as_a_module_and_console_script(tiny, tmp_path):
    for command in ([sys.executable, "-m", "ncf_vs_mf"],
                    [str(Path(sys.executable).with_name("ncf-vs-mf"))]):
        if not Path(command[0]).exists():
            continue
        done = subprocess.run([*command, "run", str(tiny.path), "-p", "lr", "fast"],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 2, done
        assert "expects float, got 'fast'" in done.stderr
        assert "Traceback" not in done.stderr


def test_cli_subcommand_table_is_extensible():
    assert "ncf_vs_mf.cli:add_chapter_commands" in cli.SUBCOMMANDS
    parser = cli.build_parser()
    args = parser.parse_args(["run", "definitions", "-p", "d", "4", "-p", "seed", "1"])
    assert args.parameter == [["d", "4"], ["seed", "1"]] and callable(args.func)
    assert args.output_dir.endswith("_build/executed")


# --------------------------------------------------------------------------------------------
# The book's own chapters and their committed executed notebooks


def _toc_chapters():
    toc = REPO_ROOT / "_toc.yml"
    found = []
    for entry in toc_files(toc) if toc.is_file() else []:
        path = REPO_ROOT / f"{entry}.md"
        if chapters.is_notebook(path):
            found.append(path.stem)
    return found


def test_toc_entries_exist():
    for entry in toc_files(REPO_ROOT / "_toc.yml"):
        assert (REPO_ROOT / f"{entry}.md").is_file() or (REPO_ROOT / f"{entry}.ipynb").is_file(), \
            f"_toc.yml lists {entry}, which does not exist"


@pytest.mark.parametrize("name", _toc_chapters())
def test_book_chapter_parameters_are_documented(name):
    chapter = resolve_chapter(name)
    for p in chapter.parameters():  # raises ChapterError on any broken convention
        assert p.doc


@pytest.mark.parametrize("name", _toc_chapters())
def test_committed_executed_notebook_matches_chapter(name):
    executed = REPO_ROOT / "executed" / f"{name}.ipynb"
    assert executed.is_file(), (f"executed/{name}.ipynb is missing: run `make executed` and "
                                "commit it")
    problems = check_executed(name, executed)
    assert not problems, "\n".join(problems)
    nb = nbformat.read(executed, as_version=4)
    assert nb.metadata.papermill["parameters"] == {}, "executed/ holds default-parameter runs"
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)


def test_no_stray_executed_notebooks():
    known = set(_toc_chapters())
    stray = [p.name for p in (REPO_ROOT / "executed").glob("*.ipynb") if p.stem not in known]
    assert not stray, f"executed/ has notebooks of chapters not in _toc.yml: {stray}"
