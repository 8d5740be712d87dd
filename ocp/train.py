"""Command line: ``python -m ocp.train {cleanrl,paper} [--option value ...]``.

Pick a preset, then override any field of :class:`ocp.ppo.PPOConfig`; ``python -m ocp.train cleanrl --help`` lists
every option with its default. Examples::

    python -m ocp.train cleanrl --seed 2
    python -m ocp.train paper --activation identity --run-dir runs/noact
    python -m ocp.train paper --activation identity --run-dir runs/noact --resume
    python -m ocp.train paper intervention:redo --intervention.every 10 --run-dir runs/redo
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

import tyro

from ocp.ppo import PPOConfig, presets, train


def parse(args: Optional[Sequence[str]] = None) -> PPOConfig:
    configs = presets()
    preset = tyro.extras.subcommand_type_from_defaults(
        defaults={k: cfg for k, (_, cfg) in configs.items()}, descriptions={k: doc for k, (doc, _) in configs.items()}
    )
    # Unlike tyro.extras.overridable_config_cli, the intervention (a union of dataclasses) stays a sub-command.
    return tyro.cli(preset, args=args)


def main(args: Optional[Sequence[str]] = None) -> int:
    cfg = parse(args)
    try:
        run_dir = train(cfg)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(
            f"\ninterrupted; continue from the last checkpoint with --resume (run dir {cfg.resolved_run_dir()})",
            file=sys.stderr,
        )
        return 130
    if run_dir is not None:
        print(f"run finished: {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
