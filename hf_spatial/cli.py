"""The `hf-spatial` command line. Each subcommand lives in the module that owns the feature.

A command module exposes `register(subparsers)`, which adds its parser and sets `func` to a callable taking
the parsed namespace and returning an exit code. Modules keep heavy imports inside their functions so that
`hf-spatial --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# Modules that provide subcommands, in the order `--help` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "hf_spatial.data.simulate",
    "hf_spatial.data.starss23",
    "hf_spatial.acoustics.debian",
    "hf_spatial.tasks.dataset",
    "hf_spatial.training.stages",
    "hf_spatial.training.embed",
    "hf_spatial.evaluation.benchmark",
    "hf_spatial.evaluation.cli",
    "hf_spatial.pretrained.whisper",
    "hf_spatial.demo.cli",
    "hf_spatial.publish",
    "hf_spatial.env",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hf-spatial",
        description="Spatial hearing for Hugging Face audio-language models (First-Order Ambisonics).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra_args = parser.parse_known_args(argv)
    if extra_args and not getattr(args, "accepts_extra_args", False):
        parser.error(f"unrecognized arguments: {' '.join(extra_args)}")
    args.extra_args = extra_args
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args.func(args) or 0)
    except (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError, IsADirectoryError) as error:
        # User errors: one clear line, no traceback (use -v for the traceback).
        if args.verbose:
            raise
        print(f"hf-spatial {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
