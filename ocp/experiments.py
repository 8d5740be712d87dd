"""The experiment grid behind ``reproduce/all_figures.py``: which runs a preset needs, where their results live, and
running them — in a local process pool by default, on a Ray cluster on request.

Stages (each writes tidy tables that the figure code reads; nothing here draws):

1. **PPO** — the paper's Appendix-B PPO on HalfCheetah-v4 with ReLU and with No-Act (identity) networks, several
   seeds, plasticity probed during training (``ocp.ppo``). Figures 1, 4, 6, 7, 8.
2. **Transfer** — the critic of every PPO run of each arm initialises regressors for Eq. 1, its input-permuted control
   and the similar-task control (``ocp.transfer``); its regression seeds run in parallel on the same pool, each kept
   on disk when done. Figures 3 and 5, claim C2.
3. **Scenarios** — PPO with task switches (``ocp.scenarios``), "none" against each plasticity intervention
   (``ocp.interventions``), several seeds; run in the same pool as stage 1. Figure ``fig_switches``, claim C6.

Caching: a run's directory name carries a hash of everything that changes what it computes, so a finished run is
reused, an interrupted one resumes (PPO checkpoints), and a changed config gets a new directory instead of mixing
results. ``results/<preset>/index.json`` lists the runs for the figure code.
"""

from __future__ import annotations

import concurrent.futures as cf
import dataclasses
import multiprocessing
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

from tqdm import tqdm

from ocp.atomic_files import atomic_write_json, stable_key
from ocp.interventions import INTERVENTIONS, GradientReDo, Intervention
from ocp.ppo import RUNTIME_FIELDS, PPOConfig, presets, train
from ocp.regression_tasks import ReturnTaskSpec
from ocp.tables import write_scenario_tables
from ocp.transfer import TransferConfig, run_transfer

__all__ = [
    "GridPreset",
    "ScenarioGrid",
    "PRESETS",
    "PPORunSpec",
    "plan_ppo_runs",
    "plan_scenario_runs",
    "run_grid",
    "run_all",
    "subset",
    "config_key",
    "INTERVENTION_ARMS",
    "executor_map",
]

#: The two arms of the paper's Figure 1: label -> activation.
ARMS: dict[str, str] = {"relu": "relu", "no-act": "identity"}

#: The arms of the scenario grid: label -> intervention. One arm per registered intervention with its class defaults,
#: and perturb-mode gradient-ReDo; a scheduled one acts every ``ScenarioGrid.intervention_every`` updates.
INTERVENTION_ARMS: dict[str, Intervention] = {
    **{name: cls() for name, cls in INTERVENTIONS.items()},
    "gradient_perturb": GradientReDo(mode="perturb"),
}


@dataclass(frozen=True)
class ScenarioGrid:
    """The task-switch stage of a preset: every arm x seed, PPO (the ``paper`` preset) with ``ppo`` overrides. Every
    preset turns learning-rate annealing off here: annealed to 0 over the run, later tasks would be learned with ever
    smaller steps, and slower adaptation after a late switch would be the schedule's doing, not plasticity loss."""

    arms: tuple[str, ...]
    """Labels of :data:`INTERVENTION_ARMS`."""
    seeds: tuple[int, ...]
    ppo: dict[str, Any]
    """Overrides of the ``paper`` PPO preset (length, probe interval, ``scenario_period``)."""
    intervention_every: int
    """Updates between the acts of the scheduled interventions (ReDo, gradient-ReDo, shrink & perturb)."""
    scenario: str = "reverse"
    """The task switch (``ocp.scenarios.SCENARIOS``); every run of the grid also has ``anneal_lr=False``."""


@dataclass(frozen=True)
class GridPreset:
    """One scale of the whole reproduction."""

    name: str
    scaled_down: str
    """What differs from the paper's scale (printed before the run and written into the report)."""
    seeds: tuple[int, ...]
    """PPO seeds per arm."""
    ppo: dict[str, Any] = field(default_factory=dict)
    """Overrides applied to the ``paper`` PPO preset."""
    transfer: dict[str, Any] = field(default_factory=dict)
    """Overrides applied to :class:`ocp.transfer.TransferConfig`."""
    scenarios: Optional[ScenarioGrid] = None
    """The task-switch grid (None: not run)."""


PRESETS: dict[str, GridPreset] = {
    "smoke": GridPreset(
        name="smoke",
        scaled_down="CI smoke test: 2 seeds x 2,048 PPO steps (8 updates of 256 steps), transfer 2 regression seeds "
        "per PPO critic x 3 epochs; task switches: 1 seed x 3 arms x 3,072 steps, reward reversal every 1,024 steps "
        "(2 switches)",
        seeds=(1, 2),
        ppo=dict(
            total_timesteps=2048,
            num_steps=256,
            num_minibatches=4,
            update_epochs=2,
            probe_interval=1,
            checkpoint_interval=4,
        ),
        transfer=dict(
            seeds=(0, 1),
            epochs=3,
            n_train=200,
            n_test=200,
            probe_every=1,
            similar_task=ReturnTaskSpec(horizon=100, states_per_episode=100),
        ),
        scenarios=ScenarioGrid(
            arms=("none", "gradient_perturb", "l2_init"),
            seeds=(1,),
            intervention_every=2,
            ppo=dict(
                total_timesteps=3072,
                num_steps=256,
                num_minibatches=4,
                update_epochs=2,
                probe_interval=2,
                checkpoint_interval=4,
                scenario_period=1024,
            ),
        ),
    ),
    "quick": GridPreset(
        name="quick",
        scaled_down="3 seeds x 1M PPO steps per arm (paper: 20M); transfer from each PPO critic, 3 regression seeds x "
        "100 epochs at lr 0.01 (paper: 200 epochs, lr 0.01 and 0.005); task switches: 2 seeds x 4 arms (the arms C6 "
        "tests) x 803k steps, reward reversal at 401k (1 switch; paper preset: 6 seeds x 7 arms x 10M steps, a switch "
        "every 2M)",
        seeds=(1, 2, 3),
        ppo=dict(total_timesteps=1_000_000, probe_interval=5),
        transfer=dict(seeds=(0, 1, 2), lrs=(0.01,), epochs=100, probe_every=10),
        scenarios=ScenarioGrid(
            arms=("none", "gradient_perturb", "l2_init", "weight_clipping"),
            seeds=(1, 2),
            intervention_every=10,
            ppo=dict(
                total_timesteps=802_816, probe_interval=5, scenario_period=401_408
            ),  # 392 and 196 updates of 2,048 steps
        ),
    ),
    "standard": GridPreset(
        name="standard",
        scaled_down="6 seeds x 2M PPO steps per arm (paper: 20M; six paired seeds are what an exact test with two "
        "Holm-corrected sub-tests needs); transfer from each PPO critic, 5 regression seeds x 200 epochs; task "
        "switches: 6 seeds x 4 arms (the arms C6 tests) x 1.2M steps, reward reversal every 401k (2 switches; paper "
        "preset: 6 seeds x 7 arms x 10M steps)",
        seeds=(1, 2, 3, 4, 5, 6),
        ppo=dict(total_timesteps=2_000_000, probe_interval=10),
        transfer=dict(seeds=(0, 1, 2, 3, 4), epochs=200),
        scenarios=ScenarioGrid(
            arms=("none", "gradient_perturb", "l2_init", "weight_clipping"),
            seeds=(1, 2, 3, 4, 5, 6),
            intervention_every=10,
            ppo=dict(
                total_timesteps=1_204_224,
                probe_interval=10,
                scenario_period=401_408,
            ),  # 588 and 196 updates of 2,048 steps
        ),
    ),
    "paper": GridPreset(
        name="paper",
        scaled_down="none: 6 seeds x 20M PPO steps per arm (the paper does not say how many; six paired seeds are what "
        "an exact test with two Holm-corrected sub-tests needs), transfer 5 regression seeds per PPO critic x 200 "
        "epochs; task switches (the paper shows no such experiment; our choice): 6 seeds x 7 arms x 10M steps, reward "
        "reversal every ~2M steps (977 updates)",
        seeds=(1, 2, 3, 4, 5, 6),
        ppo=dict(total_timesteps=20_000_000, probe_interval=10),
        transfer=dict(seeds=(0, 1, 2, 3, 4), epochs=200),
        scenarios=ScenarioGrid(
            arms=tuple(INTERVENTION_ARMS),
            seeds=(1, 2, 3, 4, 5, 6),
            intervention_every=100,
            ppo=dict(
                total_timesteps=10_000_000,
                probe_interval=10,
                scenario_period=2_000_896,
            ),
        ),
    ),
}


def config_key(config: dict[str, Any], ignore: Sequence[str] = ()) -> str:
    """A short stable hash of a config: same config, same key, on any machine."""
    return stable_key({k: v for k, v in config.items() if k not in ignore})


@dataclass(frozen=True)
class PPORunSpec:
    arm: str
    seed: int
    config: PPOConfig

    @property
    def run_dir(self) -> Path:
        return Path(self.config.run_dir)


def _validated(cfg: PPOConfig, preset: GridPreset) -> PPOConfig:
    """The config, checked before any run starts (a bad preset fails at planning, not after an hour of other runs)."""
    try:
        cfg.validate()
    except ValueError as err:
        raise ValueError(f"preset {preset.name}: {err}") from err
    return cfg


def _planned(preset: GridPreset, root: Path, kind: str, arm: str, seed: int, **overrides: Any) -> PPORunSpec:
    """One run of the preset: the ``paper`` PPO preset with ``overrides``, validated, in ``root/runs`` under a name
    that carries its kind, arm, seed and a hash of everything that changes what it computes."""
    cfg = dataclasses.replace(
        presets()["paper"][1],
        **overrides,
        seed=seed,
        exp_name=f"{preset.name}-{arm}" if kind == "ppo" else f"{preset.name}-{kind}-{arm}",
        progress_bar=False,
        tensorboard=False,
    )
    key = config_key(cfg.to_dict(), ignore=(*RUNTIME_FIELDS, "exp_name"))
    run_dir = root / "runs" / f"{kind}-{arm}-seed{seed}-{key}"
    return PPORunSpec(arm, seed, _validated(dataclasses.replace(cfg, run_dir=str(run_dir)), preset))


def plan_ppo_runs(preset: GridPreset, root: Path) -> list[PPORunSpec]:
    """Every PPO run of the preset, each with its cache-keyed run directory under ``root/runs``."""
    return [
        _planned(preset, root, "ppo", arm, seed, **preset.ppo, activation=activation)
        for arm, activation in ARMS.items()
        for seed in preset.seeds
    ]


def plan_scenario_runs(preset: GridPreset, root: Path) -> list[PPORunSpec]:
    """Every run of the preset's task-switch grid (``arm`` = intervention label), cache-keyed like the PPO runs."""
    grid = preset.scenarios
    if grid is None:
        return []
    specs = []
    for arm in grid.arms:
        if arm not in INTERVENTION_ARMS:
            raise ValueError(f"unknown intervention arm {arm!r}; choose from {sorted(INTERVENTION_ARMS)}")
        intervention = INTERVENTION_ARMS[arm]
        if intervention.scheduled():
            intervention = dataclasses.replace(intervention, every=grid.intervention_every)
        overrides = {"anneal_lr": False, "scenario": grid.scenario, **grid.ppo, "intervention": intervention}
        specs += [_planned(preset, root, "switch", arm, seed, **overrides) for seed in grid.seeds]
    return specs


def execute_ppo(config: PPOConfig) -> dict[str, Any]:
    """Train one PPO run to completion: fresh, resumed from its last checkpoint, or skipped when already finished.

    A top-level function so that process pools and Ray can ship it to a worker.
    """
    started = time.perf_counter()
    resume = (Path(config.run_dir) / "config.json").is_file()
    train(dataclasses.replace(config, resume=resume))
    return {"run_dir": config.run_dir, "resumed": resume, "wall_s": time.perf_counter() - started}


# ----------------------------------------------------------------------------------------------------------------
# Executors: one interface over a local process pool and Ray
# ----------------------------------------------------------------------------------------------------------------


def exit_with_parent(parent_pid: int, poll_s: float = 1.0) -> None:
    """Pool-worker initializer: end this worker when the process that started the pool is gone (killed, or ended by a
    signal that skips its cleanup), instead of training on beside a later invocation that resumes the same run
    directories. A run killed this way resumes from its last checkpoint."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


class LocalExecutor:
    """A process pool sized to the cores (``spawn``: MuJoCo and torch state are not shared across a fork)."""

    def __init__(self, workers: Optional[int] = None):
        self.workers = workers or os.cpu_count() or 1
        self._pool = cf.ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=exit_with_parent,
            initargs=(os.getpid(),),
        )

    def submit(self, fn: Callable, *args: Any) -> cf.Future:
        return self._pool.submit(fn, *args)

    def wait(self, pending: set, timeout: float) -> tuple[set, set]:
        done, not_done = cf.wait(pending, timeout=timeout, return_when=cf.FIRST_COMPLETED)
        return set(done), set(not_done)

    @staticmethod
    def result(future: cf.Future) -> Any:
        return future.result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Ray tasks, one CPU each. ``address=None`` starts a local Ray instance with ``workers`` CPUs; a cluster address
    connects to it (run directories must then be on storage every node sees)."""

    def __init__(self, address: Optional[str] = None, workers: Optional[int] = None):
        try:
            import ray
        except ImportError as err:
            raise ValueError("the Ray executor needs Ray: pip install -e '.[ray]'") from err
        self._ray = ray
        if not ray.is_initialized():
            if address:
                ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
            else:
                ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False)
        self.workers = int(ray.cluster_resources().get("CPU", 1))

    def submit(self, fn: Callable, *args: Any) -> Any:
        return self._ray.remote(num_cpus=1)(fn).remote(*args)

    def wait(self, pending: set, timeout: float) -> tuple[set, set]:
        done, not_done = self._ray.wait(list(pending), num_returns=len(pending), timeout=timeout)
        return set(done), set(not_done)

    def result(self, ref: Any) -> Any:
        return self._ray.get(ref)

    def close(self) -> None:
        self._ray.shutdown()


def make_executor(kind: str = "local", ray_address: Optional[str] = None, workers: Optional[int] = None):
    if ray_address or kind == "ray":
        return RayExecutor(ray_address, workers)
    if kind != "local":
        raise ValueError(f"executor must be 'local' or 'ray', got {kind!r}")
    return LocalExecutor(workers)


def _last_global_step(run_dir: Path) -> int:
    """The newest ``global_step`` in a run's metrics.csv (0 if none yet): the progress display's live step count."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        return 0
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - 4096))
        lines = f.read().decode(errors="replace").strip().splitlines()
    for line in reversed(lines):
        fields = line.split(",")
        if len(fields) > 1 and fields[1].isdigit():
            return int(fields[1])
    return 0


def executor_map(executor: Any, desc: str, poll_s: float = 2.0) -> Callable[..., Iterator[Any]]:
    """A ``map(fn, *iterables)`` that runs every call on ``executor`` at once and yields results as they finish (in
    completion order), with a progress bar ``desc``: done / total."""

    def parallel_map(fn: Callable, *iterables: Any) -> Iterator[Any]:
        pending = {executor.submit(fn, *args) for args in zip(*iterables)}
        with tqdm(total=len(pending), unit="task", desc=desc, dynamic_ncols=True) as bar:
            while pending:
                done, pending = executor.wait(pending, poll_s)
                for fut in done:
                    bar.update(1)
                    yield executor.result(fut)

    return parallel_map


def run_grid(specs: Sequence[PPORunSpec], executor: Any, poll_s: float = 2.0) -> list[dict[str, Any]]:
    """Run every spec on ``executor`` with one progress display: runs done / total and the grid's current SPS."""
    futures = {executor.submit(execute_ppo, s.config): s for s in specs}
    pending, results = set(futures), []
    start_steps = {s.run_dir: _last_global_step(s.run_dir) for s in specs}
    started = time.perf_counter()
    bar = tqdm(total=len(specs), unit="run", desc="PPO runs", dynamic_ncols=True)
    try:
        while pending:
            done, pending = executor.wait(pending, poll_s)
            for fut in done:
                results.append(executor.result(fut))
                bar.update(1)
            steps = sum(_last_global_step(s.run_dir) - start_steps[s.run_dir] for s in specs)
            bar.set_postfix(sps=f"{steps / max(time.perf_counter() - started, 1e-9):.0f}")
    finally:
        bar.close()
    return results


# ----------------------------------------------------------------------------------------------------------------
# The whole reproduction
# ----------------------------------------------------------------------------------------------------------------


def transfer_config(preset: GridPreset, specs: Sequence[PPORunSpec], root: Path) -> TransferConfig:
    """Eq. 1, its input-permuted control and the similar task on the critic of every PPO run of each arm (the paper
    transfers one critic per arm; here the PPO runs are the replicates, the regression seeds nested in each); the
    output directory is keyed by the transfer settings and by the PPO runs it reads."""
    cfg = TransferConfig(
        checkpoints=tuple(s.run_dir for s in specs),
        labels=tuple(f"PPO-{s.arm}-seed{s.seed}" for s in specs),
        arms=tuple(s.arm for s in specs),
        expected_activations=tuple(s.config.activation for s in specs),
        **preset.transfer,
    )
    key = config_key({**dataclasses.asdict(cfg), "out_dir": None})
    return dataclasses.replace(cfg, out_dir=root / "transfer" / f"transfer-{key}")


def subset(preset: GridPreset, seeds: Optional[Sequence[int]] = None, task_switches: bool = True) -> GridPreset:
    """The preset restricted to some of its seeds and/or without its task-switch grid (same run directories, so a
    later run of the whole preset reuses these runs)."""
    notes = []
    if seeds is not None:
        seeds = tuple(sorted(set(seeds)))
        if not seeds or not set(seeds) <= set(preset.seeds):
            raise ValueError(f"seeds must be a non-empty subset of preset {preset.name}'s {preset.seeds}, got {seeds}")
        grid = preset.scenarios
        notes.append(f"PPO seeds {', '.join(map(str, seeds))} only")
        if grid is not None:
            grid = dataclasses.replace(grid, seeds=tuple(s for s in grid.seeds if s in seeds))
            if not grid.seeds:
                grid = None
                notes.append("no task-switch grid (none of its seeds chosen)")
        preset = dataclasses.replace(preset, seeds=seeds, scenarios=grid)
    if not task_switches and preset.scenarios is not None:
        preset = dataclasses.replace(preset, scenarios=None)
        notes.append("no task-switch grid")
    if notes:
        preset = dataclasses.replace(preset, scaled_down=f"{preset.scaled_down}. This run: {'; '.join(notes)}")
    return preset


def run_all(
    preset_name: str,
    results_root: Path | str = "results",
    executor: str = "local",
    ray_address: Optional[str] = None,
    workers: Optional[int] = None,
    log: Callable[[str], None] = print,
    seeds: Optional[Sequence[int]] = None,
    task_switches: bool = True,
) -> Path:
    """Run (or reuse) every experiment of a preset; write ``index.json``; return the preset's results directory.

    ``seeds`` runs only those PPO seeds of the preset (and of its task-switch grid), ``task_switches=False`` leaves the
    task-switch grid out; both are recorded in the preset's ``scaled_down`` line, so the report says what ran."""
    if preset_name not in PRESETS:
        raise ValueError(f"unknown preset {preset_name!r}; choose from {sorted(PRESETS)}")
    preset = subset(PRESETS[preset_name], seeds, task_switches)
    root = Path(results_root) / preset.name
    specs = plan_ppo_runs(preset, root)
    switch_specs = plan_scenario_runs(preset, root)
    log(f"preset {preset.name}: {preset.scaled_down}")
    log(f"{len(specs)} PPO runs and {len(switch_specs)} task-switch runs under {root / 'runs'}")
    tcfg = transfer_config(preset, specs, root)
    pool = make_executor(executor, ray_address, workers)
    try:
        run_grid(specs + switch_specs, pool)  # one pool; the (longer) PPO runs are submitted first
        if (Path(tcfg.out_dir) / "summary.csv").is_file():
            log(f"transfer: reusing {tcfg.out_dir}")
        else:
            critics, seeds = len(tcfg.checkpoints), len(tcfg.seeds)
            log(f"transfer: {critics} critics (one per PPO run) x {seeds} regression seeds in parallel")
            log(f"transfer: writing {tcfg.out_dir}")
            run_transfer(tcfg, log=log, map_seeds=executor_map(pool, "transfer seeds"))
    finally:
        pool.close()

    index = {
        "preset": preset.name,
        "scaled_down": preset.scaled_down,
        "ppo_runs": [
            {
                "arm": s.arm,
                "seed": s.seed,
                "activation": s.config.activation,
                "run_dir": os.path.relpath(s.run_dir, root),
            }
            for s in specs
        ],
        "transfer_dir": os.path.relpath(tcfg.out_dir, root),
        "scenario_runs": [
            {
                "arm": s.arm,
                "seed": s.seed,
                "activation": s.config.activation,
                "run_dir": os.path.relpath(s.run_dir, root),
            }
            for s in switch_specs
        ],
        "scenario": None if not switch_specs else _scenario_summary(switch_specs[0].config),
    }
    atomic_write_json(root / "index.json", index)
    if switch_specs:
        write_scenario_tables(root)
    return root


def _scenario_summary(cfg: PPOConfig) -> dict[str, Any]:
    total = cfg.num_updates * cfg.batch_size
    return {
        "name": cfg.scenario,
        "period": cfg.scenario_period,
        "scale": cfg.scenario_scale,
        "total_timesteps": total,
        "switch_steps": cfg.task_scenario.switch_steps(total),
    }
