"""The ``ocp`` console command: ``ocp {train,transfer,demo} [options]``, each the same as its ``python -m`` form."""

from __future__ import annotations

import sys
from typing import Callable, Optional, Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("ocp.train", "PPO with in-training plasticity measurement (python -m ocp.train)"),
    "transfer": ("ocp.transfer", "the transfer experiment (python -m ocp.transfer)"),
    "demo": ("ocp.demo", "the probe demo (python -m ocp.demo)"),
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        lines = ["usage: ocp COMMAND [options]   (ocp COMMAND --help for its options)", "", "commands:"]
        lines += [f"  {name:<10}{text}" for name, (_, text) in COMMANDS.items()]
        print("\n".join(lines), file=sys.stdout if args[:1] in (["-h"], ["--help"]) else sys.stderr)
        return 0 if args[:1] in (["-h"], ["--help"]) else 2
    module = __import__(COMMANDS[args[0]][0], fromlist=["main"])
    command: Callable[[list[str]], Optional[int]] = module.main
    return int(command(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
