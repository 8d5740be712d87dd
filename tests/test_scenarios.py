"""Task switches: each scenario changes exactly what it says, at exactly the switch step; switch measurements and
recovery times by hand; interventions through the training loop; exact resume with both on."""

import csv
import dataclasses
import math
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch
from torch import nn

import ocp.ppo as ppo
from ocp.checkpoint import load_latest_checkpoint
from ocp.envs import make_env
from ocp.interventions import GradientReDo, L2Init, ReDo, ShrinkPerturb, WeightClipping
from ocp.probe import PlasticityProbe
from ocp.runlog import load_masks, mask_key
from ocp.scenarios import Scenario, TaskSwitchEnv
from ocp.switch_analysis import SwitchMonitor, recovery_rows

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def tiny(run_dir, **kw) -> ppo.PPOConfig:
    # 6 updates of 1 env x 16 steps, 8-step episodes (two per update); a switch every 2 updates (steps 32 and 64).
    base = dict(
        env_id="HalfCheetah-v4",
        run_dir=str(run_dir),
        num_envs=1,
        num_steps=16,
        total_timesteps=96,
        max_episode_steps=8,
        num_minibatches=2,
        update_epochs=1,
        activation="relu",
        probe_interval=0,
        checkpoint_interval=2,
        progress_bar=False,
        tensorboard=False,
        seed=3,
    )
    if kw.get("scenario", "none") != "none":
        base["scenario_period"] = 32
    base.update(kw)
    return ppo.PPOConfig(**base)


def read(path, drop=()):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


# ------------------------------------------------------------------------------------------------ schedule
def test_task_is_a_function_of_the_global_step():
    s = Scenario("reverse", period=32)
    assert [s.task_at(g) for g in (0, 31, 32, 63, 64, 95, 96)] == [0, 0, 1, 1, 0, 0, 1]
    assert s.switch_steps(96) == [32, 64] and s.switch_steps(97) == [32, 64, 96]
    assert Scenario().task_at(10**6) == 0 and Scenario().switch_steps(100) == []


def test_config_rejects_a_period_that_splits_an_update_and_bad_intervention_settings(tmp_path):
    with pytest.raises(ValueError, match="multiple of the batch"):
        tiny(tmp_path, scenario="reverse", scenario_period=24).validate()
    with pytest.raises(ValueError, match="needs every >= 1"):
        tiny(tmp_path, intervention=ReDo()).validate()
    with pytest.raises(ValueError, match="no effect"):
        tiny(tmp_path, intervention=L2Init(every=2)).validate()
    with pytest.raises(ValueError, match="no effect without a scenario"):
        tiny(tmp_path, scenario="none", scenario_period=32).validate()
    with pytest.raises(ValueError, match="scenario_scale"):
        tiny(tmp_path, scenario="mass", scenario_scale=0.0).validate()


# ---------------------------------------------------------------------------------------------- each scenario
def step_both_tasks(name, scale=3.0):
    """The same state and action stepped under task 0 and task 1 of one wrapped env."""
    env = make_env("HalfCheetah-v4", wrap=lambda e: TaskSwitchEnv(e, Scenario(name, 32, scale, seed=4)))
    env.reset(seed=0)
    state = env.env_state
    action = np.linspace(-0.9, 0.9, 6)
    out = {}
    for task in (0, 1):
        env.env_state = {**state, "task": task}
        out[task] = env.step(action)
    return env, out


def test_reverse_negates_the_forward_reward_only():
    _, out = step_both_tasks("reverse")
    (o0, r0, *_, i0), (o1, r1, *_, i1) = out[0], out[1]
    assert np.array_equal(o0, o1)  # same dynamics
    assert r0 == i0["reward_run"] + i0["reward_ctrl"]
    assert r1 == -i0["reward_run"] + i0["reward_ctrl"]
    assert (i1["reward_run"], i1["reward_ctrl"]) == (-i0["reward_run"], i0["reward_ctrl"])


def test_ctrl_cost_multiplies_the_control_cost():
    env, out = step_both_tasks("ctrl_cost", scale=3.0)
    (o0, r0, *_, i0), (o1, r1, *_, i1) = out[0], out[1]
    assert np.array_equal(o0, o1) and i1["reward_run"] == i0["reward_run"]
    assert r0 == i0["reward_run"] + i0["reward_ctrl"] and r1 == i1["reward_run"] + i1["reward_ctrl"]
    ctrl = 0.1 * np.sum(np.square(np.linspace(-0.9, 0.9, 6)))
    assert i0["reward_ctrl"] == pytest.approx(-ctrl, rel=1e-12)
    assert i1["reward_ctrl"] == pytest.approx(-3.0 * ctrl, rel=1e-12)
    assert env.unwrapped._ctrl_cost_weight == pytest.approx(0.3, rel=1e-15)


@pytest.mark.parametrize("name", ["mass", "friction"])
def test_dynamics_scale_the_model_and_change_the_next_state(name):
    env = make_env("HalfCheetah-v4", wrap=lambda e: TaskSwitchEnv(e, Scenario(name, 32, 2.0)))
    model = env.unwrapped.model
    mass, inertia, friction = model.body_mass.copy(), model.body_inertia.copy(), model.geom_friction.copy()
    env.set_wrapper_attr("task", 1)
    if name == "mass":
        assert np.array_equal(model.body_mass, 2.0 * mass) and np.array_equal(model.body_inertia, 2.0 * inertia)
        assert np.array_equal(model.geom_friction, friction)
    else:
        assert np.array_equal(model.geom_friction, 2.0 * friction) and np.array_equal(model.body_mass, mass)
    env.set_wrapper_attr("task", 0)  # back to the originals exactly
    assert np.array_equal(model.body_mass, mass) and np.array_equal(model.geom_friction, friction)
    _, out = step_both_tasks(name, scale=2.0)
    assert not np.array_equal(out[0][0], out[1][0])


def test_mass_scenario_is_the_model_compiled_at_that_total_mass():
    """Task 1 of ``mass`` equals HalfCheetah compiled with ``settotalmass`` scaled by the same factor: masses,
    inertias and the derived constants MuJoCo computes from them (inverse weights, subtree masses), and so the motion;
    and task 0 restores the compiled model bit for bit."""
    xml = (Path(gym.__file__).parent / "envs/mujoco/assets/half_cheetah.xml").read_text()
    assert 'settotalmass="14"' in xml
    reference = mujoco.MjModel.from_xml_string(xml.replace('settotalmass="14"', 'settotalmass="42"'))
    env = make_env("HalfCheetah-v4", wrap=lambda e: TaskSwitchEnv(e, Scenario("mass", 32, 3.0)))
    model = env.unwrapped.model
    fields = ("body_mass", "body_inertia", "body_invweight0", "dof_invweight0", "body_subtreemass")
    compiled = {f: getattr(model, f).copy() for f in fields}
    env.set_wrapper_attr("task", 1)
    for f in fields:
        np.testing.assert_allclose(getattr(model, f), getattr(reference, f), rtol=1e-12, atol=1e-12, err_msg=f)
    ours, theirs = mujoco.MjData(model), mujoco.MjData(reference)
    ctrl = np.random.default_rng(0).uniform(-1, 1, size=(20, 6))
    for a in ctrl:
        ours.ctrl[:], theirs.ctrl[:] = a, a
        mujoco.mj_step(model, ours, nstep=5)
        mujoco.mj_step(reference, theirs, nstep=5)
    assert np.abs(ours.qpos - theirs.qpos).max() < 1e-9 and np.abs(ours.qvel - theirs.qvel).max() < 1e-9
    env.set_wrapper_attr("task", 0)
    assert all(np.array_equal(getattr(model, f), compiled[f]) for f in fields)


def test_permute_obs_applies_a_fixed_non_identity_permutation():
    _, out = step_both_tasks("permute_obs")
    perm = Scenario("permute_obs", 32, seed=4).permutation(17)
    assert sorted(perm.tolist()) == list(range(17)) and perm.tolist() != list(range(17))
    assert np.array_equal(out[1][0], out[0][0][perm]) and out[1][1] == out[0][1]


@pytest.mark.parametrize("name", ["reverse", "ctrl_cost", "mass", "friction", "permute_obs"])
def test_the_loop_switches_at_exactly_the_switch_step(tmp_path, name):
    """Same seed with and without the scenario: every episode that ends by step 32 is identical, the first one after
    the switch (steps 33..40) is not; the second switch (step 64) is recorded in the tables."""
    plain = read(ppo.train(tiny(tmp_path / "plain")) / "episodes.csv")
    switched = read(ppo.train(tiny(tmp_path / name, scenario=name, scenario_scale=3.0)) / "episodes.csv")
    steps = [int(r["global_step"]) for r in plain]
    assert steps == [8 * k for k in range(1, 13)] == [int(r["global_step"]) for r in switched]
    same = [a["episodic_return"] == b["episodic_return"] for a, b in zip(plain, switched)]
    assert same[:4] == [True] * 4 and same[4] is False
    assert [r["switch_step"] for r in read(tmp_path / name / "recovery.csv")] == ["32", "64"]


def test_the_task_is_part_of_the_env_state():
    env = make_env("HalfCheetah-v4", wrap=lambda e: TaskSwitchEnv(e, Scenario("mass", 32, 2.0)))
    env.reset(seed=0)
    env.set_wrapper_attr("task", 1)
    state = env.env_state
    assert state["task"] == 1
    env.set_wrapper_attr("task", 0)
    env.env_state = state
    assert env.get_wrapper_attr("task") == 1
    assert make_env("HalfCheetah-v4").env_state["task"] is None


# ------------------------------------------------------------------------------------------ switch measurement
def test_switch_monitor_counts_units_entering_and_leaving_by_hand():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(2, 4), nn.ReLU(), nn.Linear(4, 1))
    x = torch.randn(16, 2)

    def probe_with_dead(dead):
        with torch.no_grad():
            nn.init.normal_(net[0].weight)
            net[0].bias.fill_(10.0)  # every unit active on these inputs ...
            for i in dead:
                net[0].weight[i] = 0.0
                net[0].bias[i] = -1.0  # ... except the dead ones: zero output, zero gradient
        return {"critic": PlasticityProbe(net).measure(x, lambda out: out.square().mean())}

    monitor = SwitchMonitor(Scenario("reverse", period=64), batch_size=32, total_steps=128, thresholds=(0.0,))
    assert [u for u in range(1, 5) if monitor.due(u)] == [2, 3]  # switch at step 64: updates 2 | 3
    assert monitor.observe(2, probe_with_dead([1])) == []
    rows = monitor.observe(3, probe_with_dead([2, 3]))
    by = {(r["layer"], r["unit_set"]): r for r in rows}
    for kind in ("dormant", "zero_gradient"):
        for layer in ("0", "network"):  # one hidden layer: the network row equals the layer row
            r = by[(layer, kind)]
            assert (r["width"], r["before_ratio"], r["after_ratio"], r["entering"], r["leaving"]) == (
                4,
                0.25,
                0.5,
                2,
                1,
            )
            assert (
                r["switch"],
                r["switch_step"],
                r["from_task"],
                r["to_task"],
                r["update_before"],
                r["update_after"],
            ) == (1, 64, 0, 1, 2, 3)
    assert monitor.pending is None


def test_switch_rows_of_a_run_match_its_saved_masks(tmp_path):
    run = ppo.train(tiny(tmp_path / "run", scenario="reverse", probe_interval=0))
    rows = read(run / "switches.csv")
    masks = load_masks(run)
    assert sorted(masks) == [2, 3, 4, 5]  # only the updates around the switches at 32 and 64 were probed
    assert {(r["update_before"], r["update_after"]) for r in rows} == {("2", "3"), ("4", "5")}
    for r in rows:
        if r["layer"] == "network":
            continue
        key = mask_key(r["network"], r["layer"], r["unit_set"], float(r["tau"]))
        b, a = masks[int(r["update_before"])][key], masks[int(r["update_after"])][key]
        assert int(r["entering"]) == int((a & ~b).sum()) and int(r["leaving"]) == int((b & ~a).sum())
        assert float(r["before_ratio"]) == b.mean() and float(r["after_ratio"]) == a.mean()


def test_recovery_time_by_hand():
    # 1 env, updates of 10 steps, switches at 40 and 80, run of 120 steps, window 2, 90% of the pre-switch level.
    eps = [
        (10, 10, 50.0),
        (20, 10, 100.0),
        (30, 10, 100.0),
        (40, 10, 100.0),  # pre-level (100 + 100) / 2 = 100
        (45, 10, 999.0),  # straddles the switch (started at step 35): not a post-switch episode
        (55, 10, 20.0),
        (65, 10, 95.0),
        (75, 10, 87.0),  # recent mean at updates 1..4: none | 20 | 57.5 | 91
        (90, 10, -40.0),
        (100, 10, -50.0),
        (110, 10, -60.0),
        (120, 10, -70.0),
    ]  # all after the second switch
    episodes = [dict(global_step=g, episodic_length=n, episodic_return=r) for g, n, r in eps]
    rows = recovery_rows(
        episodes, Scenario("reverse", period=40), 120, batch_size=10, num_envs=1, window=2, fraction=0.9
    )
    first, second = rows
    assert (first["switch"], first["from_task"], first["to_task"]) == (1, 0, 1)
    assert first["pre_level"] == 100.0 and first["return_level"] == pytest.approx(90.0)
    assert (first["recovered"], first["recovery_updates"], first["recovery_steps"]) == (1, 4, 40)
    assert (first["post_episodes"], first["post_level"]) == (3, 91.0)
    # Second switch: the last two episodes ending by step 80 are 95 and 87 (the 999 one is older).
    assert second["pre_level"] == 91.0 and second["return_level"] == pytest.approx(81.9)
    assert second["post_episodes"] == 4 and second["recovered"] == 0 and math.isnan(second["recovery_updates"])
    assert second["post_level"] == -65.0


def test_pre_switch_level_leaves_out_an_episode_spanning_the_previous_switch():
    """The same episodes as above with a window of 4: before the second switch the last four episodes to end are
    999 (steps 35-45, across the first switch), 20, 95 and 87; only the three run entirely in task 1 count."""
    eps = [
        (10, 10, 50.0),
        (20, 10, 100.0),
        (30, 10, 100.0),
        (40, 10, 100.0),
        (45, 10, 999.0),
        (55, 10, 20.0),
        (65, 10, 95.0),
        (75, 10, 87.0),
        (90, 10, -40.0),
        (100, 10, -50.0),
        (110, 10, -60.0),
        (120, 10, -70.0),
    ]
    episodes = [dict(global_step=g, episodic_length=n, episodic_return=r) for g, n, r in eps]
    first, second = recovery_rows(episodes, Scenario("reverse", period=40), 120, 10, 1, window=4, fraction=0.9)
    assert first["pre_level"] == (50.0 + 100.0 + 100.0 + 100.0) / 4
    assert second["pre_level"] == pytest.approx((20.0 + 95.0 + 87.0) / 3)


def test_recovery_threshold_of_a_negative_level():
    episodes = [
        dict(global_step=10, episodic_length=10, episodic_return=-100.0),
        dict(global_step=30, episodic_length=10, episodic_return=-109.0),
    ]
    (row,) = recovery_rows(episodes, Scenario("reverse", period=20), 40, 10, 1, window=5, fraction=0.9)
    assert row["return_level"] == pytest.approx(-110.0) and (row["recovered"], row["recovery_updates"]) == (1, 1)


# ------------------------------------------------------------------------------------- interventions in the loop
@pytest.fixture
def captured(monkeypatch):
    """The agent and optimiser the loop builds."""
    seen = {}
    real = ppo.make_optimizer

    def spy(agent, cfg):
        seen["agent"], seen["optimizer"] = agent, real(agent, cfg)
        return seen["optimizer"]

    monkeypatch.setattr(ppo, "make_optimizer", spy)
    return seen


@pytest.mark.parametrize("mode", ["reset", "perturb"])
def test_gradient_redo_in_the_loop_keeps_the_optimiser_on_the_live_parameters(tmp_path, captured, mode):
    cfg = tiny(
        tmp_path / mode,
        intervention=GradientReDo(every=2, tau=0.5, mode=mode),
    )
    run = ppo.train(cfg)
    agent, opt = captured["agent"], captured["optimizer"]
    held = [p for group in opt.param_groups for p in group["params"]]
    assert [id(p) for p in held] == [id(p) for p in agent.parameters()]
    steps = 6 * cfg.update_epochs * cfg.num_minibatches  # every step reached every live tensor
    assert all(int(opt.state[p]["step"]) == steps for p in agent.parameters())
    rows = read(run / "interventions.csv")
    quantity = "units_reset" if mode == "reset" else "units_perturbed"
    assert [(r["update"], r["network"], r["quantity"]) for r in rows] == [
        (u, net, quantity) for u in ("2", "4", "6") for net in ("actor", "critic")
    ]
    assert sum(float(r["value"]) for r in rows) > 0
    # Each act uses a probe of that update, which is logged: plasticity rows at updates 2, 4 and 6.
    assert sorted({int(r["update"]) for r in read(run / "plasticity.csv")}) == [2, 4, 6]


def test_weight_clipping_in_the_loop_bounds_every_weight(tmp_path):
    run = ppo.train(tiny(tmp_path / "clip", intervention=WeightClipping(kappa=1.0)))
    ckpt = load_latest_checkpoint(run)[1]
    for net in ("actor", "critic"):
        for layer in ("0", "2", "4"):
            fan_in = ckpt["agent"][f"{net}.{layer}.weight"].shape[1]
            bound = torch.tensor(1.0 / math.sqrt(fan_in))  # κ = 1; clamp_ rounds the bound to float32
            for kind in ("weight", "bias"):
                assert ckpt["agent"][f"{net}.{layer}.{kind}"].abs().max() <= bound
    rows = read(run / "interventions.csv")
    assert {r["quantity"] for r in rows} == {"weights_clipped"} and sum(float(r["value"]) for r in rows) > 0


def test_l2_init_adds_its_term_to_the_loss(tmp_path):
    run = ppo.train(tiny(tmp_path / "l2", intervention=L2Init(coef=0.5)))
    rows = read(run / "interventions.csv")
    assert [r["update"] for r in rows] == [str(u) for u in range(1, 7)]
    assert {r["quantity"] for r in rows} == {"regulariser_mean"}
    values = [float(r["value"]) for r in rows]
    assert values[0] >= 0.0 and values[-1] > 0.0


@pytest.mark.parametrize(
    "extra",
    [
        dict(
            scenario="permute_obs",
            intervention=GradientReDo(every=1, tau=0.5, mode="perturb"),
            probe_interval=3,
        ),
        dict(scenario="mass", intervention=L2Init(), reset_normalizers_on_switch=True),
        dict(scenario="reverse", intervention=ShrinkPerturb(every=3)),
    ],
    ids=["perturb+permute", "l2init+mass+reset-norm", "shrink+reverse"],
)
def test_resume_is_exact_with_a_scenario_and_an_intervention(tmp_path, extra):
    full = ppo.train(tiny(tmp_path / "full", **extra))
    cut = tiny(tmp_path / "cut", **extra)
    ppo.train(cut, stop_after_updates=2)  # stops after update 2: the last update before the switch at step 32
    assert load_latest_checkpoint(cut.resolved_run_dir())[1]["update"] == 2
    ppo.train(dataclasses.replace(cut, resume=True))
    wall = ppo.WALL_CLOCK_COLUMNS
    for name in ("metrics.csv", "plasticity.csv", "episodes.csv", "switches.csv", "interventions.csv", "recovery.csv"):
        assert read(full / name, drop=wall) == read(tmp_path / "cut" / name, drop=wall), name
    a = load_latest_checkpoint(full)[1]["agent"]
    b = load_latest_checkpoint(tmp_path / "cut")[1]["agent"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_async_vector_env_reaches_the_task_and_the_current_observation(tmp_path):
    """The same permuted-observation run through AsyncVectorEnv (sub-envs in processes) and SyncVectorEnv."""
    kw = dict(scenario="permute_obs", num_envs=2, total_timesteps=128)
    sync = read(ppo.train(tiny(tmp_path / "sync", **kw)) / "episodes.csv")
    async_ = read(ppo.train(tiny(tmp_path / "async", vector_mode="async", **kw)) / "episodes.csv")
    assert sync == async_ and len(sync) == 16
