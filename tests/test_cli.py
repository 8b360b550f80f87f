"""The ``ncf-vs-mf`` command line as a whole: ``reproduce`` has one subcommand per declared
experiment with the options its cell declares (the chapter commands are tested in
``test_chapters``)."""

import dataclasses

import pytest

from ncf_vs_mf import cli, experiments


def _reproduce_choices() -> dict:
    parser = cli.build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    return next(a for a in commands["reproduce"]._actions if a.dest == "experiment").choices


def test_every_declared_experiment_is_a_reproduce_subcommand():
    assert list(_reproduce_choices()) == list(experiments.EXPERIMENTS)


@pytest.mark.parametrize("name", list(experiments.EXPERIMENTS))
def test_the_options_are_those_the_cell_declares_plus_the_engines(name):
    experiment = experiments.get(name)
    parser = _reproduce_choices()[name]
    options = {o for a in parser._actions for o in a.option_strings}
    declared = {f.metadata["option"] for f in dataclasses.fields(experiment.cell)
                if f.metadata.get("option") and f.name not in experiment.fixed}
    engine = {"--jobs", "--threads", "--scheduler", "--data-dir", "--runs", "--out",
              "--publish", "--allow-dirty"}
    assert options - {"-h", "--help"} == declared | engine


def test_defaults_come_from_the_declaration(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["reproduce", "ncf", "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 8 16 32 64)" in text  # --factors
    assert "(default: GMF MLP NeuMF NeuMF-pretrained)" in text  # --models


def test_an_unknown_experiment_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as stop:
        cli.main(["reproduce", "bpr-grid"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "\n" not in err.strip() and "bpr-grid" in err
