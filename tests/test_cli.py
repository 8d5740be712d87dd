"""The ``ocp`` console command dispatches to the module CLIs."""

import pytest

from ocp.cli import main


def test_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("train", "transfer", "demo"))


def test_unknown_command_is_an_error(capsys):
    assert main(["fly"]) == 2
    assert "usage: ocp COMMAND" in capsys.readouterr().err


def test_dispatch_to_module_help():
    with pytest.raises(SystemExit) as done:
        main(["train", "cleanrl", "--help"])
    assert done.value.code == 0


def test_demo_runs(capsys):
    assert main(["demo", "--steps", "5"]) == 0
    assert "== after 5 Adam steps" in capsys.readouterr().out
