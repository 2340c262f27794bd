"""Subcommands of the `ktlens` command line; each module exposes `register(subparsers)`."""
