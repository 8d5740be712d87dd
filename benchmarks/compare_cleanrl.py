"""Whole-process wall time of our PPO loop against CleanRL's ``ppo_continuous_action.py``, same steps, same core.

CleanRL's script needs its own stack (gymnasium 0.29.1, mujoco 2.3.7), so it runs from another Python: pass that
interpreter and the script. The two commands run in turn, each pinned to one core with ``taskset``, ``rounds``
times, and the summary prints each median and the ratio CleanRL / ours. ``--side-by-side`` then runs two of our
processes at once, one per core, and prints their wall time against the solo median (the experiment grid runs one
run per core).

    python benchmarks/compare_cleanrl.py --cleanrl-python ../cleanrl/venv/bin/python \\
        --cleanrl-script ../cleanrl/ppo_continuous_action.py --steps 143360 --rounds 2 --side-by-side

Both processes get ``OMP_NUM_THREADS=1`` (CleanRL's script never sets torch's thread count; one thread is its
fastest on one core). Ours runs with the probe and TensorBoard off and no progress bar; CleanRL's with its defaults
(it writes TensorBoard events).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(cmd: list[str], core: int, cwd: str) -> float:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    start = time.perf_counter()
    subprocess.run(
        ["taskset", "-c", str(core), *cmd],
        cwd=cwd,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def ours(steps: int, run_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ocp.train",
        "cleanrl",
        "--total-timesteps",
        str(steps),
        "--probe-interval",
        "0",
        "--no-tensorboard",
        "--no-progress-bar",
        "--run-dir",
        str(run_dir),
        "--overwrite",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cleanrl-python", required=True, help="the Python of CleanRL's environment")
    parser.add_argument("--cleanrl-script", required=True, help="CleanRL's ppo_continuous_action.py")
    parser.add_argument("--steps", type=int, default=143_360, help="environment steps of each run (a multiple of 2048)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds of the two commands")
    parser.add_argument("--core", type=int, default=0, help="the core both commands are pinned to")
    parser.add_argument("--side-by-side", action="store_true", help="also run two of ours at once on cores 0 and 1")
    args = parser.parse_args()
    if args.steps % 2048:
        parser.error(f"--steps must be a multiple of 2048 (one update of both loops), got {args.steps}")
    script = Path(args.cleanrl_script).resolve()
    repo = str(Path(__file__).resolve().parents[1])
    with tempfile.TemporaryDirectory() as tmp:
        theirs_cmd = [
            args.cleanrl_python,
            str(script),
            "--env-id",
            "HalfCheetah-v4",
            "--total-timesteps",
            str(args.steps),
        ]
        times: dict[str, list[float]] = {"cleanrl": [], "ours": []}
        for k in range(args.rounds):
            times["cleanrl"].append(timed(theirs_cmd, args.core, tmp))
            times["ours"].append(timed(ours(args.steps, Path(tmp) / f"ours{k}"), args.core, repo))
            print(f"round {k + 1}: CleanRL {times['cleanrl'][-1]:.1f} s, ours {times['ours'][-1]:.1f} s", flush=True)
        theirs_s, ours_s = (statistics.median(times[k]) for k in ("cleanrl", "ours"))
        print(
            f"{args.steps} steps, one pinned core, median of {args.rounds}: CleanRL {theirs_s:.1f} s "
            f"({args.steps / theirs_s:,.0f} steps/s), ours {ours_s:.1f} s ({args.steps / ours_s:,.0f} steps/s); "
            f"CleanRL / ours = {theirs_s / ours_s:.2f}"
        )
        if args.side_by_side:
            env = dict(os.environ, OMP_NUM_THREADS="1")
            start = time.perf_counter()
            procs = [
                subprocess.Popen(
                    ["taskset", "-c", str(core), *ours(args.steps, Path(tmp) / f"pair{core}")],
                    cwd=repo,
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                for core in (0, 1)
            ]
            ends = []
            for p in procs:
                if p.wait() != 0:
                    raise RuntimeError("a side-by-side run failed")
                ends.append(time.perf_counter() - start)
            slowest = max(ends)
            print(
                f"two of ours side by side (cores 0 and 1): {slowest:.1f} s for the slower; "
                f"each keeps {ours_s / slowest:.0%} of its solo speed"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
