"""Run directory, exact resume, refusals, in-training plasticity records."""

import csv
import json
import math
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pytest
import torch

from ocp.checkpoint import list_checkpoints, load_checkpoint
from ocp.interventions import INTERVENTIONS, Intervention, ReDo
from ocp.ppo import METRIC_COLUMNS, PLASTICITY_COLUMNS, WALL_CLOCK_COLUMNS, PPOConfig, evaluate, load_agent, train
from ocp.runlog import interval_overlap, load_masks, mask_key

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def tiny(run_dir, **kw) -> PPOConfig:
    # 5 updates of 2 envs x 32 steps; episodes of 40 steps so resets happen inside rollouts and across checkpoints.
    base = dict(
        env_id="HalfCheetah-v4",
        run_dir=str(run_dir),
        num_envs=2,
        num_steps=32,
        total_timesteps=5 * 64,
        max_episode_steps=40,
        num_minibatches=4,
        update_epochs=2,
        activation="relu",
        probe_interval=2,
        checkpoint_interval=2,
        progress_bar=False,
        seed=5,
    )
    base.update(kw)
    return PPOConfig(**base)


def read(path, drop=()):
    with open(path, newline="") as f:
        return [{k: v for k, v in row.items() if k not in drop} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("full") / "run"
    assert train(tiny(run_dir)) == run_dir
    return run_dir


def test_run_directory_contents(full_run):
    assert json.loads((full_run / "config.json").read_text()) == json.loads(json.dumps(tiny(full_run).to_dict()))
    rows = read(full_run / "metrics.csv")
    assert list(rows[0]) == METRIC_COLUMNS
    assert [int(r["update"]) for r in rows] == [1, 2, 3, 4, 5]
    assert [int(r["global_step"]) for r in rows] == [64, 128, 192, 256, 320]
    assert [r["probed"] for r in rows] == ["1", "1", "0", "1", "0"]  # update 1, then every probe_interval
    assert [float(r["learning_rate"]) for r in rows] == pytest.approx([3e-4 * (1 - k / 5) for k in range(5)])
    assert int(rows[-1]["episodes"]) >= 0 and sum(int(r["episodes"]) for r in rows) == 2 * (320 // 2 // 40)
    assert [p.name for p in list_checkpoints(full_run)] == ["update_0000004.ckpt", "update_0000005.ckpt"]
    assert load_checkpoint(list_checkpoints(full_run)[-1])["finished"] is True
    assert any((full_run / "tb").iterdir())


def test_plasticity_records_every_metric_per_layer(full_run):
    rows = read(full_run / "plasticity.csv")
    assert list(rows[0]) == PLASTICITY_COLUMNS
    assert sorted({int(r["update"]) for r in rows}) == [1, 2, 4]
    layer_rows = [r for r in rows if r["update"] == "2" and r["network"] == "critic" and r["layer"] == "2"]
    metrics = {(r["metric"], r["tau"]) for r in layer_rows}
    for tau in ("0.0", "0.025", "0.1"):
        for m in ("dormant_ratio", "zero_gradient_ratio", "dormant_overlap", "zero_gradient_overlap"):
            assert (m, tau) in metrics
    for m in (
        "magi_mean",
        "magi_min",
        "magi_max",
        "weight_distance",
        "effective_rank",
        "srank",
        "stable_rank",
        "feature_rank",
    ):
        assert (m, "") in metrics, m
    assert {r["layer"] for r in rows if r["network"] == "actor"} == {"network", "0", "2", "4"}
    first = [r for r in rows if r["update"] == "1" and r["metric"].endswith("_overlap")]
    assert first and all(r["value"] == "nan" for r in first)  # no previous measurement
    dist0 = [float(r["value"]) for r in rows if r["update"] == "1" and r["metric"] == "weight_distance"]
    assert dist0 and all(d == 0.0 for d in dist0)  # measured before the first optimiser step: still the init weights


def test_stored_masks_reproduce_logged_overlaps(full_run):
    masks = load_masks(full_run)
    assert sorted(masks) == [1, 2, 4]
    rows = read(full_run / "plasticity.csv")
    checked = 0
    for r in rows:
        if r["update"] == "4" and r["metric"] in ("dormant_overlap", "zero_gradient_overlap"):
            kind = r["metric"].removesuffix("_overlap")
            key = mask_key(r["network"], r["layer"], kind, float(r["tau"]))
            assert masks[4][key].shape == (int(r["width"]),)
            ratio = [
                q
                for q in rows
                if q["update"] == "4"
                and q["network"] == r["network"]
                and q["layer"] == r["layer"]
                and q["metric"] == f"{kind}_ratio"
                and q["tau"] == r["tau"]
            ][0]
            assert masks[4][key].mean() == pytest.approx(float(ratio["value"]))
            again = interval_overlap(full_run, key, 2, 4)
            logged = float(r["value"])
            assert (math.isnan(again) and math.isnan(logged)) or again == logged
            checked += 1
    assert checked == 2 * 3 * 3 * 2  # networks x layers x thresholds x kinds


def test_resumed_run_equals_uninterrupted_run(full_run, tmp_path):
    run_dir = tmp_path / "run"
    # Interrupted after update 3: the last checkpoint is update 2, so update 3's rows must be cut and redone.
    assert train(tiny(run_dir), stop_after_updates=3) == run_dir
    assert len(read(run_dir / "metrics.csv")) == 3
    assert [p.name for p in list_checkpoints(run_dir)] == ["update_0000002.ckpt"]
    assert train(tiny(run_dir, resume=True)) == run_dir

    for name, drop in (("metrics.csv", WALL_CLOCK_COLUMNS), ("plasticity.csv", ()), ("episodes.csv", ())):
        assert read(run_dir / name, drop) == read(full_run / name, drop), name
    a, b = load_masks(run_dir), load_masks(full_run)
    assert a.keys() == b.keys() and all(np.array_equal(a[u][k], b[u][k]) for u in a for k in a[u])
    ca, cb = (load_checkpoint(list_checkpoints(d)[-1]) for d in (run_dir, full_run))
    for k in cb["agent"]:
        assert torch.equal(ca["agent"][k], cb["agent"][k]), k


def test_finished_run_is_not_rerun_unless_overwritten(full_run, tmp_path, capsys):
    before = (full_run / "metrics.csv").read_bytes()
    assert train(tiny(full_run)) is None
    assert train(tiny(full_run, resume=True)) is None
    assert "already finished" in capsys.readouterr().out
    assert (full_run / "metrics.csv").read_bytes() == before
    other = tmp_path / "copy"
    train(tiny(other, total_timesteps=64, probe_interval=0))
    assert train(tiny(other, total_timesteps=64, probe_interval=0, overwrite=True)) == other
    assert len(read(other / "metrics.csv")) == 1


def test_resume_refusals(tmp_path):
    missing = tmp_path / "missing"
    with pytest.raises(ValueError, match="does not exist"):
        train(tiny(missing, resume=True))
    run_dir = tmp_path / "run"
    train(tiny(run_dir, probe_interval=0), stop_after_updates=2)
    with pytest.raises(ValueError) as err:
        train(tiny(run_dir, probe_interval=0, resume=True, learning_rate=1e-3, hidden_sizes=(32,)))
    msg = str(err.value)
    assert "hidden_sizes: saved=[64, 64] current=[32]" in msg
    assert "learning_rate: saved=0.0003 current=0.001" in msg
    with pytest.raises(ValueError, match="unfinished run: pass --resume"):
        train(tiny(run_dir, probe_interval=0))
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no run config"):
        train(tiny(tmp_path / "junk"))


def test_saved_agent_evaluates_with_its_normalisers(full_run):
    agent, cfg = load_agent(full_run)
    assert cfg == tiny(full_run)
    # 2 first reset observations, one observation per env step (320), and the final observation of each of the
    # 8 episodes (2 envs x 160 steps / 40), which the env returns before its reset one (NormalizeObservation's count)
    assert agent.obs_rms.count.item() == pytest.approx(1e-4 + 2 + 320 + 8)
    returns = evaluate(agent, cfg.env_id, episodes=2, seed=0, max_episode_steps=cfg.max_episode_steps)
    assert len(returns) == 2 and all(math.isfinite(r) for r in returns)


def test_sigkilled_process_resumes_to_the_uninterrupted_result(tmp_path):
    """A real kill (SIGKILL, no cleanup) at an arbitrary moment after the first checkpoint, then --resume."""
    kw = dict(total_timesteps=12 * 64, checkpoint_interval=1, tensorboard=False)
    reference = tmp_path / "reference"
    train(tiny(reference, **kw))
    run_dir = tmp_path / "killed"
    cfg = tiny(run_dir, **kw)
    args = [sys.executable, "-m", "ocp.train", "cleanrl"]
    for f in (
        "env_id",
        "num_envs",
        "num_steps",
        "total_timesteps",
        "max_episode_steps",
        "num_minibatches",
        "update_epochs",
        "activation",
        "probe_interval",
        "checkpoint_interval",
        "seed",
        "run_dir",
    ):
        args += [f"--{f.replace('_', '-')}", str(getattr(cfg, f))]
    proc = subprocess.Popen(
        args + ["--no-progress-bar", "--no-tensorboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not list_checkpoints(run_dir) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    assert train(tiny(run_dir, resume=True, **kw)) == run_dir
    for name, drop in (("metrics.csv", WALL_CLOCK_COLUMNS), ("plasticity.csv", ()), ("episodes.csv", ())):
        assert read(run_dir / name, drop) == read(reference / name, drop), name


def test_measuring_plasticity_does_not_change_training(full_run, tmp_path):
    """The probe (one forward + backward per network, every update here) leaves weights, RNGs and .grad alone."""
    quiet = tmp_path / "quiet"
    train(tiny(quiet, probe_interval=0))
    drop = (*WALL_CLOCK_COLUMNS, "probed")
    assert read(quiet / "metrics.csv", drop) == read(full_run / "metrics.csv", drop)
    assert read(quiet / "episodes.csv") == read(full_run / "episodes.csv")


def test_redo_with_per_entry_adam_steps_resumes_exactly(tmp_path):
    """ReDo restarting the step count of the recycled entries: FlatAdam's per-entry counts are checkpointed."""
    kw = dict(intervention=ReDo(every=1, tau=0.5, adam_step="reset_entries"))
    reference = tmp_path / "reference"
    train(tiny(reference, **kw))
    run_dir = tmp_path / "run"
    train(tiny(run_dir, **kw), stop_after_updates=3)
    train(tiny(run_dir, resume=True, **kw))
    for name, drop in (
        ("metrics.csv", WALL_CLOCK_COLUMNS),
        ("plasticity.csv", ()),
        ("episodes.csv", ()),
        ("interventions.csv", ()),
    ):
        assert read(run_dir / name, drop) == read(reference / name, drop), name
    assert sum(float(r["value"]) for r in read(reference / "interventions.csv")) > 0  # units were recycled
    steps = load_checkpoint(list_checkpoints(reference)[-1])["optimizer"]["entry_steps"]
    assert steps.max().item() == 5 * 2 * 4 and steps.min().item() < steps.max().item()  # 40 steps; some restarted
    kept = tmp_path / "kept"
    train(tiny(kept, intervention=ReDo(every=1, tau=0.5, adam_step="keep")))
    assert read(kept / "metrics.csv", WALL_CLOCK_COLUMNS) != read(reference / "metrics.csv", WALL_CLOCK_COLUMNS)


@dataclass
class NoisyBias(Intervention):
    """A toy stateful part: after every optimiser step, noise from its own generator on the critic's output bias."""

    name: ClassVar[str] = "noisy_bias"
    scale: float = 1e-2
    _generator: torch.Generator = field(
        default_factory=lambda: torch.Generator().manual_seed(0), init=False, repr=False, compare=False
    )
    _steps: int = field(default=0, init=False, compare=False)

    def after_step(self, networks):
        self._steps += 1
        with torch.no_grad():
            bias = networks["critic"][-1].bias
            bias += self.scale * torch.randn(bias.shape, generator=self._generator)

    def state_dict(self):
        return {"generator": self._generator.get_state(), "steps": self._steps}

    def load_state_dict(self, state):
        self._generator.set_state(state["generator"])
        self._steps = state["steps"]


@dataclass
class ForgetfulNoisyBias(NoisyBias):
    """The same part with a state it does not hand over: a resume restarts its generator."""

    name: ClassVar[str] = "forgetful_noisy_bias"

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


@pytest.mark.parametrize("part", [NoisyBias, ForgetfulNoisyBias])
def test_a_new_stateful_part_resumes_exactly_without_checkpoint_code(tmp_path, monkeypatch, part):
    """A part that did not exist when the checkpoint code was written: a new intervention (its class and one registry
    line) with a generator of its own. The checkpoint saves and restores it through the run's registry of parts, so
    an interrupted run matches an uninterrupted one; the same part hiding its state breaks that, so the comparison
    can fail."""
    monkeypatch.setitem(INTERVENTIONS, part.name, part)
    reference, run_dir = tmp_path / "reference", tmp_path / "run"
    train(tiny(reference, intervention=part()))
    train(tiny(run_dir, intervention=part()), stop_after_updates=3)
    train(tiny(run_dir, resume=True, intervention=part()))
    same = read(run_dir / "metrics.csv", WALL_CLOCK_COLUMNS) == read(reference / "metrics.csv", WALL_CLOCK_COLUMNS)
    a = load_checkpoint(list_checkpoints(reference)[-1])
    b = load_checkpoint(list_checkpoints(run_dir)[-1])
    same_weights = all(torch.equal(a["agent"][k], b["agent"][k]) for k in a["agent"])
    assert (same and same_weights) == (part is NoisyBias)
    if part is NoisyBias:
        assert a["intervention"]["steps"] == b["intervention"]["steps"] == 5 * 2 * 4
