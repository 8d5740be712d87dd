"""Property-based checks: on generated layers and domains, every cell the verdict rules call proved holds; and for
each rule, dropping one of its conditions lets a search find a counterexample (so none of these checks is vacuous)."""

import pytest
from hypothesis import HealthCheck, find, given, settings

from theory.activations import by_name
from theory.cases import DIRECTIONS, NOTIONS, dormant, implication, lemma1, lemma3, statement_b
from theory.generate import cases
from theory.verdicts import PROVED, lemma1_verdict, lemma3_verdict, theorem_verdict


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("notion", NOTIONS)
@given(case=cases())
def test_proved_cells_hold_on_generated_cases(notion, direction, case):
    if theorem_verdict(case.act, case.domain.kind, notion, direction).status == PROVED:
        assert implication(case, notion, direction) is not False


@given(case=cases())
def test_lemma1_holds_where_proved(case):
    if lemma1_verdict(case.act, case.domain.kind).status == PROVED:
        assert lemma1(case)


@given(case=cases())
def test_lemma3_holds_where_proved(case):
    if lemma3_verdict(case.act, case.domain.kind).status == PROVED:
        assert lemma3(case)


def test_lemma3_search_finds_break_on_disconnected_domain():
    found = find(cases(by_name("smoothstep"), "disconnected"), lambda c: not lemma3(c),
                 settings=settings(max_examples=2000, database=None))  # fmt: skip
    assert not lemma3(found)


@pytest.mark.parametrize("wanted", [True, False])
def test_generator_produces_dormant_and_live_units(wanted):
    """The properties above are not vacuous: generated cases make A and B each true and false."""
    find(cases(by_name("relu"), "open"), lambda c: dormant(c) is wanted, settings=settings(database=None))
    find(cases(by_name("tanh"), "affine"), lambda c: statement_b(c, "grad_x") is wanted, settings=settings(database=None))


#: (activation, domain kind, notion, direction): a condition of a proved cell dropped, and the search must find the break.
DROPPED = [
    ("identity", "affine", "grad_x", "A=>B"),  # D open → lower-dimensional D
    ("tanh", "batch", "grad_x", "A=>B"),  # s over D → s over a batch
    ("relu", "finite", "grad_x", "A=>B"),  # C¹ → ReLU kink on a finite D
    ("relu6", "disconnected", "grad_x", "B=>A"),  # D connected → two boxes
    ("smoothstep", "finite", "grad_w", "B=>A"),  # D connected → finite sample
    ("tanh", "open", "grad_w", "A=>B"),  # ∇ₓh → ∂h/∂w
    ("tanh", "finite", "loss", "B=>A"),  # ∇ₓh → ∂L/∂w through a read-out
    ("identity", "open", "loss", "A=>B"),  # ∇ₓh → ∂L/∂w: the dormant No-Act unit (w = 0, b = 0) still learns
]


@pytest.mark.parametrize("act, kind, notion, direction", DROPPED)
def test_search_finds_counterexample_once_a_condition_is_dropped(act, kind, notion, direction):
    found = find(
        cases(by_name(act), kind),
        lambda c: implication(c, notion, direction) is False,
        settings=settings(max_examples=2000, database=None, suppress_health_check=list(HealthCheck)),
    )
    assert implication(found, notion, direction) is False


def test_lemma1_search_finds_batch_break():
    found = find(cases(by_name("relu"), "batch"), lambda c: not lemma1(c), settings=settings(max_examples=2000, database=None))
    assert dormant(found)
