"""The `ktlens` command. Each subcommand lives in `ktlens/commands/<name>.py` with a `register` function."""

from __future__ import annotations

import argparse
import sys

from ktlens.commands import demo, kgroup, miiii_figures, predict, probe, sae, train

COMMANDS = [demo, kgroup, train, predict, miiii_figures, probe, sae]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ktlens", description=__doc__.splitlines()[0])
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
