"""Command line: parse arguments, set up logging, load the config, run the daemon."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from wgtrack import __version__, config, outputs
from wgtrack.daemon import Daemon


def _loglevel_arg(text: str) -> int:
    try:
        return config.parse_loglevel(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wgtrack",
        description="Track the health of WireGuard links, re-resolve dynamic endpoints, export state.",
    )
    parser.add_argument("-c", "--config", default=str(config.DEFAULT_PATH),
                        help="config file (default: %(default)s)")
    parser.add_argument("-l", "--loglevel", type=_loglevel_arg, default=None,
                        help="debug, info, warning, error or a number; overrides the config's loglevel")
    parser.add_argument("--check-config", nargs="?", const="", default=None, metavar="FILE",
                        help="validate the config (FILE, else --config), print what was understood, exit 0 or 1")
    parser.add_argument("--once", action="store_true", help="run one cycle, write the outputs and exit")
    parser.add_argument("--version", action="version", version=f"wgtrack {__version__}")
    return parser


def _setup_logging(level: int) -> None:
    under_systemd = bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))
    fmt = "%(levelname)s %(message)s" if under_systemd else "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(stream=sys.stderr, level=level, format=fmt, force=True)


def check_config(path: str) -> int:
    """Validate a config and the outputs' prerequisites; print the result."""
    try:
        cfg = config.load(path)
    except config.ConfigError as exc:
        print(f"wgtrack: {path}: invalid configuration:\n{exc}", file=sys.stderr)
        return 1
    print(config.describe(cfg))
    problems = [p for output in outputs.build(cfg) for p in output.check()]
    for problem in problems:
        print(f"wgtrack: {path}: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"{path}: configuration OK")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.check_config is not None:
        return check_config(args.check_config or args.config)
    try:
        cfg = config.load(args.config)
    except config.ConfigError as exc:
        print(f"wgtrack: {args.config}: invalid configuration, not starting:\n{exc}", file=sys.stderr)
        return 1
    _setup_logging(args.loglevel if args.loglevel is not None else cfg.loglevel)
    daemon = Daemon(cfg, once=args.once, loglevel_override=args.loglevel)
    return asyncio.run(daemon.run())
