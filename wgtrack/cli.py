"""Command line: parse arguments, set up logging, load the config, run the daemon."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import threading

from wgtrack import __version__, checkconfig, config, heap, workers
from wgtrack.daemon import Daemon
from wgtrack.dump import parse_dump
from wgtrack.model import short_key
from wgtrack.outputs import registry
from wgtrack.outputs.json_status import JsonSettings, read_status
from wgtrack.peers import probe_target
from wgtrack.schema import parse_loglevel
from wgtrack.tracker import Tracker
from wgtrack.wgcmd import show_all_dump
from wgtrack.wgconf import load_interface_conf


def _loglevel_arg(text: str) -> int:
    try:
        return parse_loglevel(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _Formatter(argparse.HelpFormatter):
    """argparse's own, told its width: left to itself it imports ``shutil`` to ask the terminal,
    and with it ``bz2`` and ``lzma``, 0.5 MB that the daemon then keeps for nothing."""

    def __init__(self, prog: str) -> None:
        try:
            columns = int(os.environ["COLUMNS"])
        except (KeyError, ValueError):
            try:
                columns = os.get_terminal_size(sys.__stdout__.fileno() if sys.__stdout__ else 1).columns
            except (OSError, ValueError):
                columns = 80
        super().__init__(prog, width=max(columns, 20) - 2)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wgtrack", formatter_class=_Formatter,
        description="Track the health of WireGuard links, re-resolve dynamic endpoints, export state. "
                    "`wgtrack status [--json] [--watch]` shows what the running daemon knows; "
                    "`wgtrack history [PEER] [--since 7d] [--json|--csv]` its outages, sessions and endpoints; "
                    "`wgtrack report [--month YYYY-MM]` availability per peer; "
                    "`wgtrack install` / `uninstall` set up or remove the systemd unit (not for the .deb).",
    )
    parser.add_argument("-c", "--config", default=str(config.DEFAULT_PATH),
                        help="config file (default: %(default)s)")
    parser.add_argument("-l", "--loglevel", type=_loglevel_arg, default=None,
                        help="debug, info, warning, error or a number; overrides the config's loglevel")
    parser.add_argument("--check-config", nargs="?", const="", default=None, metavar="FILE",
                        help="validate the config (FILE, else --config), print what was understood, exit 0 or 1")
    parser.add_argument("--once", action="store_true", help="run one cycle, write the outputs and exit")
    parser.add_argument("--stdout", action="store_true",
                        help="also write the line protocol to stdout each cycle (Telegraf inputs.execd)")
    parser.add_argument("--version", action="version", version=f"wgtrack {__version__}")
    return parser


def _setup_logging(level: int) -> None:
    under_systemd = bool(os.environ.get("JOURNAL_STREAM") or os.environ.get("INVOCATION_ID"))
    fmt = "%(levelname)s %(message)s" if under_systemd else "%(asctime)s %(levelname)s %(message)s"
    logging.basicConfig(stream=sys.stderr, level=level, format=fmt, force=True)


def peer_report(cfg: config.Config) -> list[str]:
    """What wgtrack would do for each live peer: probe target and re-resolution source."""
    result = asyncio.run(show_all_dump(cfg.wg_command, cfg.wg_timeout_s))
    if result.error is not None:
        return [f"WireGuard not readable now ({result.error}): per-peer checks skipped"]
    tracker = Tracker(cfg)
    silent = _silent_targets(cfg)
    lines = []
    for iface in parse_dump(result.stdout).interfaces:
        confs = load_interface_conf(cfg.wg_config_dir, iface.name)
        tracker.set_interface_conf(iface.name, confs)
        for peer in iface.peers:
            pid = (iface.name, peer.public_key)
            settings = cfg.settings_for(*pid)
            name = tracker.name_of(pid)
            target = probe_target(peer, settings.ping_target)
            if settings.ping_interval == 0:
                probe = "probes off"
            elif target:
                probe = f"probe {target}"
                if pid in silent:
                    probe += " (silent per the running daemon: judged by handshakes)"
            else:
                ranges = ", ".join(peer.allowed_ips) or "no allowed IPs"
                probe = (f"no ICMP probe: only network ranges ({ranges}); "
                         f"set [peer:{peer.public_key}] ping_target")
            source = tracker.reresolve_source(pid)
            resolve = f"re-resolve {source[0]}:{source[1]}" if source else "no re-resolution"
            lines.append(f"{name} ({short_key(peer.public_key)}): {probe}; {resolve}")
    return lines or ["no WireGuard interface exists yet"]


def _silent_targets(cfg: config.Config) -> set[tuple[str, str]]:
    """Peers whose probe target the running daemon declared silent, from its status file."""
    settings = cfg.output("output:json", JsonSettings)
    if settings is None:
        return set()
    try:
        doc = read_status(settings.filename)
        return {(str(i["name"]), str(p["public_key"])) for i in doc.get("interfaces", [])
                for p in i.get("peers", []) if p.get("probe_silent")}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return set()  # no daemon, or not one that writes this: nothing to add


def check_config(path: str) -> int:
    """Validate a config and the outputs' prerequisites; print the result."""
    try:
        cfg = config.load(path)
    except config.ConfigError as exc:
        print(f"wgtrack: {path}: invalid configuration:\n{exc}", file=sys.stderr)
        return 1
    print(checkconfig.describe(cfg))
    for line in peer_report(cfg):
        print(line)
    problems = [p for output in registry.build(cfg) for p in output.check()]
    for problem in problems:
        print(f"wgtrack: {path}: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"{path}: configuration OK")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["status"]:
        from wgtrack.status import main as status_main

        return status_main(argv[1:])
    if argv[:1] in (["history"], ["report"]):
        from wgtrack.historycli import history_main, report_main

        return history_main(argv[1:]) if argv[0] == "history" else report_main(argv[1:])
    if argv[:1] in (["install"], ["uninstall"]):
        from wgtrack.install import main as install_main

        return install_main(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    if args.check_config is not None:
        return check_config(args.check_config or args.config)
    try:
        cfg = config.load(args.config)
    except config.ConfigError as exc:
        print(f"wgtrack: {args.config}: invalid configuration, not starting:\n{exc}", file=sys.stderr)
        return 1
    _setup_logging(args.loglevel if args.loglevel is not None else cfg.loglevel)
    heap.one_arena()  # before the daemon's threads start
    heap.tune_collector()
    daemon = Daemon(cfg, once=args.once, loglevel_override=args.loglevel, stdout_override=args.stdout)
    return run_until_done(daemon)


def run_until_done(daemon: Daemon) -> int:
    """Run the daemon; then exit without waiting for threads stuck in the outside world.

    Blocking calls run on daemon threads with deadlines, but a thread can stay stuck in a
    write to a pipe nobody reads. ``asyncio.run`` would wait for executor threads and the
    interpreter for non-daemon ones; a stop must not. So the loop is closed without waiting,
    and when any worker thread is still busy the process leaves with ``os._exit`` after the
    logs are flushed.
    """
    loop = asyncio.new_event_loop()
    try:
        rc = loop.run_until_complete(daemon.run())
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if workers.any_busy() or any(t.is_alive() for t in others):
        logging.shutdown()
        with contextlib.suppress(OSError):
            sys.stderr.flush()
        os._exit(rc)
    return rc
