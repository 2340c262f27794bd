"""The `ktlens` command. Each subcommand lives in `ktlens/commands/<name>.py` with a `register` function.

Command modules import torch and other heavy modules only inside their `run`, so `ktlens --help`,
`ktlens --version` and `ktlens kgroup` start fast.
"""

from __future__ import annotations

import argparse
import sys

import ktlens
from ktlens import __version__
from ktlens.commands import (attention, dashboard, das, demo, dla, features, kgroup, miiii_analysis, miiii_figures, patch,
                             predict, probe, reproduce, sae, train)

COMMANDS = [
    demo, kgroup, train, predict, miiii_figures, miiii_analysis, probe, dla, patch, attention, sae, features, dashboard,
    das, reproduce,
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ktlens", description=ktlens.__doc__)
    parser.add_argument("--version", action="version", version=f"ktlens {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS:
        module.register(sub)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except ValueError as err:  # bad input: one clear line, no traceback
        print(f"ktlens: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
