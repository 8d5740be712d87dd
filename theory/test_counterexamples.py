"""Every catalogue entry breaks what it says it breaks; the catalogue covers every required category; every
failing cell of the verdict rules has a verified counterexample and no proved cell has one."""

import dataclasses

import pytest
import sympy as sp
import torch

from theory.activations import ACTIVATIONS
from theory.cases import DIRECTIONS, KINDS, NOTIONS
from theory.counterexamples import (
    GAUSSIAN,
    LAYER_CATALOGUE,
    _heavy_tail,
    _tanh_saturation,
    _underflow,
    catalogue,
    entries_for,
    neuron_catalogue,
)
from theory.verdicts import FAILS, PROVED, theorem_verdict

CATALOGUE = catalogue()


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda c: c.id)
def test_counterexample_breaks_its_statements(entry):
    assert entry.verify(), entry.why


@pytest.mark.parametrize(
    "prefix",
    ["Assumption 1", "Assumption 2", "Assumption 3", "D not open", "D disconnected", "finite samples",
     "floating point (float32", "floating point (float64", "gradient notion"],
)  # fmt: skip
def test_required_category_present(prefix):
    assert any(c.violates.startswith(prefix) for c in CATALOGUE)


def test_repairing_the_assumption_removes_the_break():
    """Companions: the same data with the dropped condition restored no longer breaks anything."""
    sloped = next(c for c in neuron_catalogue() if c.id == "sloped-zero-hyperplane/affine/identity")
    live = dataclasses.replace(sloped, case=dataclasses.replace(sloped.case, b=sp.Integer(1)))
    assert not live.verify()
    two_levels = next(c for c in neuron_catalogue() if c.id == "two-flat-levels/disconnected/relu6")
    one_piece = dataclasses.replace(two_levels.case.domain, support=two_levels.case.domain.support[:1], region=())
    assert not dataclasses.replace(two_levels, case=dataclasses.replace(two_levels.case, domain=one_piece)).verify()
    dead_out = next(c for c in neuron_catalogue() if c.id == "dead-outgoing/finite/tanh")
    assert not dataclasses.replace(dead_out, case=dataclasses.replace(dead_out.case, v=sp.Integer(1), target=(sp.Integer(2),))).verify()
    assert not _underflow(torch.float64, -200)  # float64 represents sigmoid(−200) fine
    assert not _heavy_tail(GAUSSIAN)  # a neighbour with finite E|h| leaves s₁ > 0
    assert not _tanh_saturation(2)  # unsaturated: autograd's derivative is non-zero


@pytest.mark.parametrize("notion", NOTIONS)
def test_failing_cells_have_verified_counterexamples_and_proved_cells_none(notion):
    for act in ACTIVATIONS:
        for kind in KINDS:
            for direction in DIRECTIONS:
                verdict = theorem_verdict(act, kind, notion, direction)
                found = entries_for(act.name, kind, ("theorem", notion, direction))
                if verdict.status == FAILS:
                    assert found and all(e.verify() for e in found), (act.name, kind, direction)
                if verdict.status == PROVED:
                    assert not found, (act.name, kind, direction)


def test_layer_entries_state_their_data():
    assert all(c.data for c in LAYER_CATALOGUE)
