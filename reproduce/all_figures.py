"""Regenerate every data figure of the paper and the claims report with one command.

    python reproduce/all_figures.py                  # --preset quick: <= 30 min on a 2-core CPU machine
    python reproduce/all_figures.py --preset smoke   # CI: every figure, tiny runs, ~2 min
    python reproduce/all_figures.py --preset paper   # the paper's scale (20M steps x 6 seeds per arm)
    python reproduce/all_figures.py --preset paper --ray-address auto   # the same grid on a Ray cluster
    python reproduce/all_figures.py --from-tables docs/tables/quick.tar.gz   # figures and report from committed
                                                                            # tables, without training
    python reproduce/all_figures.py --merge-tables a.tar.gz b.tar.gz   # join results of one preset run in parts
                                                                      # (other seeds, other machines)

Finished runs are reused and interrupted ones resume: the command can be stopped and started again. Outputs go to
``results/<preset>/``: ``figures/`` (PNG, PDF and the CSV each figure was drawn from) and ``REPORT.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # runs from a checkout without installing too

from ocp.experiments import PRESETS, run_all, subset  # noqa: E402
from ocp.figures import draw_all  # noqa: E402
from ocp.ppo import RUNTIME_FIELDS, upgrade_config_dict  # noqa: E402
from ocp.report import write_report  # noqa: E402
from ocp.tables import merge_results, pack_tables, unpack_tables  # noqa: E402
from ocp.transfer import upgrade_transfer_config_dict  # noqa: E402


def theory_table() -> str:
    """The verdict table of ``theory/``, computed by running its checks (``python -m theory.report``)."""
    done = subprocess.run([sys.executable, "-m", "theory.report"], cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"python -m theory.report failed:\n{done.stderr}")
    return done.stdout


def _seeds_by_arm(indexes: list[dict], kind: str) -> dict[str, str]:
    by_arm: dict[str, list[int]] = {}
    for index in indexes:
        for run in index.get(kind, []):
            by_arm.setdefault(run["arm"], []).append(int(run["seed"]))
    return {arm: ",".join(map(str, sorted(seeds))) for arm, seeds in by_arm.items()}


def merge_sources(sources: list[str], results: Path) -> Path:
    """Join archives or results folders of one preset into ``results/<preset>`` (see ``ocp.tables.merge_results``);
    the Scale line names the seeds the parts hold together."""
    results.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".merging-", dir=results))
    try:
        folders = [Path(s) if Path(s).is_dir() else unpack_tables(s, staging / str(i)) for i, s in enumerate(sources)]
        indexes = [json.loads((f / "index.json").read_text()) for f in folders]
        preset = indexes[0]["preset"]
        if preset not in PRESETS:
            raise ValueError(f"the first source's preset {preset!r} is none of {sorted(PRESETS)}")
        seeds = sorted({int(r["seed"]) for index in indexes for r in index["ppo_runs"]})
        switches = any(index.get("scenario_runs") for index in indexes)
        chosen = subset(PRESETS[preset], None if set(seeds) == set(PRESETS[preset].seeds) else seeds, switches)
        line = f"{chosen.scaled_down}; joined from {len(folders)} result sets"
        switch_runs = _seeds_by_arm(indexes, "scenario_runs")  # the report itself names the PPO seeds
        if switch_runs:
            line += "; task-switch runs: " + ", ".join(f"{arm} seeds {s}" for arm, s in sorted(switch_runs.items()))
        return merge_results(
            folders,
            results / preset,
            line,
            ignore=(*RUNTIME_FIELDS, "seed", "exp_name"),
            upgrade=upgrade_config_dict,
            upgrade_transfer=upgrade_transfer_config_dict,
        )
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick", help="scale of the runs (default: quick)")
    parser.add_argument("--results", default="results", help="results root folder (default: results)")
    parser.add_argument(
        "--executor", choices=["local", "ray"], default="local", help="local process pool (default) or Ray"
    )
    parser.add_argument("--ray-address", default=None, help="address of a Ray cluster (implies --executor ray)")
    parser.add_argument("--workers", type=int, default=None, help="parallel runs (default: number of CPU cores)")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=None,
        help="run only these PPO seeds of the preset (the report's Scale line says so)",
    )
    parser.add_argument("--no-task-switches", action="store_true", help="leave the task-switch grid out")
    parser.add_argument("--figures-only", action="store_true", help="redraw figures and report from existing tables")
    parser.add_argument(
        "--from-tables",
        metavar="ARCHIVE",
        default=None,
        help="extract an archive of tables (docs/tables/<preset>.tar.gz) into the results folder of "
        "its preset, then redraw figures and report from it (implies --figures-only)",
    )
    parser.add_argument(
        "--merge-tables",
        metavar="SOURCE",
        nargs="+",
        default=None,
        help="join archives (or results folders) of one preset that hold different runs into the "
        "results folder of that preset, then redraw figures and report (implies --figures-only)",
    )
    parser.add_argument(
        "--pack-tables",
        metavar="ARCHIVE",
        default=None,
        help="afterwards, write the tables the report was drawn from into this archive",
    )
    args = parser.parse_args(argv)
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be >= 1")

    started = time.perf_counter()
    root = Path(args.results) / args.preset
    if args.from_tables:
        Path(args.results).mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".unpacking-", dir=args.results))
        try:
            preset = json.loads((unpack_tables(args.from_tables, staging) / "index.json").read_text())["preset"]
            if preset not in PRESETS:
                parser.error(f"--from-tables: the archive's preset {preset!r} is none of {sorted(PRESETS)}")
            root = Path(args.results) / preset
            if root.exists():
                parser.error(f"--from-tables: {root} exists; remove it or choose another --results folder")
            staging.rename(root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # gone already when the rename succeeded
    elif args.merge_tables:
        try:
            root = merge_sources(args.merge_tables, Path(args.results))
        except ValueError as err:
            parser.error(f"--merge-tables: {err}")
    elif args.figures_only:
        if not (root / "index.json").is_file():
            parser.error(f"--figures-only: {root} holds no results yet; run without it first")
    else:
        run_all(
            args.preset,
            args.results,
            args.executor,
            args.ray_address,
            args.workers,
            seeds=args.seeds,
            task_switches=not args.no_task_switches,
        )
    figures = draw_all(root, root / "figures")
    report = write_report(root, root / "REPORT.md", theory_table=theory_table())
    print(f"{len(figures) // 3} figures in {root / 'figures'}; claims report {report}")
    if args.pack_tables:
        print(f"tables: {pack_tables(root, args.pack_tables)}")
    print(f"done in {time.perf_counter() - started:.0f} s")
    return root


if __name__ == "__main__":
    main()
