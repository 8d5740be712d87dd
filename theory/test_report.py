"""The verdict table is computed, not typed: every cell comes from the checks, and a wrong rule makes it raise."""

import re
from pathlib import Path

import pytest

import theory.report as report
from theory.activations import ACTIVATIONS, CONVENTIONS, by_name
from theory.cases import DIRECTIONS, KINDS, NOTIONS
from theory.counterexamples import theorem_claim
from theory.verdicts import PROVED, VACUOUS, Verdict

CELL = re.compile(
    r"^(proved \[\d+\]|vacuous: (σ has no zero|no zero of σ is flat)|holds on \d+ generated cases"
    r"|fails( \(IVT\))?: [\w./-]+)$"
)


@pytest.fixture(scope="module")
def text():
    return report.render()


def test_every_cell_is_a_computed_verdict(text):
    """Four tables per convention; every cell a verdict, and every proved cell backed by generated cases that met
    its premise (a positive count)."""
    names = tuple(f"| `{a.name}` |" for a in ACTIVATIONS)
    rows = [[c.strip() for c in line.strip("|").split("|")][1:] for line in text.splitlines() if line.startswith(names)]
    rows = [cells for cells in rows if len(cells) == len(KINDS) * len(DIRECTIONS)]  # Table D has 5 columns
    assert len(rows) == 4 * len(CONVENTIONS) * len(ACTIVATIONS)
    for cells in rows:
        assert all(CELL.match(c) and c != "proved [0]" for c in cells), cells


def test_vacuous_cells_are_exactly_the_impossible_premises(text):
    """Sigmoid and softplus (no zero): every theorem cell and Lemma 1; ∂h/∂w's B ⇒ A on the four positive-dimensional
    kinds for the six σ whose zeros are not flat (identity, leaky ReLU, tanh, SiLU, GELU, ELU)."""
    vacuous = [
        (a.name, k, n, d)
        for a in ACTIVATIONS
        for k in KINDS
        for n in NOTIONS
        for d in DIRECTIONS
        if report.cell(a, k, theorem_claim(n, d, "autograd")).status == VACUOUS
    ]
    assert len(vacuous) == 2 * 30 + 6 * 4
    assert {a for a, k, n, d in vacuous if n == "grad_w" and d == "B=>A" and a not in ("sigmoid", "softplus")} == {
        "identity",
        "leaky_relu",
        "tanh",
        "silu",
        "gelu",
        "elu",
    }
    assert all(k != "finite" for a, k, n, d in vacuous if a not in ("sigmoid", "softplus"))


def test_conventions_differ_only_at_relu_and_relu6_kinks():
    """22 cells move between autograd and strict (ReLU, ReLU6: ∇ₓh on finite/affine D, ∂h/∂w on the four
    non-batch kinds, ∂L/∂w on all five); Clarke agrees with autograd on the pointwise gradients and with strict on
    the loss. Leaky ReLU fails the same cells under every convention (slopes 0.01 and 1)."""
    moved = {
        (a.name, k, n, d)
        for a in ACTIVATIONS
        for k in KINDS
        for n in NOTIONS
        for d in DIRECTIONS
        if report.cell(a, k, theorem_claim(n, d, "autograd")).status
        != report.cell(a, k, theorem_claim(n, d, "strict")).status
    }
    assert len(moved) == 22 and {m[0] for m in moved} == {"relu", "relu6"}
    clarke_like_strict = {
        m
        for m in moved
        if report.cell(by_name(m[0]), m[1], theorem_claim(m[2], m[3], "clarke")).status
        == report.cell(by_name(m[0]), m[1], theorem_claim(m[2], m[3], "strict")).status
    }
    assert {m[2] for m in clarke_like_strict} == {"loss"} and len(clarke_like_strict) == 10


def test_layer_catalogue_all_verified(text):
    assert "NOT VERIFIED" not in text


def test_wrong_rule_is_caught(monkeypatch):
    """Claiming 'proved' where a counterexample verifies makes the report refuse to print."""
    monkeypatch.setattr(report, "theorem_verdict", lambda *a: Verdict(PROVED, "injected"))
    with pytest.raises(RuntimeError, match="breaks it"):
        report._cell.__wrapped__(by_name("identity"), "affine", theorem_claim("grad_x", "A=>B", "autograd"))


def test_wrong_vacuous_rule_is_caught(monkeypatch):
    """Calling a satisfiable premise vacuous makes the report refuse: generated cases meet it."""
    monkeypatch.setattr(report, "theorem_verdict", lambda *a: Verdict(VACUOUS, "injected"))
    with pytest.raises(RuntimeError, match="meets the premise"):
        report._cell.__wrapped__(by_name("tanh"), "open", theorem_claim("grad_x", "B=>A", "autograd"))


def test_main_writes_file(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "render", lambda: "table")
    out = tmp_path / "verdicts.md"
    assert report.main([str(out)]) == 0
    assert out.read_text() == "table\n"


def test_committed_table_is_current(text):
    with open(Path(__file__).with_name("VERDICTS.md"), encoding="utf-8") as fh:
        assert fh.read() == text + "\n", "regenerate: python -m theory.report theory/VERDICTS.md"
