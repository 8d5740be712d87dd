"""``ocp.probe`` / ``ocp.metrics`` against the exact verdicts on the same generated cases (float32 and float64), and
the companions: faulty copies of the dormancy code are caught by the same comparison. The exact gradients are read
under autograd's convention at kinks (``theory.numeric.CONVENTION``), the one the tables list first."""

import pytest
import sympy as sp
import torch
from hypothesis import assume, find, given, settings
from hypothesis import strategies as st

from ocp import metrics
from theory.activations import ACTIVATIONS, by_name
from theory.cases import KINDS, Domain, NeuronCase, Piece, loss_grad_zero, vec
from theory.counterexamples import neuron_catalogue
from theory.generate import cases, layers, premise_cases
from theory.numeric import CONVENTION, disagreements, layer_disagreements, measure, with_companion

DTYPES = [torch.float32, torch.float64]


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@given(case=cases())
def test_metric_code_agrees_with_exact_verdicts(dtype, case):
    assert disagreements(case, dtype) == []


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@given(units=layers())
def test_metric_code_agrees_on_generated_layers(dtype, units):
    """Widths 1–4, some or all units dormant (an all-dormant layer is the Assumption-3 failure)."""
    assert layer_disagreements(units, dtype) == []


@pytest.mark.parametrize("premise", ["A", "B:grad_w", "B:loss"])
@given(data=st.data(), act=st.sampled_from(ACTIVATIONS), kind=st.sampled_from(KINDS))
def test_metric_code_agrees_on_the_autograd_tables_premise_cases(premise, data, act, kind):
    """The cases the autograd tables are checked on (dormant units, zero weight gradients, pre-activations exactly
    at a kink) through the probe."""
    case = data.draw(premise_cases(act, kind, premise, CONVENTION))
    assume(case is not None)
    assert disagreements(case, torch.float64) == []


def test_dead_relu_on_sampled_box_scores_exactly_zero_with_zero_magi():
    """Pre-activation ≤ −1/2 on the whole box: score exactly 0 and MAGI of a training loss exactly 0."""
    box = Piece(vec(0, 0), (vec(1, 0), vec(0, 1)), sp.Integer(1))
    case = NeuronCase(by_name("relu"), vec(1, 1), sp.Rational(-5, 2), Domain("open", (box,)), target=vec(1, -1))
    for dtype in DTYPES:
        m = measure(with_companion(case), dtype)
        assert m.scores[0] == 0.0 and m.dormant[0] and m.magi[0] == 0.0


@pytest.mark.parametrize("entry_id", ["dead-outgoing/finite/tanh", "zero-weights-at-zero/finite/identity"])
def test_gradient_gap_entries_through_the_probe(entry_id):
    """The catalogue's gradient-gap entries, measured: a live unit with MAGI 0, a dormant unit with MAGI > 0."""
    case = next(c for c in neuron_catalogue() if c.id == entry_id).case
    m = measure(with_companion(case), torch.float64)
    if entry_id.startswith("dead-outgoing"):
        assert m.magi[0] == 0.0 and not m.dormant[0]
    else:
        assert m.magi[0] > 0.0 and m.dormant[0]


def test_float32_score_does_not_underflow_in_ocp_metrics():
    """The naive float32 division underflows (catalogue fp32-naive-score-underflow); ocp.metrics must not."""
    scores = metrics.dormancy_scores(torch.tensor([[1e-30, 1e20]], dtype=torch.float32))
    assert scores[0] > 0 and not metrics.dormant_mask(scores)[0]


def strict_mask(scores, tau):
    return scores < tau


def signed_mean_dormancy(acts):
    means = acts.mean(0).abs()  # mean before abs: a unit swinging ±1 looks dead
    return means / means.mean()


@pytest.mark.parametrize(
    "fault", [{"mask": strict_mask}, {"dormancy": signed_mean_dormancy}], ids=["lt-not-le", "mean-before-abs"]
)
def test_faulty_dormancy_code_is_caught(fault):
    """Searched on tanh units over finite samples, where both faults show: a dormant unit scores exactly 0 (the '<'
    mask misses it) and a unit swinging ±c has signed mean 0 (the mean-before-abs score calls it dead)."""
    found = find(
        cases(by_name("tanh"), "finite"),
        lambda c: disagreements(c, torch.float64, **fault) != [],
        settings=settings(max_examples=2000, database=None),
    )
    assert disagreements(found, torch.float64, **fault)


@pytest.mark.parametrize("entry_id", ["kink-zero-weights/open/relu", "kink-symmetric-inputs/open/relu"])
def test_relu_kink_reads_as_zero_gradient_under_autograd_only(entry_id):
    """w = 0, b = 0 under ReLU: dormant, and autograd's ReLU'(0) = 0 makes both the exact autograd reading of ∂L/∂w
    and the probe's MAGI exactly 0. The strict reading differs: on D ⊂ {x₀ > 0} the loss is not differentiable, and
    on inputs symmetric about 0 it is, with gradient −½·E[x₀·x] ≠ 0 (Clarke's reading agrees there)."""
    case = next(c for c in neuron_catalogue() if c.id == entry_id).case
    m = measure(with_companion(case), torch.float64)
    assert m.dormant[0] and m.magi[0] == 0.0
    assert loss_grad_zero(case, CONVENTION) is True
    assert loss_grad_zero(case, "strict") is False
    one_sided_inputs = entry_id.startswith("kink-zero-weights")  # approaching w = 0 from the flat side gives 0
    assert loss_grad_zero(case, "clarke") is one_sided_inputs


def test_leaky_relu_kink_gradient_is_measured():
    """Leaky ReLU's autograd slope at 0 is 0.01: the dormant unit with w = 0, b = 0 on symmetric inputs has exact
    autograd ∂L/∂w = −0.01·E[x₀·x] ≠ 0, and the probe sees a non-zero MAGI."""
    case = next(c for c in neuron_catalogue() if c.id == "kink-symmetric-inputs/finite/leaky_relu").case
    m = measure(with_companion(case), torch.float64)
    assert loss_grad_zero(case, CONVENTION) is False and m.dormant[0] and m.magi[0] > 0.0


def nan_blind_mask(scores, tau):
    return scores <= tau  # NaN <= τ is False: an all-dead layer would look fully alive


def test_nan_blind_mask_is_caught_on_an_all_dormant_layer():
    found = find(
        layers(by_name("relu")),
        lambda u: layer_disagreements(u, torch.float64, mask=nan_blind_mask) != [],
        settings=settings(max_examples=2000, database=None),
    )
    assert "all units exactly dormant" in layer_disagreements(found, torch.float64, mask=nan_blind_mask)[0]
