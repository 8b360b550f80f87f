"""environment.yml (conda) and pyproject.toml pin the same packages at the same versions."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def _name(requirement: str) -> str:
    """PEP 503 normalised project name."""
    return re.sub(r"[-_.]+", "-", requirement).lower()


def _pins(requirements: list[str], origin: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for requirement in requirements:
        match = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*==\s*([^\s;,]+)\s*", requirement)
        assert match, f"{origin}: {requirement!r} is not pinned as name==version"
        name = _name(match.group(1))
        assert name not in pins, f"{origin}: {name} listed twice"
        pins[name] = match.group(2)
    return pins


def pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    requirements += project.get("optional-dependencies", {}).get("test", [])
    return _pins(requirements, "pyproject.toml")


def environment() -> dict:
    return yaml.safe_load((REPO_ROOT / "environment.yml").read_text())


def environment_pins() -> dict[str, str]:
    pip_sections = [d["pip"] for d in environment()["dependencies"] if isinstance(d, dict)]
    assert len(pip_sections) == 1, "environment.yml needs exactly one pip: section"
    requirements = [r for r in pip_sections[0] if not r.lstrip().startswith("-")]
    return _pins(requirements, "environment.yml")


def test_environment_and_pyproject_pin_the_same_packages():
    ours, theirs = pyproject_pins(), environment_pins()
    assert sorted(ours) == sorted(theirs), (
        f"only in pyproject.toml: {sorted(set(ours) - set(theirs))}; "
        f"only in environment.yml: {sorted(set(theirs) - set(ours))}")
    differing = {n: (ours[n], theirs[n]) for n in ours if ours[n] != theirs[n]}
    assert not differing, f"versions differ (pyproject, environment.yml): {differing}"


def test_environment_python_and_package_install():
    deps = environment()["dependencies"]
    assert "python=3.11" in deps and "pip" in deps
    pip_section = next(d["pip"] for d in deps if isinstance(d, dict))
    assert "-e ." in pip_section, "environment.yml should install the ncf_vs_mf package"


def test_torch_is_pinned_to_the_cpu_build_on_disk():
    assert pyproject_pins()["torch"] == "2.13.0"
    assert environment_pins()["torch"] == "2.13.0"


def test_jupyter_book_is_1x():
    for pins in (pyproject_pins(), environment_pins()):
        major = int(pins["jupyter-book"].split(".")[0])
        assert major < 2, f"jupyter-book {pins['jupyter-book']}: the book is built with 1.x"


def test_python_requirement_is_3_11():
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.12"
