"""Joining results of one preset computed in parts: split the committed quick tables by seed, merge the parts, and
get the original tables back (the transfer summary recomputed from the parts' curves, byte for byte)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ocp.atomic_files import csv_bytes, write_csv
from ocp.ppo import upgrade_config_dict
from ocp.runlog import CsvLog
from ocp.tables import merge_results, read_csv, unpack_tables
from ocp.transfer import upgrade_transfer_config_dict
from ocp.transfer_statistics import SUMMARY_COLUMNS, summarise

QUICK = Path(__file__).resolve().parents[1] / "docs" / "tables" / "quick.tar.gz"


def _rows(path):
    rows = read_csv(path)
    return list(rows[0]), rows


def _part(whole: Path, out: Path, ppo_seeds: set, switch_seeds: set) -> Path:
    """The results folder that running only these seeds would have written (the transfer summary from its own
    critics, as run_transfer computes it)."""
    index = json.loads((whole / "index.json").read_text())
    index["ppo_runs"] = [r for r in index["ppo_runs"] if r["seed"] in ppo_seeds]
    index["scenario_runs"] = [r for r in index["scenario_runs"] if r["seed"] in switch_seeds]
    index["scaled_down"] += f" (seeds {sorted(ppo_seeds)})"
    for run in index["ppo_runs"] + index["scenario_runs"]:
        shutil.copytree(whole / run["run_dir"], out / run["run_dir"])
    src, dst = whole / index["transfer_dir"], out / index["transfer_dir"]
    dst.mkdir(parents=True)
    for name in ("curves.csv", "probe.csv"):
        header, rows = _rows(src / name)
        write_csv(dst / name, [r for r in rows if int(r["ppo_seed"]) in ppo_seeds], header)
    write_csv(dst / "summary.csv", summarise(_rows(dst / "curves.csv")[1]), SUMMARY_COLUMNS)
    shutil.copyfile(src / "linear_floor.csv", dst / "linear_floor.csv")
    info = json.loads((src / "config.json").read_text())
    keep = [i for i, label in enumerate(info["config"]["labels"]) if int(label.rsplit("seed", 1)[1]) in ppo_seeds]
    for field in ("checkpoints", "labels", "arms", "expected_activations"):
        info["config"][field] = [info["config"][field][i] for i in keep]
    (dst / "config.json").write_text(json.dumps(info))
    (out / "index.json").write_text(json.dumps(index))
    return out


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    root = tmp_path_factory.mktemp("quick")
    whole = unpack_tables(QUICK, root / "whole")
    a = _part(whole, root / "a", {1, 2}, {1})
    b = _part(whole, root / "b", {3}, {2})
    return whole, a, b


def test_merging_parts_gives_back_the_whole(quick, tmp_path):
    whole, a, b = quick
    assert (a / json.loads((a / "index.json").read_text())["transfer_dir"] / "summary.csv").read_bytes() != (
        whole / json.loads((whole / "index.json").read_text())["transfer_dir"] / "summary.csv"
    ).read_bytes()
    merged = merge_results([b, a], tmp_path / "quick", "joined")
    index, original = (json.loads((p / "index.json").read_text()) for p in (merged, whole))
    assert index["scaled_down"] == "joined"
    for kind in ("ppo_runs", "scenario_runs"):
        key = lambda r: (r["arm"], r["seed"])  # noqa: E731
        assert sorted(index[kind], key=key) == sorted(original[kind], key=key)
    assert index["scenario"] == original["scenario"]
    summary = (merged / index["transfer_dir"] / "summary.csv").read_bytes()
    assert summary == (whole / original["transfer_dir"] / "summary.csv").read_bytes()
    for name in ("curves.csv", "probe.csv"):
        got, want = _rows(merged / index["transfer_dir"] / name), _rows(whole / original["transfer_dir"] / name)
        assert got[0] == want[0] and sorted(map(tuple, map(dict.items, got[1]))) == sorted(
            map(tuple, map(dict.items, want[1]))
        )
    for name in ("scenario_switches.csv", "scenario_returns.csv", "scenario_recovery.csv"):
        assert sorted(_rows(merged / name)[1], key=str) == sorted(_rows(whole / name)[1], key=str)
    for run in index["ppo_runs"] + index["scenario_runs"]:
        files = sorted(
            p.relative_to(whole / run["run_dir"]) for p in (whole / run["run_dir"]).rglob("*") if p.is_file()
        )
        assert files == sorted(
            p.relative_to(merged / run["run_dir"]) for p in (merged / run["run_dir"]).rglob("*") if p.is_file()
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["quick"]  # no staging folder left


def test_a_run_in_two_parts_is_refused(quick, tmp_path):
    whole, a, _ = quick
    with pytest.raises(ValueError, match="ppo_runs: arm 'relu' seed 1 is in both"):
        merge_results([a, whole], tmp_path / "out", "joined")
    assert not (tmp_path / "out").exists()


def test_runs_of_an_arm_must_share_their_config(quick, tmp_path):
    _, a, b = quick
    b2 = tmp_path / "b2"
    shutil.copytree(b, b2)
    run = json.loads((b2 / "index.json").read_text())["ppo_runs"][0]
    config = json.loads((b2 / run["run_dir"] / "config.json").read_text())
    (b2 / run["run_dir"] / "config.json").write_text(json.dumps({**config, "learning_rate": 0.5}))
    with pytest.raises(ValueError, match=rf"PPO arm '{run['arm']}': runs differ in learning_rate: .*seed 3=0.5"):
        merge_results([a, b2], tmp_path / "out", "joined")
    del config["probe_objective"]
    (b2 / run["run_dir"] / "config.json").write_text(json.dumps(config))
    merged = merge_results([a, b2], tmp_path / "out", "joined")
    assert json.loads((merged / "index.json").read_text())["scaled_down"] == (
        f"joined; PPO arm {run['arm']}: probe_objective (absent from seed 3): written by a version without that field"
    )


def test_transfer_settings_must_agree(quick, tmp_path):
    _, a, b = quick
    b2 = tmp_path / "b2"
    shutil.copytree(b, b2)
    path = b2 / json.loads((b2 / "index.json").read_text())["transfer_dir"] / "config.json"
    info = json.loads(path.read_text())
    info["config"]["epochs"] = 7
    path.write_text(json.dumps(info))
    with pytest.raises(ValueError, match="the transfer experiments differ in epochs"):
        merge_results([a, b2], tmp_path / "out", "joined")


def test_only_results_of_one_preset_merge(quick, tmp_path):
    _, a, b = quick
    b2 = tmp_path / "b2"
    shutil.copytree(b, b2)
    index = json.loads((b2 / "index.json").read_text())
    (b2 / "index.json").write_text(json.dumps({**index, "preset": "standard"}))
    with pytest.raises(ValueError, match=r"different presets cannot be merged: \['quick', 'standard'\]"):
        merge_results([a, b2], tmp_path / "out", "joined")
    with pytest.raises(ValueError, match="at least two"):
        merge_results([a], tmp_path / "out", "joined")


def test_configs_written_by_different_versions_compare_by_meaning(quick, tmp_path):
    """Part b rewritten in today's config layout (the intervention as one entry): merging with part a, written in the
    earlier flat layout, needs the configs brought to one layout first."""
    _, a, b = quick
    b2 = tmp_path / "b2"
    shutil.copytree(b, b2)
    index = json.loads((b2 / "index.json").read_text())
    for run in index["ppo_runs"] + index["scenario_runs"]:
        path = b2 / run["run_dir"] / "config.json"
        stored = json.loads(path.read_text())
        path.write_text(json.dumps(upgrade_config_dict(stored)))
        assert isinstance(stored["intervention"], str)
    with pytest.raises(ValueError, match="runs differ in intervention"):
        merge_results([a, b2], tmp_path / "out", "joined")
    merged = merge_results([a, b2], tmp_path / "out", "joined", upgrade=upgrade_config_dict)
    assert json.loads((merged / "index.json").read_text())["scaled_down"] == "joined"


def test_transfer_configs_written_by_different_versions_compare_by_meaning(quick, tmp_path):
    """Part b's transfer config in today's layout (the similar task as one entry) against part a's flat one."""
    _, a, b = quick
    b2 = tmp_path / "b2"
    shutil.copytree(b, b2)
    path = b2 / json.loads((b2 / "index.json").read_text())["transfer_dir"] / "config.json"
    info = json.loads(path.read_text())
    assert "similar_horizon" in info["config"]
    info["config"] = upgrade_transfer_config_dict(info["config"])
    assert info["config"]["similar_task"]["horizon"] == 500 and "similar_horizon" not in info["config"]
    path.write_text(json.dumps(info))
    with pytest.raises(ValueError, match="the transfer experiments differ in similar_"):
        merge_results([a, b2], tmp_path / "out", "joined")
    merge_results([a, b2], tmp_path / "out", "joined", upgrade_transfer=upgrade_transfer_config_dict)


def test_tables_of_earlier_versions_read_with_todays_column_names(tmp_path):
    (tmp_path / "plasticity.csv").write_text("update,layer,kind,threshold,value\n1,0,hidden,0.025,0.5\n")
    (tmp_path / "recovery.csv").write_text("switch,threshold,recovered\n1,90.0,1\n")
    (tmp_path / "metrics.csv").write_text("update,kind\n1,x\n")  # a table without renamed columns keeps its own
    assert read_csv(tmp_path / "plasticity.csv") == [
        {"update": "1", "layer": "0", "layer_kind": "hidden", "tau": "0.025", "value": "0.5"}
    ]
    assert read_csv(tmp_path / "recovery.csv") == [{"switch": "1", "return_level": "90.0", "recovered": "1"}]
    assert read_csv(tmp_path / "metrics.csv") == [{"update": "1", "kind": "x"}]


def test_run_logs_write_numpy_floats_as_numbers(tmp_path):
    log = CsvLog(tmp_path / "metrics.csv", ["clipfrac", "value"])
    log.write([{"clipfrac": np.float64(0.1), "value": float("nan")}])
    log.close()
    assert (tmp_path / "metrics.csv").read_text() == "clipfrac,value\n0.1,nan\n"


def test_numpy_scalars_are_written_as_numbers_and_earlier_reprs_read_as_numbers(tmp_path):
    # csv writes a float subclass by its repr: np.float64(0.25) would land in the table as text.
    rows = [{"update": np.int64(3), "clipfrac": np.float64(0.25), "value": np.float32(0.5), "note": "np.x(1)"}]
    assert (
        csv_bytes(rows, ["update", "clipfrac", "value", "note"]) == b"update,clipfrac,value,note\n3,0.25,0.5,np.x(1)\n"
    )
    (tmp_path / "metrics.csv").write_text("update,clipfrac,note\n1,,np.x(1)\n2,np.float64(0.125),a\n3,0.5,b\n")
    assert read_csv(tmp_path / "metrics.csv") == [  # an empty first cell does not hide the later ones
        {"update": "1", "clipfrac": "", "note": "np.x(1)"},
        {"update": "2", "clipfrac": "0.125", "note": "a"},
        {"update": "3", "clipfrac": "0.5", "note": "b"},
    ]


def _rewrite_configs(folder, arm, **changes):
    index = json.loads((folder / "index.json").read_text())
    for run in index["ppo_runs"]:
        if run["arm"] == arm:
            path = folder / run["run_dir"] / "config.json"
            path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_arms_must_differ_only_in_what_makes_them_arms(quick, tmp_path):
    _, a, b = quick
    a2, b2 = tmp_path / "a2", tmp_path / "b2"
    shutil.copytree(a, a2)
    shutil.copytree(b, b2)
    for part in (a2, b2):
        _rewrite_configs(part, "no-act", total_timesteps=2_000_000)
    with pytest.raises(ValueError, match="PPO arms differ in more than activation: total_timesteps"):
        merge_results([a2, b2], tmp_path / "out", "joined")


def test_runtime_settings_do_not_block_a_merge_when_ignored(quick, tmp_path):
    """A run killed before its first checkpoint restarts with resume=True in its config; how a run was executed is
    not what it computed."""
    _, a, b = quick
    b2 = tmp_path / "b2"
    shutil.copytree(b, b2)
    _rewrite_configs(b2, "relu", resume=True, torch_threads=4)
    with pytest.raises(ValueError, match="runs differ in resume"):
        merge_results([a, b2], tmp_path / "out", "joined")
    ignore = ("seed", "exp_name", "run_dir", "resume", "torch_threads")
    assert merge_results([a, b2], tmp_path / "out", "joined", ignore=ignore).is_dir()


def test_a_critic_in_two_transfer_tables_is_refused(quick, tmp_path):
    _, a, b = quick
    b2 = tmp_path / "b2"
    shutil.copytree(b, b2)
    index = json.loads((b2 / "index.json").read_text())
    curves = b2 / index["transfer_dir"] / "curves.csv"
    extra = [r for r in read_csv(a / index["transfer_dir"] / "curves.csv") if r["ppo_run"] == "PPO-relu-seed1"]
    header, rows = _rows(curves)
    write_csv(curves, rows + extra, header)
    with pytest.raises(ValueError, match="transfer rows of critic 'PPO-relu-seed1' are in both"):
        merge_results([a, b2], tmp_path / "out", "joined")
    assert not (tmp_path / "out").exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())
