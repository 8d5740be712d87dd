"""Every catalogue entry breaks what it says it breaks; the catalogue covers every required category; every
failing cell of the verdict rules has a verified counterexample and no proved cell has one."""

import dataclasses

import pytest
import sympy as sp
import torch

from theory.activations import ACTIVATIONS, CONVENTIONS
from theory.cases import DIRECTIONS, KINDS, NOTIONS, implication, loss_grad_zero
from theory.counterexamples import (
    GAUSSIAN,
    LAYER_CATALOGUE,
    _heavy_tail,
    _tanh_saturation,
    _underflow,
    catalogue,
    entries_for,
    neuron_catalogue,
    theorem_claim,
)
from theory.verdicts import FAILS, PROVED, VACUOUS, theorem_verdict

CATALOGUE = catalogue()


def entry(entry_id):
    return next(c for c in neuron_catalogue() if c.id == entry_id)


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda c: c.id)
def test_counterexample_breaks_its_statements(entry):
    assert entry.verify(), entry.why


@pytest.mark.parametrize(
    "prefix",
    [
        "Assumption 1",
        "Assumption 2",
        "Assumption 3",
        "D not open",
        "D disconnected",
        "finite samples",
        "floating point (float32",
        "floating point (float64",
        "gradient notion",
    ],
)
def test_required_category_present(prefix):
    assert any(c.violates.startswith(prefix) for c in CATALOGUE)


def test_repairing_the_assumption_removes_the_break():
    """Companions: the same data with the dropped condition restored no longer breaks anything."""
    sloped = entry("sloped-zero-hyperplane/affine/identity")
    live = dataclasses.replace(sloped, case=dataclasses.replace(sloped.case, b=sp.Integer(1)))
    assert not live.verify()
    two_levels = entry("two-flat-levels/disconnected/relu6")
    one_piece = dataclasses.replace(two_levels.case.domain, support=two_levels.case.domain.support[:1], region=())
    assert not dataclasses.replace(two_levels, case=dataclasses.replace(two_levels.case, domain=one_piece)).verify()
    dead_out = entry("dead-outgoing/finite/tanh")
    assert not dataclasses.replace(
        dead_out, case=dataclasses.replace(dead_out.case, v=sp.Integer(1), target=(sp.Integer(2),))
    ).verify()
    assert not _underflow(torch.float64, -200)  # float64 represents sigmoid(−200) fine
    assert not _heavy_tail(GAUSSIAN)  # a neighbour with finite E|h| leaves s₁ > 0
    assert not _tanh_saturation(2)  # unsaturated: autograd's derivative is non-zero


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("notion", NOTIONS)
def test_failing_cells_have_verified_counterexamples_and_proved_cells_none(notion, convention):
    for act in ACTIVATIONS:
        for kind in KINDS:
            for direction in DIRECTIONS:
                verdict = theorem_verdict(act, kind, notion, direction, convention)
                found = entries_for(act.name, kind, theorem_claim(notion, direction, convention))
                if verdict.status == FAILS:
                    assert found and all(e.verify() for e in found), (act.name, kind, direction)
                if verdict.status in (PROVED, VACUOUS):
                    assert not found, (act.name, kind, direction)


def test_ids_are_unique():
    """One id names one case: a cell citing an id is unambiguous."""
    ids = [c.id for c in CATALOGUE]
    assert len(ids) == len(set(ids)) == 138


def test_kink_entries_break_only_under_the_conventions_they_name():
    """ReLU's kink breaks are the strict reading's (and Clarke's for the loss); leaky ReLU's hold under every one."""
    assert {c[3] for c in entry("kink-hyperplane/affine/relu").breaks} == {"strict"}
    assert {c[3] for c in entry("kink-zero-weights/open/relu").breaks} == {"strict"}
    assert {c[3] for c in entry("kink-symmetric-inputs/open/relu").breaks} == {"strict", "clarke"}
    assert {c[3] for c in entry("kink-zero-weights/open/leaky_relu").breaks} == set(CONVENTIONS)
    hyperplane = entry("kink-hyperplane/affine/relu").case
    assert [implication(hyperplane, "grad_x", "A=>B", c) for c in CONVENTIONS] == [True, False, True]


def test_symmetric_inputs_give_the_mean_slope_gradient():
    """ReLU, w = 0, b = 0, D = {(2, 1), (−2, −1)}, t = e₀, v = 1: ∂L/∂w = −½(0 + 1)·E[x₀·x] = −½·(4, 2) ≠ 0 for
    strict and Clarke; with the mirror point removed, Clarke's gradient contains the flat side's limit 0."""
    case = entry("kink-symmetric-inputs/finite/relu").case
    assert [loss_grad_zero(case, c) for c in CONVENTIONS] == [True, False, False]
    one_sided = dataclasses.replace(
        case, domain=dataclasses.replace(case.domain, support=case.domain.support[:1], region=())
    )
    assert one_sided.domain.support[0].point == (2, 1)
    assert [loss_grad_zero(one_sided, c) for c in CONVENTIONS] == [True, False, True]


@pytest.mark.parametrize("name", ["silu", "gelu"])
def test_ivt_entries_stored_point_is_not_itself_a_counterexample(name):
    """The stored rational x₁ only approximates the irrational flat point: the exact evaluator finds σ'(x₁) ≠ 0 and
    the implication true there; the entry verifies through the intermediate-value argument."""
    e = entry(f"origin-plus-flat/finite/{name}")
    assert e.by_ivt and e.verify()
    assert implication(e.case, "grad_w", "B=>A", "strict") is True


def test_layer_entries_state_their_data():
    assert all(c.data for c in LAYER_CATALOGUE)
