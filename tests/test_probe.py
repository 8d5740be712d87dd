"""ocp.probe: against a manual NumPy computation, layer discovery, no side effects, bad input."""

import dataclasses
import math
import warnings
import weakref

import numpy as np
import pytest
import torch
from torch import nn

from ocp import metrics as M
from ocp.dispatch_count import count_dispatch
from ocp.probe import PlasticityProbe, network_ratio


def relu_mlp(dtype=torch.float64, device="cpu"):
    """2-4-3-1 ReLU MLP with hand-set weights: hidden unit 1 of layer 0 is dead (w = 0, b = -1)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[1.0, -1.0], [0.0, 0.0], [0.5, 2.0], [-1.0, 0.3]]))
        net[0].bias.copy_(torch.tensor([0.1, -1.0, 0.0, 0.2]))
        net[2].weight.copy_(torch.tensor([[1.0, 0.5, -0.5, 0.2], [-0.3, 0.1, 0.8, 1.0], [0.0, 0.0, 0.0, 0.0]]))
        net[2].bias.copy_(torch.tensor([0.0, 0.1, 0.5]))
        net[4].weight.copy_(torch.tensor([[0.7, -1.2, 0.0]]))  # layer-1 unit 2 is live but has a zero outgoing weight
        net[4].bias.copy_(torch.tensor([0.05]))
    return net.to(device=device, dtype=dtype)


X = np.array([[0.5, -1.0], [1.5, 0.3], [-0.7, 0.8], [0.2, 0.2], [-1.1, -0.4]])
Y = np.array([[1.0], [-0.5], [0.3], [0.0], [2.0]])


def mse(target):
    return lambda out: ((out - target) ** 2).mean()


def numpy_reference(net):
    """Forward and backward of L = mean((out - y)^2) written out by hand."""
    W = [net[i].weight.detach().double().cpu().numpy() for i in (0, 2, 4)]
    b = [net[i].bias.detach().double().cpu().numpy() for i in (0, 2, 4)]
    z1 = X @ W[0].T + b[0]
    h1 = np.maximum(z1, 0)
    z2 = h1 @ W[1].T + b[1]
    h2 = np.maximum(z2, 0)
    out = h2 @ W[2].T + b[2]
    d_out = 2 * (out - Y) / len(X)
    d_h2 = d_out @ W[2]
    d_z2 = d_h2 * (z2 > 0)
    d_h1 = d_z2 @ W[1]
    d_z1 = d_h1 * (z1 > 0)
    grads = [d_z1.T @ X, d_z2.T @ h1, d_out.T @ h2]
    acts, act_grads = [h1, h2, out], [d_h1, d_h2, d_out]

    def norm(v):
        return v / v.mean()

    return [
        dict(
            dormancy=norm(np.abs(a).mean(0)),
            magi=np.abs(g).mean(1),
            grad_scores=norm(np.abs(g).mean(1)),
            act_grad_scores=norm(np.abs(ag).mean(0)),
            features=a,
        )
        for a, g, ag in zip(acts, grads, act_grads)
    ]


def test_probe_matches_manual_computation(device, dtype):
    net = relu_mlp(dtype, device)
    x = torch.tensor(X, dtype=dtype, device=device)
    y = torch.tensor(Y, dtype=dtype, device=device)
    result = PlasticityProbe(net).measure(x, mse(y))
    ref = numpy_reference(net)
    assert [r.name for r in result.hidden] == ["0", "2"] and [r.name for r in result.output] == ["4"]
    assert [r.activation for r in result.layers] == ["ReLU", "ReLU", "none"]
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-12, atol=1e-12)
    for report, expected in zip(result.layers, ref):
        for field, key in [
            ("dormancy_scores", "dormancy"),
            ("magi", "magi"),
            ("gradient_scores", "grad_scores"),
            ("activation_gradient_scores", "act_grad_scores"),
            ("features", "features"),
        ]:
            got = getattr(report, field).cpu().double().numpy()
            np.testing.assert_allclose(got, expected[key], **tol, err_msg=f"{report.name}.{field}")
    # Exact verdicts: the dead unit (0, 1) is dormant and zero-gradient at tau = 0; so is none else in layer 0.
    assert result.layer("0").dormant_mask(0.0).tolist() == [False, True, False, False]
    assert result.layer("0").zero_gradient_mask(0.0).tolist() == [False, True, False, False]


def test_live_unit_with_zero_outgoing_weights_has_zero_gradient_but_is_not_dormant():
    # Pitfall: zero gradient does not imply dormancy (e.g. right after a ReDo reset zeroes outgoing weights).
    net = relu_mlp()
    result = PlasticityProbe(net).measure(torch.tensor(X), mse(torch.tensor(Y)))
    layer1 = result.layer("2")
    assert layer1.dormancy_scores[2] > 0
    assert layer1.magi[2] == 0 and layer1.zero_gradient_mask(0.0)[2]
    assert not layer1.dormant_mask(0.0)[2]


def test_network_ratio_is_sum_over_units_not_mean_of_layer_fractions():
    net = relu_mlp()
    result = PlasticityProbe(net).measure(torch.tensor(X), mse(torch.tensor(Y)))
    layer_dormant = [int(r.dormant_mask(0.0).sum()) for r in result.hidden]
    widths = [r.width for r in result.hidden]
    assert widths == [4, 3]
    expected = sum(layer_dormant) / 7
    assert result.dormant_ratio(0.0) == expected
    zg = [int(r.zero_gradient_mask(0.0).sum()) for r in result.hidden]
    assert zg == [1, 1] and result.zero_gradient_ratio(0.0) == 2 / 7
    assert result.zero_gradient_ratio(0.0) != np.mean([1 / 4, 1 / 3])  # the mean-of-fractions aggregation


def test_output_sum_and_layer_output_sum_objectives():
    net = relu_mlp()
    x = torch.tensor(X)
    out_sum = PlasticityProbe(net).measure(x, "output_sum")
    # d(sum out)/dW3 = sum_k h2_k: compare with the NumPy forward.
    h2 = numpy_reference(net)[1]["features"]
    np.testing.assert_allclose(out_sum.layer("4").magi.numpy(), np.abs(h2.sum(0)).mean(keepdims=True))
    eq17 = PlasticityProbe(net).measure(x, "layer_output_sum")
    # Literal Eq. 17: dS/dW_ij = sum_k X_kj for every unit i -> identical MAGI across the layer.
    expected0 = np.abs(X.sum(0)).mean()
    np.testing.assert_allclose(eq17.layer("0").magi.numpy(), np.full(4, expected0))
    h1 = numpy_reference(net)[0]["features"]
    np.testing.assert_allclose(eq17.layer("2").magi.numpy(), np.full(3, np.abs(h1.sum(0)).mean()))
    assert eq17.zero_gradient_ratio(0.0) == 0.0  # the dead unit is not "zero-gradient" under Eq. 17
    assert all(torch.isnan(r.activation_gradient_scores).all() for r in eq17.layers)


def test_degenerate_layer_reported():
    net = relu_mlp()
    with torch.no_grad():
        net[0].bias.fill_(-100.0)  # every layer-0 output is exactly 0
    result = PlasticityProbe(net).measure(torch.tensor(X), mse(torch.tensor(Y)))
    layer0 = result.layer("0")
    assert layer0.degenerate and torch.isnan(layer0.dormancy_scores).all()
    assert layer0.dormant_ratio(0.0) == 1.0
    assert layer0.gradient_degenerate and layer0.zero_gradient_ratio(0.0) == 1.0
    assert "degenerate" in result.format()


# ---------------------------------------------------------------------------------------------------------------
# The probe leaves the model as it found it
# ---------------------------------------------------------------------------------------------------------------


def _all_hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks) for m in model.modules())


def test_probe_has_no_side_effects():
    net = nn.Sequential(nn.Linear(2, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 1))
    net.train()
    net[2].eval()  # a mixed-mode model: every module's own flag must come back
    net[0].weight.grad = torch.full_like(net[0].weight, 7.0)
    params_before = [p.detach().clone() for p in net.parameters()]
    rng_before = torch.get_rng_state()
    probe = PlasticityProbe(net, layers={"0": "1", "3": None})
    probe.measure(torch.tensor(X, dtype=torch.float32), "output_sum", train_mode=True)
    assert torch.equal(net[0].weight.grad, torch.full_like(net[0].weight, 7.0))
    assert net[3].weight.grad is None
    assert [m.training for m in net] == [True, True, False, True] and net.training
    assert _all_hooks(net) == 0
    assert torch.equal(torch.get_rng_state(), rng_before)
    assert all(torch.equal(a, b) for a, b in zip(params_before, net.parameters()))


def test_no_hook_left_when_objective_raises():
    net = relu_mlp()
    modes = [m.training for m in net.modules()]

    def boom(out):
        raise RuntimeError("objective failed")

    with pytest.raises(RuntimeError, match="objective failed"):
        PlasticityProbe(net).measure(torch.tensor(X), boom)
    assert _all_hooks(net) == 0
    assert [m.training for m in net.modules()] == modes


def test_eval_mode_by_default_keeps_batchnorm_buffers():
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.BatchNorm1d(4), nn.Linear(4, 1))
    net.train()
    before = net[2].running_mean.clone()
    PlasticityProbe(net).measure(torch.tensor(X, dtype=torch.float32), "output_sum")
    assert torch.equal(net[2].running_mean, before) and net.training


def test_train_mode_reaches_every_module_and_an_overridden_train_is_honoured():
    class FrozenNorm(nn.Sequential):  # its train() keeps the batch norm in eval mode, as some RL code does
        def train(self, mode=True):
            super().train(mode)
            self[2].eval()
            return self

    for net, norm_moves in (
        (nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.BatchNorm1d(4), nn.Linear(4, 1)), True),
        (FrozenNorm(nn.Linear(2, 4), nn.ReLU(), nn.BatchNorm1d(4), nn.Linear(4, 1)), False),
    ):
        net.eval()
        before = net[2].running_mean.clone()
        PlasticityProbe(net).measure(torch.tensor(X, dtype=torch.float32), "output_sum", train_mode=True)
        assert (not torch.equal(net[2].running_mean, before)) == norm_moves, type(net).__name__
        assert not any(m.training for m in net.modules())


def test_modes_of_torchscript_modules_and_replaced_train_methods_are_set_through_them():
    # A TorchScript module's own attribute setter tells its C++ half the mode; an instance may replace train().
    # Setting the flag directly would leave the scripted batch norm in train mode during an eval measurement.
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated, and still what users' models contain
        norm = torch.jit.script(nn.BatchNorm1d(4))
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), norm, nn.Linear(4, 1))
    net.train()
    PlasticityProbe(net).measure(torch.tensor(X, dtype=torch.float32), "output_sum")
    assert int(norm.num_batches_tracked) == 0 and norm.training
    net.eval()
    assert not norm.training  # no stale flag hides the module's own

    calls = []
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    net.train = lambda mode=True: calls.append(mode) or nn.Module.train(net, mode)
    PlasticityProbe(net).measure(torch.tensor(X, dtype=torch.float32), "output_sum")
    assert calls == [False]


def test_train_mode_must_be_a_bool():
    with pytest.raises(ValueError, match="train_mode must be True or False, got 1"):
        PlasticityProbe(relu_mlp()).measure(torch.tensor(X), "output_sum", train_mode=1)


# ---------------------------------------------------------------------------------------------------------------
# Layer discovery
# ---------------------------------------------------------------------------------------------------------------


def test_no_act_network_measures_linear_outputs():
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 3), nn.Identity(), nn.Linear(3, 1)).double()
    x = torch.tensor(X)
    result = PlasticityProbe(net).measure(x, "output_sum")
    assert [(r.name, r.kind, r.activation) for r in result.layers] == [
        ("0", "hidden", "none"),
        ("1", "hidden", "Identity"),
        ("3", "output", "none"),
    ]
    torch.testing.assert_close(result.layer("0").features, net[0](x).detach())


class FunctionalMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(2, 4), nn.Linear(4, 1)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))


class ModuleMLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(2, 4), nn.Tanh(), nn.Linear(4, 1)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


def test_functional_activation_is_refused_not_guessed():
    with pytest.raises(ValueError, match="cannot tell which activation follows layer 'fc1'"):
        PlasticityProbe(FunctionalMLP()).measure(torch.randn(5, 2), "output_sum")


def test_custom_module_with_activation_modules_is_traced():
    net = ModuleMLP()
    x = torch.randn(6, 2)
    result = PlasticityProbe(net).measure(x, "output_sum")
    assert [(r.name, r.activation, r.kind) for r in result.layers] == [
        ("fc1", "Tanh", "hidden"),
        ("fc2", "none", "output"),
    ]
    torch.testing.assert_close(result.layer("fc1").features, torch.tanh(net.fc1(x)).detach())


def test_layers_argument_restricts_and_validates():
    net = relu_mlp()
    result = PlasticityProbe(net, layers=["2"]).measure(torch.tensor(X), "output_sum")
    assert [r.name for r in result.layers] == ["2"]
    with pytest.raises(ValueError, match="not an nn.Linear"):
        PlasticityProbe(net, layers=["1"])
    with pytest.raises(ValueError, match="lacks"):
        PlasticityProbe(net, layers={"0": "nope"})


def test_shared_layer_is_refused():
    lin = nn.Linear(3, 3)
    net = nn.Sequential(lin, nn.ReLU(), lin)
    with pytest.raises(ValueError, match="called 2 times"):
        PlasticityProbe(net).measure(torch.randn(4, 3), "output_sum")


def test_conv_network():
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(1, 3, 2), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 2 * 2, 1))
    with torch.no_grad():
        net[0].weight[1].zero_()
        net[0].bias[1] = -1.0  # channel 1 is dead everywhere
    x = torch.randn(4, 1, 3, 3)
    result = PlasticityProbe(net).measure(x, "output_sum")
    conv = result.layer("0")
    assert conv.width == 3 and conv.features.shape == (4, 3)
    assert conv.dormant_mask(0.0).tolist() == [False, True, False]
    assert conv.magi[1] == 0
    a = torch.relu(net[0](x)).detach()
    torch.testing.assert_close(conv.dormancy_scores, M.dormancy_scores(a))


def test_ranks_and_weight_stats_in_report():
    net = relu_mlp()
    probe = PlasticityProbe(net)
    probe.snapshot_reference()
    with torch.no_grad():
        net[0].weight.add_(1.0)
    report = probe.measure(torch.tensor(X), "output_sum").layer("0")
    assert report.weight_stats["weight_distance"] == pytest.approx(math.sqrt(8))  # 8 entries moved by 1
    assert report.ranks() == M.ranks(report.features)


def test_rows_are_tidy():
    result = PlasticityProbe(relu_mlp(), thresholds=(0.0, 0.5)).measure(torch.tensor(X), "output_sum")
    rows = result.rows()
    assert len(rows) == 3 * 2
    assert {(r["layer"], r["tau"]) for r in rows} == {(n, t) for n in ("0", "2", "4") for t in (0.0, 0.5)}
    assert rows[0]["dormant_ratio"] == result.layer("0").dormant_ratio(0.0)


def test_summaries_count_the_flagged_units_at_every_threshold(device):
    # relu_mlp's scores (numpy_reference): layer 0 dormancy (1.415, 0, 1.462, 1.123), z (0.075, 0, 1.399, 2.526);
    # layer 2 dormancy (0.753, 1.481, 0.765), z (0.548, 2.452, 0); the output layer, one unit: 1 and 1.
    net = relu_mlp(torch.float64, device)
    x, y = (torch.tensor(a, device=device) for a in (X, Y))
    result = PlasticityProbe(net, thresholds=(0.0, 0.6, 1.2)).measure(x, mse(y))
    assert count_dispatch(result.summaries).host_syncs == 1
    summaries = result.summaries()
    assert [(s.name, s.kind, s.width, s.activation) for s in summaries] == [
        ("0", "hidden", 4, "ReLU"),
        ("2", "hidden", 3, "ReLU"),
        ("4", "output", 1, "none"),
    ]
    assert [s.dormant_units for s in summaries] == [(1, 1, 2), (0, 0, 2), (0, 0, 1)]
    assert [s.zero_gradient_units for s in summaries] == [(1, 2, 2), (1, 2, 2), (0, 0, 1)]
    assert not any(s.degenerate or s.gradient_degenerate for s in summaries)
    expected_magi = numpy_reference(net)[0]["magi"]
    first = summaries[0]
    assert first.magi_min == 0.0 and first.magi_max == pytest.approx(expected_magi.max(), rel=1e-12)
    assert first.magi_mean == pytest.approx(expected_magi.mean(), rel=1e-12)
    assert first.weight_stats == result.layer("0").weight_stats
    # Network ratios: hidden units only (7), summed over layers.
    hidden = summaries[: len(result.hidden)]
    assert [network_ratio(hidden, "dormant", i) for i in range(3)] == [1 / 7, 1 / 7, 4 / 7]
    assert [network_ratio(hidden, "zero_gradient", i) for i in range(3)] == [2 / 7, 4 / 7, 4 / 7]
    assert math.isnan(network_ratio((), "dormant", 0))  # no hidden layer
    # Other thresholds than the measurement's: the same counts where they coincide.
    assert [s.dormant_units for s in result.summaries((1.2, 0.0))] == [(2, 1), (2, 0), (1, 0)]
    with pytest.raises(ValueError, match="thresholds must be a sequence of numbers, got 0.5"):
        result.summaries(0.5)
    with pytest.raises(ValueError, match="tau must be a finite number >= 0, got -1.0"):
        result.summaries((0.0, -1.0))
    with pytest.raises(ValueError, match="kind must be 'dormant' or 'zero_gradient'"):
        network_ratio(summaries, "dead", 0)


def test_summaries_rows_format_and_ratios_read_the_device_once(device):
    net = relu_mlp(torch.float64, device)
    x, y = (torch.tensor(a, device=device) for a in (X, Y))
    result = PlasticityProbe(net, thresholds=(0.0, 0.6, 1.2)).measure(x, mse(y))
    layer = result.layer("2")
    for read in (
        result.rows,
        result.format,
        lambda: result.dormant_ratio(1.2),
        lambda: result.zero_gradient_ratio(0.6),
        lambda: layer.dormant_ratio(1.2),
        lambda: layer.zero_gradient_ratio(0.6),
        lambda: M.dormant_mask(layer.dormancy_scores, 0.6),
    ):
        assert count_dispatch(read).host_syncs == 1
    assert result.dormant_ratio(1.2) == 4 / 7 and result.zero_gradient_ratio(0.6) == 4 / 7
    assert layer.dormant_ratio(1.2) == 2 / 3 and layer.zero_gradient_ratio(0.6) == 2 / 3
    assert [(r["layer"], r["tau"], r["dormant_ratio"]) for r in result.rows()][:3] == [
        ("0", 0.0, 1 / 4),
        ("0", 0.6, 1 / 4),
        ("0", 1.2, 2 / 4),
    ]


def test_summaries_of_bad_scores_name_the_problem():
    result = PlasticityProbe(relu_mlp()).measure(torch.tensor(X), mse(torch.tensor(Y)))
    good = result.layer("0")
    partial_nan = dataclasses.replace(good, dormancy_scores=torch.tensor([math.nan, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="scores has NaN for some units but not all"):
        dataclasses.replace(result, hidden=(partial_nan,)).summaries()
    infinite = dataclasses.replace(good, gradient_scores=torch.tensor([math.inf, 1.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="z contains inf"):
        dataclasses.replace(result, hidden=(infinite,)).rows()
    with pytest.raises(ValueError, match="z contains inf"):
        infinite.zero_gradient_ratio(0.0)
    # The network row of format() is over the result's hidden tuple, as dormant_ratio() is, whatever a kind says.
    relabelled = dataclasses.replace(result, hidden=(dataclasses.replace(good, kind="output"),), output=())
    network_row = relabelled.format().splitlines()[-1].split()
    assert float(network_row[3]) == round(relabelled.dormant_ratio(0.0), 3) == 0.25


# ---------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------


def test_bad_input_errors():
    net = relu_mlp()
    probe = PlasticityProbe(net)
    x = torch.tensor(X)
    with pytest.raises(ValueError, match="no nn.Linear"):
        PlasticityProbe(nn.Sequential(nn.ReLU()))
    with pytest.raises(ValueError, match="non-empty batch"):
        probe.measure(torch.zeros(0, 2, dtype=torch.float64), "output_sum")
    with pytest.raises(ValueError, match=r"^inputs\[0\] contains NaN or inf$"):
        probe.measure(torch.tensor([[float("nan"), 0.0]], dtype=torch.float64), "output_sum")
    with pytest.raises(ValueError, match="scalar"):
        probe.measure(x, lambda out: out)
    with pytest.raises(ValueError, match="does not depend"):
        probe.measure(x, lambda out: torch.tensor(1.0))
    with pytest.raises(ValueError, match="not finite"):
        probe.measure(x, lambda out: out.sum() * float("inf"))
    with pytest.raises(ValueError, match="objective must be"):
        probe.measure(x, "loss")
    with pytest.raises(ValueError, match="tensor"):
        probe.measure(x, lambda out: 1.0)
    with pytest.raises(ValueError, match="thresholds"):
        PlasticityProbe(net, thresholds=(-1.0,))


def test_non_finite_activations_name_the_layer():
    net = relu_mlp()
    with torch.no_grad():
        net[2].weight[0, 0] = float("inf")
    with pytest.raises(ValueError, match="layer '2'"):
        PlasticityProbe(net).measure(torch.tensor(X), "output_sum")


# ---------------------------------------------------------------------------------------------------------------
# Host synchronisations
# ---------------------------------------------------------------------------------------------------------------


def _sync_test_probe(model: str, device: torch.device):
    """An MLP or a conv net, its batch, and a probe with a reference (so every statistic is measured)."""
    if model == "mlp":
        net, x = relu_mlp(torch.float32, device), torch.tensor(X, dtype=torch.float32, device=device)
    else:
        net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Tanh(), nn.Conv2d(4, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8, 1))
        net, x = net.to(device), torch.randn(5, 3, 6, 6, device=device)
    probe = PlasticityProbe(net)
    probe.snapshot_reference()
    return net, x, probe


@pytest.mark.parametrize("objective", ["output_sum", "layer_output_sum", "mse"])
@pytest.mark.parametrize("model", ["mlp", "conv"])
def test_one_host_synchronisation_per_measurement(model, objective, device):
    # Every check, the objective's value and the weight statistics are read in one go; a regression that reads a
    # value on the host inside measure (an .item(), a bool(t), a .tolist() per layer) shows here on any machine.
    torch.manual_seed(0)
    net, x, probe = _sync_test_probe(model, device)
    target = torch.zeros(len(x), 1, device=device)
    fn = mse(target) if objective == "mse" else objective
    count = count_dispatch(lambda: probe.measure(x, fn))
    assert count.host_syncs == 1, count.syncs_by_kind
    assert count.syncs_by_kind == {"Tensor.tolist": 1}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("model", ["mlp", "conv"])
def test_cuda_itself_reports_one_synchronisation_per_measurement(model):
    # The operator count above cannot see a blocking host-to-device copy; CUDA's own sync debug mode sees every
    # synchronising call. The first measurement of a shape copies its constants (asynchronously): the second is timed.
    device = torch.device("cuda")
    torch.manual_seed(0)
    net, x, probe = _sync_test_probe(model, device)
    objective = mse(torch.zeros(len(x), 1, device=device))
    probe.measure(x, objective)
    torch.cuda.synchronize()

    def synchronisations(fn):
        torch.cuda.set_sync_debug_mode("warn")
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                out = fn()
        finally:
            torch.cuda.set_sync_debug_mode(0)
        return out, [str(w.message) for w in caught if "synchroniz" in str(w.message)]

    result, syncs = synchronisations(lambda: probe.measure(x, objective))
    assert len(syncs) == 1, syncs
    _, syncs = synchronisations(result.rows)  # reading the result: one more
    assert len(syncs) == 1, syncs


@pytest.mark.parametrize(
    "activation_gradient, objective, kept",
    [
        ("post", "output_sum", set()),
        ("post", "layer_output_sum", set()),
        ("pre", "output_sum", {"0", "2"}),  # the gradients it measures are taken there
    ],
)
def test_the_backward_frees_the_pre_activation_outputs(activation_gradient, objective, kept):
    # A ReLU saves its output, not its input, for the backward: a plain backward holds no pre-activation output. The
    # probe's trace of the forward must not hold them through the backward either, or its peak memory grows by a
    # layer output per layer. Checked when the backward reaches the model's output.
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 1))
    refs: dict[str, weakref.ref] = {}
    alive_at_backward: list[set[str]] = []

    def remember(name):
        def hook(module, inputs, output):  # the model's forward (layer_output_sum runs the layers again later)
            refs.setdefault(name, weakref.ref(output))

        return hook

    def at_backward(module, inputs, output):
        output.register_hook(lambda grad: alive_at_backward.append({n for n, ref in refs.items() if ref() is not None}))

    for name in ("0", "2"):
        net.get_submodule(name).register_forward_hook(remember(name))
    net[4].register_forward_hook(at_backward)
    PlasticityProbe(net, activation_gradient=activation_gradient).measure(torch.randn(8, 3), objective)
    assert alive_at_backward == [kept]


def test_a_float32_sum_that_overflows_is_summed_again_in_float64():
    # Hidden outputs 3·2^123 and 2^123 in float32 (exact): their sums over 64 samples overflow float32, so the one
    # read sees inf and the probe takes the checked path, which sums again in float64. The objective (the mean
    # output, 2^-100 · 4·2^123 = 2^25) and every gradient stay finite.
    net = nn.Sequential(nn.Linear(1, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        net[0].weight.copy_(torch.tensor([[3 * 2.0**60], [2.0**60]]))
        net[0].bias.zero_()
        net[2].weight.copy_(torch.tensor([[2.0**-100, 2.0**-100]]))
        net[2].bias.zero_()
    x = torch.full((64, 1), 2.0**63)
    assert torch.isinf(torch.relu(net[0](x)).sum(0)).all()  # the float32 sums do overflow
    report = PlasticityProbe(net).measure(x, lambda out: out.mean()).layer("0")
    # Unit sums 64·3·2^123 and 64·2^123 in float64; H = 2: scores 2·3/4 = 1.5 and 2·1/4 = 0.5.
    assert torch.equal(report.dormancy_scores, torch.tensor([1.5, 0.5]))


def test_nan_input_in_train_mode_is_refused_before_the_forward():
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.BatchNorm1d(4), nn.Linear(4, 1))
    before = net[2].running_mean.clone()
    with pytest.raises(ValueError, match=r"inputs\[0\] contains NaN or inf"):
        PlasticityProbe(net).measure(torch.tensor([[float("nan"), 0.0], [1.0, 2.0]]), "output_sum", train_mode=True)
    assert torch.equal(net[2].running_mean, before)


def normal_log_likelihood(out):
    # torch.distributions refuses a NaN mean with its own error, before the probe's checks could run.
    return torch.distributions.Normal(out, 1.0).log_prob(torch.zeros_like(out)).sum()


def test_a_failing_objective_on_nan_input_or_weights_names_the_cause():
    net = relu_mlp()
    with pytest.raises(ValueError, match=r"^inputs\[0\] contains NaN or inf$") as raised:
        PlasticityProbe(net).measure(torch.tensor([[float("nan"), 0.0]], dtype=torch.float64), normal_log_likelihood)
    assert raised.value.__cause__ is not None  # the objective's own error stays attached
    with torch.no_grad():
        net[0].weight[0, 0] = float("nan")  # a diverged network
    with pytest.raises(ValueError, match=r"^layer '0': acts contains NaN or inf$"):
        PlasticityProbe(net).measure(torch.tensor(X), normal_log_likelihood)
    with pytest.raises(ValueError, match=r"^inputs\[0\] contains NaN or inf$"):  # before the objective's own checks
        PlasticityProbe(relu_mlp()).measure(torch.tensor([[float("nan"), 0.0]], dtype=torch.float64), lambda o: o)


def test_dormancy_is_taken_before_the_objective_changes_the_outputs_in_place():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 2)).double()
    x = torch.tensor(X)
    with torch.no_grad():
        expected = M.dormancy_scores(net(x))  # the output layer's own outputs, as the forward left them
        assert not torch.equal(expected, M.dormancy_scores(net(x) + 1.0))  # the change would show
    report = PlasticityProbe(net).measure(x, lambda out: out.add_(1.0).square().sum()).layer("2")
    assert torch.equal(report.dormancy_scores, expected)


def test_a_bad_layer_is_named_on_the_one_read_path():
    net = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 0), nn.Flatten(), nn.Linear(0, 1))
    with pytest.raises(ValueError, match=r"^layer '2': acts is empty"):
        PlasticityProbe(net).measure(torch.tensor(X, dtype=torch.float32), "output_sum")


def test_pre_activation_output_must_have_its_units_second():
    # A Linear on (N, T, F) inputs puts its units last; with activation_gradient="pre" that output would be scored
    # per T instead of per unit: refused, naming the layer.
    class Sequence(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 6)
            self.perm = nn.Identity()

        def forward(self, x):
            return self.perm(self.fc(x).transpose(1, 2)).sum()

    net = Sequence()
    with pytest.raises(
        ValueError, match=r"layer 'fc': the pre-activation output has shape \(5, 3, 6\), expected \(N, 6"
    ):
        PlasticityProbe(net, layers={"fc": "perm"}, activation_gradient="pre").measure(
            torch.randn(5, 3, 4), "output_sum"
        )
