"""``ocp.probe`` / ``ocp.metrics`` against the exact verdicts on the same generated cases (float32 and float64), and
the companions: faulty copies of the dormancy code are caught by the same comparison."""

import pytest
import sympy as sp
import torch
from hypothesis import find, given, settings

from ocp import metrics
from theory.activations import by_name
from theory.cases import Domain, NeuronCase, Piece, vec
from theory.counterexamples import neuron_catalogue
from theory.generate import cases, layers
from theory.numeric import disagreements, layer_disagreements, measure, with_companion

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


@pytest.mark.parametrize("fault", [{"mask": strict_mask}, {"dormancy": signed_mean_dormancy}], ids=["lt-not-le", "mean-before-abs"])
def test_faulty_dormancy_code_is_caught(fault):
    """Searched on tanh units over finite samples, where both faults show: a dormant unit scores exactly 0 (the '<'
    mask misses it) and a unit swinging ±c has signed mean 0 (the mean-before-abs score calls it dead)."""
    found = find(cases(by_name("tanh"), "finite"), lambda c: disagreements(c, torch.float64, **fault) != [],
                 settings=settings(max_examples=2000, database=None))  # fmt: skip
    assert disagreements(found, torch.float64, **fault)


def test_relu_kink_autograd_convention_reads_as_zero_gradient():
    """w = 0, b = 0 under ReLU on D ⊂ {x₀ > 0}: the unit is dormant and the loss's right derivative along e₀ is
    −E[x₀²] ≠ 0 (left: 0), so ∂L/∂w does not exist; autograd's ReLU'(0) = 0 makes the probe report MAGI = 0."""
    case = next(c for c in neuron_catalogue() if c.id == "kink/open/relu").case
    m = measure(with_companion(case), torch.float64)
    assert m.dormant[0] and m.magi[0] == 0.0


def nan_blind_mask(scores, tau):
    return scores <= tau  # NaN <= τ is False: an all-dead layer would look fully alive


def test_nan_blind_mask_is_caught_on_an_all_dormant_layer():
    found = find(layers(by_name("relu")), lambda u: layer_disagreements(u, torch.float64, mask=nan_blind_mask) != [],
                 settings=settings(max_examples=2000, database=None))  # fmt: skip
    assert "all units exactly dormant" in layer_disagreements(found, torch.float64, mask=nan_blind_mask)[0]
