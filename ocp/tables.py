"""Reading the tidy tables an experiment wrote, and aggregating seeds: shared by the figures and the claims report.

Imports nothing that trains: the figure code must be able to run on a machine that only has the results folder.
"""

from __future__ import annotations

import copy
import csv
import gzip
import io
import json
import math
import os
import re
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from ocp.atomic_files import atomic_write_bytes, atomic_write_json, csv_bytes, stable_key, write_csv
from ocp.runlog import load_masks
from ocp.statistics import mean_ci

__all__ = [
    "read_csv",
    "RENAMED_COLUMNS",
    "Results",
    "aggregate",
    "write_scenario_tables",
    "SCENARIO_TABLES",
    "pack_tables",
    "unpack_tables",
    "merge_results",
]


#: Columns earlier versions named otherwise, per table: "kind" meant the layer's kind in some tables and the unit set
#: in others, "threshold" meant τ in some and a return level in another.
RENAMED_COLUMNS: dict[str, dict[str, str]] = {
    "plasticity.csv": {"kind": "layer_kind", "threshold": "tau"},
    "switches.csv": {"kind": "unit_set", "threshold": "tau"},
    "scenario_switches.csv": {"kind": "unit_set", "threshold": "tau"},
    "recovery.csv": {"threshold": "return_level"},
    "scenario_recovery.csv": {"threshold": "return_level"},
    "probe.csv": {"kind": "layer_kind"},
}


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """A tidy table's rows, with the columns of tables written by earlier versions renamed (:data:`RENAMED_COLUMNS`),
    so committed results of any version read the same way."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"missing table {path}: run the experiments first (python reproduce/all_figures.py)")
    with open(path, newline="") as f:
        text = f.read()
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    renamed = {old: new for old, new in RENAMED_COLUMNS.get(path.name, {}).items() if rows and old in rows[0]}
    if renamed:
        rows = [{renamed.get(k, k): v for k, v in row.items()} for row in rows]
    if "np." in text:  # only tables written before the writer unwrapped NumPy scalars pay for the scan
        for row in rows:
            for k, v in row.items():
                if v and (m := _NUMPY_REPR.fullmatch(v)):
                    row[k] = m.group(1)
    return rows


#: A NumPy scalar's repr, ``np.float64(0.5)``: how versions before the writer unwrapped NumPy scalars stored
#: ``metrics.csv``'s ``clipfrac`` (read back as the number inside).
_NUMPY_REPR = re.compile(r"np\.(?:float|int|uint|bool)\d*\(([^()]*)\)")


def to_float(value: str) -> float:
    return math.nan if value in ("", "nan") else float(value)


def aggregate(series: dict[int, dict[float, float]], confidence: float = 0.95) -> list[dict[str, float]]:
    """``{seed: {x: y}}`` -> rows ``x, mean, ci_low, ci_high, n`` at every x that some seed has."""
    xs = sorted({x for s in series.values() for x in s})
    rows = []
    for x in xs:
        ys = [s[x] for s in series.values() if x in s]
        m, lo, hi = mean_ci(ys, confidence)
        rows.append({"x": x, "mean": m, "ci_low": lo, "ci_high": hi, "n": sum(not math.isnan(y) for y in ys)})
    return rows


@dataclass
class Run:
    arm: str
    seed: int
    activation: str
    path: Path


class Results:
    """One preset's results folder: ``index.json``, the PPO run folders and the transfer tables."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        index = json.loads((self.root / "index.json").read_text()) if (self.root / "index.json").is_file() else None
        if index is None:
            raise ValueError(f"{self.root} has no index.json: run the experiments first")
        self.preset = index["preset"]
        self.scaled_down = index["scaled_down"]
        self.runs = [
            Run(r["arm"], int(r["seed"]), r["activation"], self.root / r["run_dir"]) for r in index["ppo_runs"]
        ]
        self.transfer_dir = self.root / index["transfer_dir"]
        self.scenario_runs = [
            Run(r["arm"], int(r["seed"]), r["activation"], self.root / r["run_dir"])
            for r in index.get("scenario_runs", [])
        ]
        self.scenario: Optional[dict[str, Any]] = index.get("scenario")
        """The task-switch grid's scenario (name, period, switch_steps, ...), or None when it was not run."""
        self._cache: dict[tuple[str, Path], list[dict[str, str]]] = {}
        self._masks: dict[Path, dict[int, dict[str, Any]]] = {}

    def scenario_view(self) -> "Results":
        """The same results with the task-switch runs as ``runs`` (``arm`` = intervention label), so that every
        series method works on them."""
        view = copy.copy(self)
        view.runs = self.scenario_runs
        return view

    @property
    def arms(self) -> list[str]:
        return list(dict.fromkeys(r.arm for r in self.runs))

    def runs_of(self, arm: str) -> list[Run]:
        return [r for r in self.runs if r.arm == arm]

    def table(self, run: Run, name: str) -> list[dict[str, str]]:
        key = (name, run.path)
        if key not in self._cache:
            self._cache[key] = read_csv(run.path / name)
        return self._cache[key]

    def masks(self, run: Run) -> dict[int, dict[str, Any]]:
        """The run's stored neuron masks, ``{update: {mask_key: bool array}}``, read once per results object."""
        if run.path not in self._masks:
            self._masks[run.path] = load_masks(run.path)
        return self._masks[run.path]

    def metric_series(self, arm: str, column: str, x: str = "global_step") -> dict[int, dict[float, float]]:
        """A column of metrics.csv per seed: ``{seed: {x: value}}``."""
        return {
            r.seed: {to_float(row[x]): to_float(row[column]) for row in self.table(r, "metrics.csv")}
            for r in self.runs_of(arm)
        }

    def plasticity_series(
        self, arm: str, network: str, layer: str, metric: str, tau: Optional[float] = None
    ) -> dict[int, dict[float, float]]:
        """One plasticity metric of one layer per seed: ``{seed: {global_step: value}}``."""
        out = {}
        for r in self.runs_of(arm):
            out[r.seed] = {
                to_float(row["global_step"]): to_float(row["value"])
                for row in self.table(r, "plasticity.csv")
                if row["network"] == network
                and row["layer"] == layer
                and row["metric"] == metric
                and (tau is None or (row["tau"] != "" and float(row["tau"]) == tau))
            }
        return out

    def layers(self, network: str, kinds: Iterable[str] = ("hidden",)) -> list[str]:
        """Layer names of a network in forward order (from the first run's table)."""
        kinds = set(kinds)
        names = [
            row["layer"]
            for row in self.table(self.runs[0], "plasticity.csv")
            if row["network"] == network and row["layer_kind"] in kinds and row["layer"] != "network"
        ]
        return list(dict.fromkeys(names))

    def transfer_table(self, name: str) -> list[dict[str, str]]:
        return read_csv(self.transfer_dir / name)


def rows_for(rows: Iterable[dict[str, str]], **match: Any) -> list[dict[str, str]]:
    """Rows whose columns equal the given values (compared as strings)."""
    want = {k: str(v) for k, v in match.items()}
    return [r for r in rows if all(r[k] == v for k, v in want.items())]


#: Grid-level tidy tables of the task-switch stage: file -> per-run table it concatenates (with arm and seed).
SCENARIO_TABLES = {
    "scenario_switches.csv": "switches.csv",
    "scenario_recovery.csv": "recovery.csv",
    "scenario_returns.csv": "metrics.csv",
}
_RETURN_COLUMNS = ("update", "global_step", "episodes", "episodic_return", "return_recent")


def write_scenario_tables(root: str | Path) -> list[Path]:
    """Concatenate every task-switch run's ``switches.csv``, ``recovery.csv`` and returns (from ``metrics.csv``)
    into tidy tables at the results root, each row prefixed with the run's ``arm`` (intervention) and ``seed``."""
    res = Results(root).scenario_view()
    paths = []
    for name, source in SCENARIO_TABLES.items():
        rows = []
        for run in res.runs:
            for row in res.table(run, source):
                kept = {k: row[k] for k in _RETURN_COLUMNS} if source == "metrics.csv" else row
                rows.append({"arm": run.arm, "seed": run.seed, **kept})
        path = res.root / name
        atomic_write_bytes(path, csv_bytes(rows, list(rows[0])) if rows else b"")
        paths.append(path)
    return paths


#: Folders of a results tree that are not tables: checkpoints (a resume needs them, a report does not), figures and
#: the transfer experiment's per-seed cache (both regenerated from the tables).
NOT_TABLES = {"checkpoints", "figures", "parts", "tb"}


def pack_tables(root: str | Path, archive: str | Path) -> Path:
    """Write every table a report and its figures are drawn from (CSV, JSON and the stored neuron masks of a results
    folder, without checkpoints, figures and caches) into a gzip-compressed tar. Byte-for-byte reproducible: sorted
    members, zero timestamps, no owners."""
    root, archive = Path(root), Path(archive)
    if not (root / "index.json").is_file():
        raise ValueError(f"{root} has no index.json: not a results folder")
    files = sorted(
        p
        for p in root.rglob("*")
        if p.is_file()
        and not NOT_TABLES & set(p.relative_to(root).parts[:-1])
        and p.suffix in (".csv", ".json", ".npz")
    )
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files:
            data = path.read_bytes()
            info = tarfile.TarInfo(path.relative_to(root).as_posix())
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    compressed = io.BytesIO()
    with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, compresslevel=9) as gz:
        gz.write(buf.getvalue())
    atomic_write_bytes(archive, compressed.getvalue())
    return archive


def unpack_tables(archive: str | Path, root: str | Path) -> Path:
    """Extract an archive of :func:`pack_tables` into ``root`` (members that would leave ``root`` are refused)."""
    if not hasattr(tarfile, "data_filter"):
        raise RuntimeError("unpacking tables needs tarfile's extraction filters (Python 3.10.12+ or 3.11.4+)")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, mode="r:gz") as tar:
        tar.extractall(root, filter="data")
    if not (root / "index.json").is_file():
        raise ValueError(f"{archive} holds no index.json: not an archive of results tables")
    return root


#: Settings of a transfer experiment that name its critics or only say how it ran (threads); every other setting must
#: agree for results to merge.
_TRANSFER_OWN_FIELDS = ("checkpoints", "labels", "arms", "expected_activations", "out_dir", "similar_policy", "threads")
#: What tells the arms of each stage apart (every other setting must be the same across arms).
_ARM_FIELDS = {"PPO": ("activation",), "task-switch": ("intervention*",)}


def _table_files(run_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in run_dir.rglob("*")
        if p.is_file()
        and p.suffix in (".csv", ".json", ".npz")
        and not NOT_TABLES & set(p.relative_to(run_dir).parts[:-1])
    )


def _config_conflicts(configs: dict[str, dict[str, Any]], ignore: Iterable[str]) -> tuple[list[str], list[str]]:
    """Fields whose values differ between configs (present in both), and fields that only some configs have (each
    with the configs that lack it)."""
    ignore = set(ignore)
    prefixes = tuple(i[:-1] for i in ignore if i.endswith("*"))  # "name*": every field starting with name
    keys = {k for k in set().union(*configs.values()) - ignore if not k.startswith(prefixes)}
    differ, partial = [], []
    for k in sorted(keys):
        present = {name: json.dumps(c[k], sort_keys=True) for name, c in configs.items() if k in c}
        if len(present) < len(configs):
            partial.append(f"{k} (absent from {', '.join(sorted(set(configs) - set(present)))})")
        if len(set(present.values())) > 1:
            differ.append(f"{k}: " + ", ".join(f"{name}={v}" for name, v in sorted(present.items())))
    return differ, partial


def _header(path: Path) -> list[str]:
    """The columns of a table (under today's names) even when it has no rows."""
    with open(path, newline="") as f:
        columns = next(csv.reader(f), [])
    renamed = RENAMED_COLUMNS.get(path.name, {})
    return [renamed.get(c, c) for c in columns]


def merge_results(
    sources: Iterable[str | Path],
    root: str | Path,
    scaled_down: str,
    ignore: Iterable[str] = ("seed", "run_dir", "exp_name"),
    upgrade: Callable[[dict[str, Any]], dict[str, Any]] = dict,
    upgrade_transfer: Callable[[dict[str, Any]], dict[str, Any]] = dict,
) -> Path:
    """Join results folders of one preset that hold different runs (other seeds, computed on other machines or at
    other times) into one results folder at ``root``, as if one invocation had run them all.

    Each PPO and task-switch run is copied (its tables, without checkpoints) and must appear in one source only; runs
    of one arm must share their config except ``ignore`` (a field that only some runs' configs have is allowed and
    named in the Scale line). The transfer experiment's per-regressor curves are concatenated
    and its summary recomputed from them, which gives what one transfer over all critics gives: a critic's regressors
    depend on that critic, its PPO seed and the regression seed only. ``scaled_down`` becomes the Scale line;
    ``upgrade`` and ``upgrade_transfer`` bring each stored run config and transfer config to one layout before they
    are compared (``ocp.ppo.upgrade_config_dict``, ``ocp.transfer.upgrade_transfer_config_dict``: for results written
    by different versions).
    """
    from ocp.transfer_statistics import (  # numpy only; kept local like its one caller
        SUMMARY_COLUMNS,
        summarise,
    )

    sources = [Path(s) for s in sources]
    root = Path(root)
    if len(sources) < 2:
        raise ValueError("merging needs at least two results folders")
    if root.exists():
        raise ValueError(f"{root} exists; merge into a new folder")
    indexes = {}
    for src in sources:
        if not (src / "index.json").is_file():
            raise ValueError(f"{src} has no index.json: not a results folder")
        indexes[src] = json.loads((src / "index.json").read_text())
    presets = {i["preset"] for i in indexes.values()}
    if len(presets) != 1:
        raise ValueError(f"results of different presets cannot be merged: {sorted(presets)}")

    def union(kind: str) -> list[tuple[Path, dict[str, Any]]]:
        seen: dict[tuple[str, int], Path] = {}
        names: dict[str, Path] = {}
        out = []
        for src, index in indexes.items():
            for run in index.get(kind, []):
                key = (run["arm"], int(run["seed"]))
                if key in seen:
                    raise ValueError(f"{kind}: arm {key[0]!r} seed {key[1]} is in both {seen[key]} and {src}")
                if run["run_dir"] in names:
                    raise ValueError(
                        f"{kind}: run folder {run['run_dir']} is in both {names[run['run_dir']]} and {src}"
                    )
                seen[key], names[run["run_dir"]] = src, src
                out.append((src, run))
        arms = list(dict.fromkeys(run["arm"] for _, run in out))  # the arms in the order the sources list them
        return sorted(out, key=lambda t: (arms.index(t[1]["arm"]), int(t[1]["seed"])))

    ppo_runs, scenario_runs = union("ppo_runs"), union("scenario_runs")
    notes = []
    for kind, runs in (("PPO", ppo_runs), ("task-switch", scenario_runs)):
        first: dict[str, dict[str, Any]] = {}
        for arm in dict.fromkeys(r["arm"] for _, r in runs):
            configs = {
                f"seed {r['seed']}": upgrade(json.loads((src / r["run_dir"] / "config.json").read_text()))
                for src, r in runs
                if r["arm"] == arm
            }
            differ, partial = _config_conflicts(configs, ignore)
            if differ:
                raise ValueError(f"{kind} arm {arm!r}: runs differ in " + "; ".join(differ))
            if partial:
                notes.append(f"{kind} arm {arm}: {'; '.join(partial)}: written by a version without that field")
            first[arm] = next(iter(configs.values()))
        differ, _ = _config_conflicts(first, (*ignore, *_ARM_FIELDS[kind]))
        if differ:
            what = " and ".join(f.rstrip("*") for f in _ARM_FIELDS[kind])
            raise ValueError(f"{kind} arms differ in more than {what}: " + "; ".join(differ))
    scenarios = {json.dumps(i.get("scenario"), sort_keys=True) for i in indexes.values() if i.get("scenario_runs")}
    if len(scenarios) > 1:
        raise ValueError(f"the sources ran different task-switch scenarios: {sorted(scenarios)}")

    transfer_dirs = {src: src / i["transfer_dir"] for src, i in indexes.items()}
    infos = {src: json.loads((d / "config.json").read_text()) for src, d in transfer_dirs.items()}
    for info in infos.values():
        info["config"] = upgrade_transfer(info["config"])
    differ, partial = _config_conflicts({str(s): i["config"] for s, i in infos.items()}, _TRANSFER_OWN_FIELDS)
    if differ or partial:
        # A setting only some transfer configs record cannot be shown to agree: refuse rather than guess.
        reasons = differ + partial
        raise ValueError("the transfer experiments differ in " + "; ".join(reasons))
    floors = {(d / "linear_floor.csv").read_bytes() for d in transfer_dirs.values()}
    if len(floors) != 1:
        raise ValueError("the transfer experiments' linear_floor.csv differ")
    key = stable_key(sorted(i["transfer_dir"] for i in indexes.values()))
    transfer_rel = f"transfer/transfer-merged-{key}"

    staging = root.with_name(f".{root.name}.merging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        for src, run in ppo_runs + scenario_runs:
            for path in _table_files(src / run["run_dir"]):
                dest = staging / run["run_dir"] / path.relative_to(src / run["run_dir"])
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest)
        out = staging / transfer_rel
        tables = {}
        for name in ("curves.csv", "probe.csv"):
            rows, header, critics = [], None, {}
            for src, d in transfer_dirs.items():
                part = read_csv(d / name)
                if header is not None and part and list(part[0]) != header:
                    raise ValueError(f"the transfer experiments' {name} have different columns")
                header = list(part[0]) if part else header
                for critic in {r["ppo_run"] for r in part}:
                    if critic in critics:
                        raise ValueError(f"transfer rows of critic {critic!r} are in both {critics[critic]} and {src}")
                    critics[critic] = src
                rows += part
            tables[name] = rows
            write_csv(out / name, rows, header or _header(next(iter(transfer_dirs.values())) / name))
        alpha = float(next(iter(infos.values()))["config"].get("alpha", 0.05))
        write_csv(out / "summary.csv", summarise(tables["curves.csv"], alpha), SUMMARY_COLUMNS)
        shutil.copyfile(next(iter(transfer_dirs.values())) / "linear_floor.csv", out / "linear_floor.csv")
        config = dict(next(iter(infos.values()))["config"])
        for field in ("checkpoints", "labels", "arms", "expected_activations"):
            config[field] = [v for i in infos.values() for v in (i["config"].get(field) or [])]
        config["out_dir"] = transfer_rel
        atomic_write_json(
            out / "config.json",
            {
                "config": config,
                **{
                    field: {k: v for i in infos.values() for k, v in i.get(field, {}).items()}
                    for field in ("checkpoints", "arms", "provenance")
                },
                "merged_from": [os.path.relpath(d, s) for s, d in transfer_dirs.items()],
            },
        )
        atomic_write_json(
            staging / "index.json",
            {
                "preset": presets.pop(),
                "scaled_down": scaled_down + "".join(f"; {note}" for note in notes),
                "ppo_runs": [r for _, r in ppo_runs],
                "transfer_dir": transfer_rel,
                "scenario_runs": [r for _, r in scenario_runs],
                "scenario": json.loads(scenarios.pop()) if scenarios else None,
                "merged_from": {"sources": [i["scaled_down"] for i in indexes.values()], "notes": notes},
            },
        )
        if scenario_runs:
            write_scenario_tables(staging)
        staging.rename(root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root
