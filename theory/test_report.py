"""The verdict table is computed, not typed: every cell comes from the checks, and a wrong rule makes it raise."""

import re
from pathlib import Path

import pytest

import theory.report as report
from theory.activations import ACTIVATIONS, by_name
from theory.cases import DIRECTIONS, KINDS
from theory.verdicts import PROVED, Verdict

CELL = re.compile(r"^(proved|holds on \d+ generated cases|fails: [\w./-]+)$")


@pytest.fixture(scope="module")
def text():
    return report.render()


def test_every_cell_is_a_computed_verdict(text):
    names = tuple(f"| `{a.name}` |" for a in ACTIVATIONS)
    rows = [line for line in text.splitlines() if line.startswith(names)]
    assert len(rows) == 4 * len(ACTIVATIONS)
    for row in rows[: 3 * len(ACTIVATIONS)]:
        cells = [c.strip() for c in row.strip("|").split("|")][1:]
        assert len(cells) == len(KINDS) * len(DIRECTIONS)
        assert all(CELL.match(c) for c in cells), row


def test_layer_catalogue_all_verified(text):
    assert "NOT VERIFIED" not in text


def test_wrong_rule_is_caught(monkeypatch):
    """Claiming 'proved' where a counterexample verifies makes the report refuse to print."""
    monkeypatch.setattr(report, "theorem_verdict", lambda *a: Verdict(PROVED, "injected"))
    with pytest.raises(RuntimeError, match="breaks it"):
        report.cell(by_name("identity"), "affine", ("theorem", "grad_x", "A=>B"))


def test_main_writes_file(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "render", lambda: "table")
    out = tmp_path / "verdicts.md"
    assert report.main([str(out)]) == 0
    assert out.read_text() == "table\n"


def test_committed_table_is_current(text):
    with open(Path(__file__).with_name("VERDICTS.md"), encoding="utf-8") as fh:
        assert fh.read() == text + "\n", "regenerate: python -m theory.report theory/VERDICTS.md"
