"""The smoke preset end to end: grid -> tidy tables -> every figure -> claims report; then the cache."""

import csv
import dataclasses
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from ocp import experiments
from ocp.figures import FIGURES, draw_all
from ocp.ppo import PPOConfig
from ocp.report import scale_table_of, write_report
from ocp.tables import pack_tables, unpack_tables


@pytest.fixture(scope="module")
def smoke_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    return experiments.run_all("smoke", root, workers=2, log=lambda s: None), None


def test_smoke_grid_writes_every_table(smoke_results):
    root, _ = smoke_results
    index = json.loads((root / "index.json").read_text())
    assert index["preset"] == "smoke"
    assert sorted((r["arm"], r["seed"]) for r in index["ppo_runs"]) == [
        ("no-act", 1),
        ("no-act", 2),
        ("relu", 1),
        ("relu", 2),
    ]
    for run in index["ppo_runs"]:
        run_dir = root / run["run_dir"]
        with open(run_dir / "metrics.csv") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["update"]) for r in rows] == list(range(1, 9))  # 2048 steps / 256 per update
        assert json.loads((run_dir / "config.json").read_text())["activation"] == run["activation"]
    for name in ("curves.csv", "summary.csv", "probe.csv"):
        assert (root / index["transfer_dir"] / name).stat().st_size > 0


def test_smoke_task_switch_grid(smoke_results):
    root, _ = smoke_results
    index = json.loads((root / "index.json").read_text())
    assert sorted((r["arm"], r["seed"]) for r in index["scenario_runs"]) == [
        ("gradient_perturb", 1),
        ("l2_init", 1),
        ("none", 1),
    ]
    assert index["scenario"]["switch_steps"] == [1024, 2048]  # 3,072 steps, reversal every 1,024
    with open(root / "scenario_recovery.csv") as f:
        recovery = list(csv.DictReader(f))
    assert sorted((r["arm"], r["switch_step"]) for r in recovery) == [
        (arm, step) for arm in ("gradient_perturb", "l2_init", "none") for step in ("1024", "2048")
    ]
    with open(root / "scenario_switches.csv") as f:
        switches = list(csv.DictReader(f))
    assert {(r["update_before"], r["update_after"]) for r in switches} == {("4", "5"), ("8", "9")}
    with open(root / "scenario_returns.csv") as f:
        assert len(list(csv.DictReader(f))) == 3 * 12  # 12 updates of 256 steps per run


def test_every_figure_and_its_csv(smoke_results):
    root, _ = smoke_results
    paths = draw_all(root, root / "figures")
    assert sorted({p.stem for p in paths}) == sorted(FIGURES)
    for p in paths:
        assert p.stat().st_size > 0
        if p.suffix == ".csv":
            with open(p) as f:
                rows = list(csv.DictReader(f))
            assert rows and {"panel", "series", "x", "mean", "ci_low", "ci_high", "n"} <= set(rows[0])


def test_report_lists_every_claim_with_a_verdict(smoke_results):
    root, _ = smoke_results
    text = write_report(root, root / "REPORT.md", theory_table="| theory | table |").read_text()
    for claim in ("C1", "C2", "C3", "C4", "C5", "C6"):
        assert f"| {claim} |" in text
    verdicts = ("**supported", "**not supported", "**inconclusive", "**not testable at this scale")
    assert sum(text.count(v) for v in verdicts) == 6
    assert "What this scale cannot conclude" in text and "| theory | table |" in text


def test_second_run_reuses_finished_runs(smoke_results):
    root, _ = smoke_results
    written = {p: p.stat().st_mtime_ns for p in root.glob("runs/*/metrics.csv")}
    written.update({p: p.stat().st_mtime_ns for p in root.glob("transfer/*/curves.csv")})
    experiments.run_all("smoke", root.parent, workers=2, log=lambda s: None)
    assert {p: p.stat().st_mtime_ns for p in written} == written  # nothing retrained or rewritten
    assert len(list((root / "runs").iterdir())) == 4 + 3  # no new run directories (4 PPO, 3 task-switch)


def test_config_key_is_stable_and_sensitive():
    a = experiments.config_key({"lr": 0.1, "seed": 1, "run_dir": "x"}, ignore=("run_dir",))
    assert a == experiments.config_key({"seed": 1, "lr": 0.1, "run_dir": "y"}, ignore=("run_dir",))
    assert a != experiments.config_key({"lr": 0.2, "seed": 1}, ignore=("run_dir",))


def test_unknown_preset_and_executor():
    with pytest.raises(ValueError, match="unknown preset"):
        experiments.run_all("huge")
    with pytest.raises(ValueError, match="executor"):
        experiments.make_executor("slurm")


def test_ray_executor_runs_the_smoke_grid(tmp_path):
    """The Ray path on a local Ray instance (the same code runs on a cluster with --ray-address)."""
    pytest.importorskip("ray")
    root = experiments.run_all("smoke", tmp_path, executor="ray", workers=2, log=lambda s: None)
    index = json.loads((root / "index.json").read_text())
    for run in index["ppo_runs"]:
        with open(root / run["run_dir"] / "metrics.csv") as f:
            assert len(list(csv.DictReader(f))) == 8


def test_tables_archive_regenerates_the_report_without_training(smoke_results, tmp_path):
    root, _ = smoke_results
    first = pack_tables(root, tmp_path / "a.tar.gz")
    assert pack_tables(root, tmp_path / "b.tar.gz").read_bytes() == first.read_bytes()  # reproducible bytes
    with tarfile.open(first) as tar:
        names = tar.getnames()
    assert "index.json" in names and not any("checkpoints" in n or "/parts/" in n for n in names)
    assert any(n.endswith(".npz") for n in names)  # the stored masks C3 and C4 read
    copy = unpack_tables(first, tmp_path / "copy")
    assert (
        write_report(copy, tmp_path / "copy.md").read_text() == write_report(root, tmp_path / "original.md").read_text()
    )


def test_unpack_tables_refuses_foreign_archives(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        data = b"{}"
        info = tarfile.TarInfo("../outside.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with pytest.raises(tarfile.OutsideDestinationError):
        unpack_tables(evil, tmp_path / "dest")
    assert not (tmp_path / "outside.json").exists()
    empty = tmp_path / "empty.tar.gz"
    with tarfile.open(empty, "w:gz"):
        pass
    with pytest.raises(ValueError, match="no index.json"):
        unpack_tables(empty, tmp_path / "dest2")


def test_subset_of_a_preset_keeps_its_run_directories(tmp_path):
    paper = experiments.PRESETS["paper"]
    part = experiments.subset(paper, seeds=[2, 1], task_switches=False)
    assert part.seeds == (1, 2) and part.scenarios is None
    assert part.scaled_down == paper.scaled_down + ". This run: PPO seeds 1, 2 only; no task-switch grid"
    whole = {(s.arm, s.seed): s.run_dir for s in experiments.plan_ppo_runs(paper, tmp_path)}
    assert all(whole[(s.arm, s.seed)] == s.run_dir for s in experiments.plan_ppo_runs(part, tmp_path))
    switches = experiments.subset(paper, seeds=[3]).scenarios
    assert switches.seeds == (3,) and switches.arms == paper.scenarios.arms
    assert experiments.subset(paper) == paper
    with pytest.raises(ValueError, match="subset of preset paper's"):
        experiments.subset(paper, seeds=[7])


@pytest.mark.parametrize("preset", ["quick", "standard", "paper"])
def test_committed_report_follows_from_committed_tables(preset, tmp_path):
    """docs/results-<preset>.md is what the committed tables give: unpack them, write the report, compare everything
    above the theory section (which `python -m theory.report` computes, not the tables)."""
    docs = Path(__file__).resolve().parents[1] / "docs"
    root = unpack_tables(docs / "tables" / f"{preset}.tar.gz", tmp_path / preset)
    regenerated = write_report(root, tmp_path / "REPORT.md").read_text()
    committed = (docs / f"results-{preset}.md").read_text().split("\n## The theory")[0]
    assert regenerated.rstrip("\n") == committed.rstrip("\n")
    drawn = {path.stem for path in draw_all(root, tmp_path / "figures")}
    switches = json.loads((root / "index.json").read_text())["scenario_runs"]
    assert drawn == set(FIGURES) - (set() if switches else {"fig_switches"})


@pytest.mark.parametrize("name", sorted(experiments.PRESETS))
def test_every_preset_plans_valid_runs(name, tmp_path):
    preset = experiments.PRESETS[name]
    specs = experiments.plan_ppo_runs(preset, tmp_path) + experiments.plan_scenario_runs(preset, tmp_path)
    assert len(specs) == 2 * len(preset.seeds) + (
        len(preset.scenarios.arms) * len(preset.scenarios.seeds) if preset.scenarios else 0
    )


def test_a_bad_preset_fails_at_planning(tmp_path):
    grid = dataclasses.replace(
        experiments.PRESETS["quick"].scenarios, ppo={"scenario": "reverse", "scenario_period": 1000}
    )
    bad = dataclasses.replace(experiments.PRESETS["quick"], scenarios=grid)
    with pytest.raises(
        ValueError, match="preset quick: invalid PPO config:\n  scenario_period=1000 must be a multiple"
    ):
        experiments.plan_scenario_runs(bad, tmp_path)


def test_pool_workers_end_when_the_grid_process_is_killed():
    """A killed main job must not leave workers training on beside the next invocation (which resumes the same run
    directories): each worker watches the process that started the pool."""
    script = (
        "import os, time\nfrom ocp.experiments import LocalExecutor\nex = LocalExecutor(1)\n"
        "pid = ex.submit(os.getpid).result()\nex.submit(time.sleep, 60)\nprint(pid, flush=True)\ntime.sleep(60)\n"
    )
    main = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    worker = int(main.stdout.readline())
    try:
        main.send_signal(signal.SIGKILL)
        main.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _alive(worker):
            time.sleep(0.1)
        assert not _alive(worker)
    finally:
        if _alive(worker):
            os.kill(worker, signal.SIGKILL)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1][0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


def test_subset_says_when_the_task_switch_grid_drops_out():
    part = experiments.subset(experiments.PRESETS["quick"], seeds=[3])
    assert part.scenarios is None and part.scaled_down.endswith(
        "This run: PPO seeds 3 only; no task-switch grid (none of its seeds chosen)"
    )


def test_from_tables_refuses_an_existing_folder_and_leaves_no_staging(tmp_path):
    archive = Path(__file__).resolve().parents[1] / "docs" / "tables" / "quick.tar.gz"
    (tmp_path / "quick").mkdir()
    script = Path(__file__).resolve().parents[1] / "reproduce" / "all_figures.py"
    done = subprocess.run(
        [sys.executable, str(script), "--from-tables", str(archive), "--results", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and f"{tmp_path / 'quick'} exists" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quick"]  # the staging folder is gone


def test_committed_quick_runs_are_what_the_quick_preset_plans(tmp_path):
    """Every run in docs/tables/quick.tar.gz has the config the quick preset plans today. Those runs were written by
    an earlier version whose config kept the intervention's parameters in flat ``intervention_*`` fields: reading
    them back (``PPOConfig.from_dict``) gives exactly today's intervention objects."""
    root = unpack_tables(Path(__file__).resolve().parents[1] / "docs" / "tables" / "quick.tar.gz", tmp_path / "q")
    index = json.loads((root / "index.json").read_text())
    preset = experiments.PRESETS["quick"]
    planned = {("ppo", s.arm, s.seed): s.config for s in experiments.plan_ppo_runs(preset, tmp_path)}
    planned |= {("switch", s.arm, s.seed): s.config for s in experiments.plan_scenario_runs(preset, tmp_path)}
    seen = set()
    for kind, runs in (("ppo", index["ppo_runs"]), ("switch", index["scenario_runs"])):
        for run in runs:
            stored = json.loads((root / run["run_dir"] / "config.json").read_text())
            assert isinstance(stored["intervention"], str) and "intervention_every" in stored  # the earlier layout
            saved = PPOConfig.from_dict(stored)
            want = planned[(kind, run["arm"], run["seed"])]
            assert dataclasses.replace(saved, run_dir=None) == dataclasses.replace(want, run_dir=None)
            seen.add((kind, run["arm"], run["seed"]))
    assert seen == set(planned)
    assert {planned[k].intervention.name for k in planned if k[0] == "switch"} == {
        "none",
        "gradient_redo",
        "l2_init",
        "weight_clipping",
    }


def test_committed_scale_table_follows_from_committed_tables():
    """docs/results-scales.md holds the table `python -m ocp.report` prints for the committed archives it names."""
    docs = Path(__file__).resolve().parents[1] / "docs"
    text = (docs / "results-scales.md").read_text()
    archives = text.split("python -m ocp.report ", 1)[1].split("\n", 1)[0].split()
    assert archives and all(a.startswith("docs/tables/") for a in archives)
    table = scale_table_of([docs.parent / a for a in archives])
    assert table.strip() in text
