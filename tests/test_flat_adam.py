"""FlatAdam against torch's Adam and AdamW, its torch-optimiser-like surface, and its refusals."""

import numpy as np
import pytest
import torch
from torch import nn

from ocp.flat_adam import FlatAdam


def _params(seed: int = 0) -> list[nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [nn.Parameter(torch.randn(shape, generator=g)) for shape in ((4, 3), (4,), (1, 2))]


def test_first_step_by_hand():
    # θ = 1, g = 0.5, lr = 0.1: m = 0.05, v = 0.00025; m̂ = 0.5, v̂ = 0.25; θ ← 1 − 0.1 · 0.5 / (0.5 + 1e-8)
    p = nn.Parameter(torch.ones(1))
    opt = FlatAdam([p], lr=0.1, eps=1e-8)
    opt.grad[:] = 0.5
    opt.step()
    assert p.item() == pytest.approx(0.9, abs=1e-7)
    assert opt.state[p]["exp_avg"].item() == pytest.approx(0.05) and opt.state[p]["exp_avg_sq"].item() == pytest.approx(
        0.00025
    )
    assert int(opt.state[p]["step"]) == 1


@pytest.mark.parametrize("decoupled,weight_decay", [(False, 0.0), (False, 0.1), (True, 0.1)])
def test_matches_torch_step_by_step(decoupled, weight_decay):
    ours, theirs = _params(), _params()
    opt = FlatAdam(ours, lr=3e-3, eps=1e-5, weight_decay=weight_decay, decoupled=decoupled)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    ref = cls(theirs, lr=3e-3, eps=1e-5, weight_decay=weight_decay, foreach=False)
    rng = np.random.default_rng(1)
    for k in range(30):
        if k == 15:  # the learning-rate schedule writes param_groups, as for a torch optimiser
            opt.param_groups[0]["lr"] = ref.param_groups[0]["lr"] = 1e-3
        for a, b in zip(ours, theirs):
            g = rng.standard_normal(a.shape).astype(np.float32)
            opt.grad_view(a)[...] = g
            b.grad = torch.from_numpy(g.copy())
        opt.step()
        ref.step()
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(opt.state[a]["exp_avg_sq"], ref.state[b]["exp_avg_sq"], rtol=1e-5, atol=1e-9)


def test_gradient_clipping_matches_torch():
    ours, theirs = _params(), _params()
    opt = FlatAdam(ours, lr=1e-3)
    rng = np.random.default_rng(2)
    for a, b in zip(ours, theirs):
        g = rng.standard_normal(a.shape).astype(np.float32)
        opt.grad_view(a)[...] = g
        b.grad = torch.from_numpy(g.copy())
    norm = opt.clip_grad_norm_(0.5)
    ref_norm = torch.nn.utils.clip_grad_norm_(theirs, 0.5)
    assert norm == pytest.approx(float(ref_norm), rel=1e-6) and norm > 0.5
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(opt.grad_view(a), b.grad.numpy(), rtol=1e-6)
    before = opt.grad.copy()
    assert opt.clip_grad_norm_(100.0) == pytest.approx(0.5, rel=1e-5)
    assert np.array_equal(opt.grad, before)  # below the bound: untouched


def test_parameters_keep_their_identity_and_state_views_are_the_moments():
    params = _params()
    ids, values = [id(p) for p in params], [p.detach().clone() for p in params]
    opt = FlatAdam(params, lr=1e-3)
    assert [id(p) for p in opt.param_groups[0]["params"]] == ids
    assert all(torch.equal(p, v) for p, v in zip(params, values))
    with torch.no_grad():
        params[1][2] = 7.0  # an in-place edit reaches the flat buffer the step updates
    opt.grad[:] = 1.0
    opt.step()
    assert params[1][2].item() == pytest.approx(7.0 - 1e-3, abs=1e-6)
    opt.state[params[0]]["exp_avg"][1, :] = 0.0  # what an intervention does to reset some entries
    assert np.count_nonzero(opt._exp_avg.numpy()) == opt._exp_avg.numel() - 3


def test_state_dict_roundtrip_gives_identical_steps():
    a, b = _params(), _params()
    opt_a, opt_b = FlatAdam(a, lr=1e-2, weight_decay=0.01), FlatAdam(b, lr=5.0)
    rng = np.random.default_rng(3)
    grads = [rng.standard_normal(opt_a.grad.shape).astype(np.float32) for _ in range(6)]
    for g in grads[:3]:
        opt_a.grad[:] = g
        opt_a.step()
    opt_b.load_state_dict(opt_a.state_dict())
    with torch.no_grad():
        for p, q in zip(a, b):
            q.copy_(p)
    for g in grads[3:]:
        opt_a.grad[:] = g
        opt_b.grad[:] = g
        opt_a.step()
        opt_b.step()
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert int(opt_b.state[b[0]]["step"]) == 6


def test_refusals_name_the_problem():
    with pytest.raises(ValueError, match="no parameters"):
        FlatAdam([], lr=1e-3)
    p = nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="same parameter twice"):
        FlatAdam([p, p], lr=1e-3)
    with pytest.raises(ValueError, match="float32 CPU"):
        FlatAdam([nn.Parameter(torch.zeros(2, dtype=torch.float64))], lr=1e-3)
    with pytest.raises(ValueError, match="lr > 0"):
        FlatAdam([p], lr=0.0)
    opt = FlatAdam([p], lr=1e-3)
    with pytest.raises(ValueError, match="not a FlatAdam state"):
        opt.load_state_dict(torch.optim.Adam([nn.Parameter(torch.zeros(2))]).state_dict())
    with pytest.raises(ValueError, match="holds 2"):
        opt.load_state_dict(FlatAdam([nn.Parameter(torch.zeros(3))], lr=1e-3).state_dict())
    p.data = torch.zeros(2)
    with pytest.raises(RuntimeError, match="replaced by a new tensor"):
        opt.check_aliasing()


def _two_steps_then_reset(restart: bool) -> tuple[nn.Parameter, FlatAdam]:
    """Two steps with gradient 1 (lr 0.5, betas 0.5 / 0.75), then entry 0's moments zeroed as ReDo does, and its step
    count restarted when ``restart``; the third step has gradient (2, 4)."""
    p = nn.Parameter(torch.zeros(2))
    opt = FlatAdam([p], lr=0.5, betas=(0.5, 0.75), eps=1e-8)
    for _ in range(2):
        opt.grad[:] = 1.0
        opt.step()
    assert p.tolist() == pytest.approx([-1.0, -1.0], abs=1e-7)  # constant gradient: m̂ = v̂ = 1, each step moves lr
    opt.state[p]["exp_avg"][0] = 0.0
    opt.state[p]["exp_avg_sq"][0] = 0.0
    if restart:
        opt.reset_step(p, (torch.tensor([0]),))
    opt.grad[:] = np.array([2.0, 4.0], dtype=np.float32)
    opt.step()
    return p, opt


def test_restarted_entry_steps_like_a_fresh_adam_by_hand():
    # Entry 1 (t = 3): m = 0.5·0.75 + 0.5·4 = 2.375, v = 0.75·0.4375 + 0.25·16 = 4.328125;
    # m̂ = 2.375 / (1 − 0.5³) = 2.7142857, v̂ = 4.328125 / (1 − 0.75³) = 7.4864865; step 0.5 · m̂ / √v̂ = 0.4960033.
    entry1 = 0.5 * (2.375 / 0.875) / ((4.328125 / 0.578125) ** 0.5 + 1e-8)
    # Entry 0 restarted (t = 1): m = 1, v = 1; m̂ = 1 / 0.5 = 2, v̂ = 1 / 0.25 = 4; step 0.5 · 2 / 2 = 0.5.
    p, opt = _two_steps_then_reset(restart=True)
    assert p.tolist() == pytest.approx([-1.5, -1.0 - entry1], rel=1e-6)
    assert opt.state_dict()["entry_steps"].tolist() == [1.0, 3.0] and int(opt.state[p]["step"]) == 3
    # Kept count (t = 3 for both): entry 0 gets m̂ = 1 / 0.875, v̂ = 1 / 0.578125; step 0.5 · 1.1428571 / 1.3151350.
    p, opt = _two_steps_then_reset(restart=False)
    assert p.tolist() == pytest.approx(
        [-1.0 - 0.5 * (1 / 0.875) / ((1 / 0.578125) ** 0.5 + 1e-8), -1.0 - entry1], rel=1e-6
    )
    assert opt.state_dict()["entry_steps"] is None


def test_per_entry_counts_without_a_restart_step_bit_for_bit_as_the_shared_count():
    shared, per_entry = _params(), _params()
    opt_a, opt_b = (
        FlatAdam(shared, lr=3e-3, eps=1e-5, weight_decay=0.1),
        FlatAdam(per_entry, lr=3e-3, eps=1e-5, weight_decay=0.1),
    )
    rng = np.random.default_rng(4)
    for k in range(300):
        if k == 100:
            opt_b.reset_step(per_entry[0], (torch.tensor([], dtype=torch.long),))  # per-entry counts, none restarted
        g = rng.standard_normal(opt_a.grad.shape).astype(np.float32)
        opt_a.grad[:] = g
        opt_b.grad[:] = g
        opt_a.step()
        opt_b.step()
    assert opt_b.state_dict()["entry_steps"].tolist() == [300.0] * opt_b.grad.size
    assert all(torch.equal(p, q) for p, q in zip(shared, per_entry))


def test_restart_of_a_whole_parameter_and_exact_resume_of_per_entry_counts():
    a, b = _params(), _params()
    opt_a, opt_b = FlatAdam(a, lr=1e-2), FlatAdam(b, lr=1e-2)
    rng = np.random.default_rng(5)
    grads = [rng.standard_normal(opt_a.grad.shape).astype(np.float32) for _ in range(8)]
    for g in grads[:3]:
        opt_a.grad[:] = g
        opt_a.step()
    opt_a.reset_step(a[1])  # the whole bias-like parameter: 4 entries
    opt_a.reset_step(a[0], (slice(None), torch.tensor([2])))  # one column of the matrix
    assert opt_a.state_dict()["entry_steps"].tolist() == [3, 3, 0] * 4 + [0] * 4 + [3, 3]
    opt_a.grad[:] = grads[3]
    opt_a.step()
    opt_b.load_state_dict(opt_a.state_dict())
    with torch.no_grad():
        for p, q in zip(a, b):
            q.copy_(p)
    for g in grads[4:]:
        for opt in (opt_a, opt_b):
            opt.grad[:] = g
            opt.step()
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert opt_b.state_dict()["entry_steps"].tolist() == [8, 8, 5] * 4 + [5] * 4 + [8, 8]
    # A state saved without per-entry counts (or before any restart) brings back the shared count.
    opt_b.load_state_dict(FlatAdam(_params(), lr=1e-2).state_dict())
    assert opt_b.state_dict()["entry_steps"] is None
    with pytest.raises(ValueError, match="not held by this FlatAdam"):
        opt_a.reset_step(nn.Parameter(torch.zeros(2)))
