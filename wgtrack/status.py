"""``wgtrack status``: a table of interfaces and peers from the daemon's JSON status file."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from wgtrack import config
from wgtrack.outputs.json_status import read_status


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


STALE_CYCLES = 3


def shape_problem(doc: Any) -> str | None:
    """Why ``doc`` is not a status document this version can show, or None."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    if not isinstance(doc.get("time"), int | float) or not isinstance(doc.get("interfaces"), list):
        return "no time or interfaces"
    for iface in doc["interfaces"]:
        if not isinstance(iface, dict) or not isinstance(iface.get("name"), str) \
                or not isinstance(iface.get("peers"), list):
            return "an interface without name or peers"
        for p in iface["peers"]:
            if not isinstance(p, dict) or not isinstance(p.get("public_key"), str) \
                    or not isinstance(p.get("status"), str):
                return "a peer without public_key or status"
    return None


def freshness(doc: dict[str, Any], now: float) -> str | None:
    """Why the table is not current (stopped, or not updated for three cycles), or None."""
    written = float(doc["time"])
    if doc.get("stopped"):
        return f"wgtrack stopped {_age(now - written)} ago; this is what it knew then"
    cycle = float(doc.get("cycle_time_s") or 30.0)
    if now - written > STALE_CYCLES * cycle + 5:
        return (f"the status file was last written {_age(now - written)} ago (cycle {cycle:g} s): "
                "wgtrack is not updating it; is it running?")
    return None


def table(doc: dict[str, Any], now: float) -> str:
    """Human-readable rendering of one status document."""
    rows = [("INTERFACE", "PEER", "STATE", "SINCE", "HANDSHAKE", "ENDPOINT", "RTT", "NEXT RE-RESOLVE")]
    for iface in doc.get("interfaces", []):
        for p in iface.get("peers", []):
            name = p.get("friendly_name") or p["public_key"][:8] + "…"
            rtt = "-" if p.get("rtt_ms") is None else f"{p['rtt_ms']:.1f}ms"
            if p.get("probe_silent"):
                rtt = "silent"  # the probe target does not answer: judged by handshakes
            rows.append((iface["name"], name, p["status"], _age(p.get("since_s")), _age(p.get("handshake_age_s")),
                         p.get("endpoint") or "-", rtt, _age(p.get("next_reresolve_s"))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    age = now - float(doc.get("time", now))
    head = f"cycle {doc.get('cycle')}, written {age:.0f} s ago"
    if not doc.get("wg_ok", True):
        head += f"; WireGuard not readable: {doc.get('wg_error')}"
    return head + "\n" + "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wgtrack status", description="Show what the running wgtrack knows.")
    parser.add_argument("-c", "--config", default=str(config.DEFAULT_PATH),
                        help="config file naming the status file (default: %(default)s)")
    parser.add_argument("--file", help="the status file (default: [output:json] filename of the config)")
    parser.add_argument("--json", action="store_true", help="print the status document as it is")
    args = parser.parse_args(argv)
    path = Path(args.file) if args.file else _configured_path(args.config)
    try:
        doc = read_status(path)
    except FileNotFoundError:
        print(f"wgtrack status: no status file at {path}: is wgtrack running with [output:json]?", file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"wgtrack status: cannot read {path}: {exc}", file=sys.stderr)
        return 1
    problem = shape_problem(doc)
    if problem is not None:
        print(f"wgtrack status: {path} is not a wgtrack status file ({problem})", file=sys.stderr)
        return 1
    print(json.dumps(doc, indent=1) if args.json else table(doc, time.time()))
    stale = freshness(doc, time.time())
    if stale is not None:
        print(f"wgtrack status: {stale}", file=sys.stderr)
        return 3
    return 0


def _configured_path(config_path: str) -> Path:
    try:
        cfg = config.load(config_path)
    except config.ConfigError:
        return config.DEFAULT_STATUS_FILE
    return cfg.json_status.filename if cfg.json_status else config.DEFAULT_STATUS_FILE
