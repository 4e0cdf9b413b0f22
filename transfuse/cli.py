"""Command line: ``transfuse demo`` (and the recipe commands, see ``transfuse --help``)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="transfuse",
        description="Compose geometric transforms lazily and resample once.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the built-in demo on a generated volume")
    demo.add_argument("--size", type=int, default=96, help="edge of the cubic volume")
    demo.add_argument("--chunks", type=int, default=32, help="chunk edge")
    demo.add_argument("--output", default="transfuse-demo-output.npy", help=".npy to write")
    return parser


def main(argv=None) -> int:
    """Entry point of the ``transfuse`` command; returns the exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        if args.size < 4 or args.chunks < 1:
            print("transfuse: error: --size must be >= 4 and --chunks >= 1", file=sys.stderr)
            return 2
        run_demo(args.size, args.chunks, args.output)
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())
