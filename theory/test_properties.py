"""Property-based checks: on generated layers and domains, every cell the verdict rules call proved holds; and for
each rule, dropping one of its conditions lets a search find a counterexample (so none of these checks is vacuous)."""

import pytest
from hypothesis import HealthCheck, assume, find, given, settings
from hypothesis import strategies as st

from theory.activations import ACTIVATIONS, CONVENTIONS, by_name
from theory.cases import DIRECTIONS, KINDS, NOTIONS, dormant, grad_x_zero, implication, lemma1, lemma3, statement_b
from theory.generate import cases, premise_cases
from theory.verdicts import PROVED, VACUOUS, lemma1_verdict, lemma3_verdict, theorem_verdict


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("notion", NOTIONS)
@given(case=cases())
def test_proved_cells_hold_on_generated_cases(notion, direction, convention, case):
    if theorem_verdict(case.act, case.domain.kind, notion, direction, convention).status in (PROVED, VACUOUS):
        assert implication(case, notion, direction, convention) is not False


@pytest.mark.parametrize("convention", CONVENTIONS)
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("notion", NOTIONS)
@given(data=st.data(), act=st.sampled_from(ACTIVATIONS), kind=st.sampled_from(KINDS))
def test_premise_cases_meet_the_premise_and_proved_cells_hold(notion, direction, convention, data, act, kind):
    """Cases built for the cell's premise: where it holds the implication is really tested; a vacuous cell's premise
    never holds."""
    premise = "A" if direction == "A=>B" else f"B:{notion}"
    case = data.draw(premise_cases(act, kind, premise, convention))
    assume(case is not None)
    met = dormant(case) if direction == "A=>B" else statement_b(case, notion, convention) is True
    status = theorem_verdict(act, kind, notion, direction, convention).status
    if status == VACUOUS:
        assert not met
    if status == PROVED and met:
        assert implication(case, notion, direction, convention) is not False


@given(case=cases())
def test_lemma1_holds_where_proved(case):
    if lemma1_verdict(case.act, case.domain.kind).status == PROVED:
        assert lemma1(case)


@pytest.mark.parametrize("convention", CONVENTIONS)
@given(data=st.data(), act=st.sampled_from(ACTIVATIONS), kind=st.sampled_from(KINDS))
def test_lemma3_holds_where_proved(convention, data, act, kind):
    case = data.draw(premise_cases(act, kind, "grad_x=0", convention))
    assume(case is not None)
    if lemma3_verdict(act, kind, convention).status == PROVED:
        assert lemma3(case, convention)


def test_lemma3_search_finds_break_on_disconnected_domain():
    found = find(
        cases(by_name("smoothstep"), "disconnected"),
        lambda c: not lemma3(c, "strict"),
        settings=settings(max_examples=2000, database=None),
    )
    assert not lemma3(found, "strict") and grad_x_zero(found, "strict")


@pytest.mark.parametrize("wanted", [True, False])
def test_generator_produces_dormant_and_live_units(wanted):
    """The properties above are not vacuous: generated cases make A and B each true and false."""
    find(cases(by_name("relu"), "open"), lambda c: dormant(c) is wanted, settings=settings(database=None))
    find(
        cases(by_name("tanh"), "affine"),
        lambda c: statement_b(c, "grad_x", "strict") is wanted,
        settings=settings(database=None),
    )


#: (activation, domain kind, notion, direction, convention): a condition of a proved cell dropped, and the search
#: must find the break.
DROPPED = [
    ("identity", "affine", "grad_x", "A=>B", "autograd"),  # D open → lower-dimensional D
    ("tanh", "batch", "grad_x", "A=>B", "autograd"),  # s over D → s over a batch
    ("relu", "finite", "grad_x", "A=>B", "strict"),  # autograd's ReLU'(0) = 0 → strict: the kink on a finite D
    ("leaky_relu", "finite", "grad_x", "A=>B", "clarke"),  # ReLU → leaky ReLU: the kink breaks it under Clarke too
    ("relu6", "disconnected", "grad_x", "B=>A", "autograd"),  # D connected → two boxes
    ("smoothstep", "finite", "grad_w", "B=>A", "autograd"),  # D connected → finite sample
    ("tanh", "open", "grad_w", "A=>B", "autograd"),  # ∇ₓh → ∂h/∂w
    ("tanh", "finite", "loss", "B=>A", "autograd"),  # ∇ₓh → ∂L/∂w through a read-out
    (
        "identity",
        "open",
        "loss",
        "A=>B",
        "autograd",
    ),  # ∇ₓh → ∂L/∂w: the dormant No-Act unit (w = 0, b = 0) still learns
]


@pytest.mark.parametrize("act, kind, notion, direction, convention", DROPPED)
def test_search_finds_counterexample_once_a_condition_is_dropped(act, kind, notion, direction, convention):
    found = find(
        cases(by_name(act), kind),
        lambda c: implication(c, notion, direction, convention) is False,
        settings=settings(max_examples=2000, database=None, suppress_health_check=list(HealthCheck)),
    )
    assert implication(found, notion, direction, convention) is False


def test_lemma1_search_finds_batch_break():
    found = find(
        cases(by_name("relu"), "batch"), lambda c: not lemma1(c), settings=settings(max_examples=2000, database=None)
    )
    assert dormant(found)
