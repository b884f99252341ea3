"""``wgtrack status``: a table of interfaces and peers from the daemon's JSON status file."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from wgtrack import config, quality
from wgtrack.outputs.json_status import DEFAULT_STATUS_FILE, JsonSettings, read_status
from wgtrack.statuspage import endpoint_text, human_age, human_rate, state_class


def _age(seconds: float | None) -> str:
    return human_age(seconds, "-")


STALE_CYCLES = 3


def _since_s(p: dict[str, Any], doc: dict[str, Any]) -> float | None:
    """Seconds in its status as of the file's time (the file has the epoch time of the change)."""
    since = p.get("since")
    return max(0.0, float(doc["time"]) - float(since)) if isinstance(since, int | float) else None


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


COLOURS = {"up": "\x1b[32m", "degraded": "\x1b[33m", "down": "\x1b[1;31m", "idle": "\x1b[90m"}
RESET = "\x1b[0m"


def _rates(doc: dict[str, Any], previous: dict[str, Any] | None) -> dict[tuple[str, str], tuple[str, str]]:
    """rx and tx rates per peer between two documents (``--watch``)."""
    if previous is None or float(previous["time"]) >= float(doc["time"]):
        return {}
    seconds = float(doc["time"]) - float(previous["time"])
    before = {(i["name"], p["public_key"]): (p.get("rx_bytes") or 0, p.get("tx_bytes") or 0)
              for i in previous["interfaces"] for p in i["peers"]}
    result = {}
    for iface in doc["interfaces"]:
        for p in iface["peers"]:
            old = before.get((iface["name"], p["public_key"]))
            if old is not None:
                result[(iface["name"], p["public_key"])] = (
                    human_rate(max(0, (p.get("rx_bytes") or 0) - old[0]) / seconds),
                    human_rate(max(0, (p.get("tx_bytes") or 0) - old[1]) / seconds))
    return result


def _month(avail: object) -> str:
    """The 30-day availability from the history store's figures, or -."""
    month = avail.get("30d") if isinstance(avail, dict) else None
    return f"{month * 100:.2f}%" if isinstance(month, int | float) else "-"


def table(doc: dict[str, Any], now: float, previous: dict[str, Any] | None = None, colour: bool = False) -> str:
    """Human-readable rendering of one status document; with ``previous``, rx and tx rates too."""
    rated = previous is not None
    per_peer = _rates(doc, previous)
    columns = ["INTERFACE", "PEER", "STATE", "SINCE", "HANDSHAKE", "RTT", "LOSS 5M", "RTT P50/P90/P99", "JITTER",
               "PATH MTU", *(["RX", "TX"] if rated else []), "ENDPOINT", "NEXT RE-RESOLVE", "30 DAYS"]
    rows = [columns]
    for iface in doc.get("interfaces", []):
        for p in iface.get("peers", []):
            name = p.get("friendly_name") or p["public_key"][:8] + "…"
            rtt = "-" if p.get("rtt_ms") is None else f"{p['rtt_ms']:.1f}ms"
            if p.get("probe_silent"):
                rtt = "silent"  # the probe target does not answer: judged by handshakes
            rate = list(per_peer.get((iface["name"], p["public_key"]), ("-", "-"))) if rated else []
            state = p["status"] + (f" ({p['degraded']})" if isinstance(p.get("degraded"), str) else "")
            rows.append([iface["name"], name, state, _age(_since_s(p, doc)), _age(p.get("handshake_age_s")),
                         rtt, *quality.texts(p), str(p.get("path_mtu", "-")), *rate,
                         endpoint_text(p.get("endpoint"), p.get("endpoint_host")), _age(p.get("next_reresolve_s")),
                         _month(p.get("availability"))])
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    lines = []
    for index, row in enumerate(rows):
        cells = [cell.ljust(w) for cell, w in zip(row, widths, strict=True)]
        if colour and index > 0:
            cells[2] = COLOURS[state_class(row[2])] + cells[2] + RESET
        lines.append("  ".join(cells).rstrip())
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
    parser.add_argument("--watch", nargs="?", type=float, const=2.0, default=None, metavar="SECONDS",
                        help="redraw every SECONDS (default 2) with rx and tx rates, until Ctrl-C")
    parser.add_argument("--colour", "--color", choices=("auto", "always", "never"), default="auto",
                        help="colour the states (auto: when the output is a terminal)")
    args = parser.parse_args(argv)
    path = Path(args.file) if args.file else _configured_path(args.config)
    colour = args.colour == "always" or (args.colour == "auto" and sys.stdout.isatty())
    if args.watch is not None:
        if not 0.2 <= args.watch <= 3600:
            parser.error("--watch takes 0.2 to 3600 seconds")
        return watch(path, args.watch, colour)
    return show(path, as_json=args.json, colour=colour)


def _load(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """The document, or why it cannot be shown."""
    try:
        doc = read_status(path)
    except FileNotFoundError:
        return None, f"no status file at {path}: is wgtrack running with [output:json]?"
    except (OSError, ValueError) as exc:
        return None, f"cannot read {path}: {exc}"
    problem = shape_problem(doc)
    if problem is not None:
        return None, f"{path} is not a wgtrack status file ({problem})"
    return doc, None


def watch(path: Path, interval: float, colour: bool) -> int:
    """Redraw the table every ``interval`` seconds until interrupted; problems are shown in
    place of the table and the watch goes on (a daemon restarting is worth watching)."""
    previous: dict[str, Any] | None = None
    latest: dict[str, Any] | None = None
    clear = "\x1b[H\x1b[2J" if sys.stdout.isatty() else ""
    try:
        while True:
            doc, problem = _load(path)
            now = time.time()
            lines = [f"wgtrack status --watch {interval:g}   {time.strftime('%H:%M:%S', time.localtime(now))}"]
            if doc is None:
                lines.append(f"wgtrack status: {problem}")
            else:
                if latest is None or float(doc["time"]) > float(latest["time"]):
                    previous, latest = latest, doc  # rates span the last two cycles written
                lines.append(table(doc, now, previous or doc, colour))
                stale = freshness(doc, now)
                if stale is not None:
                    lines.append(f"wgtrack status: {stale}")
            sys.stdout.write(clear + "\n".join(lines) + "\n\n")
            sys.stdout.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0


def show(path: Path, as_json: bool, colour: bool) -> int:
    doc, problem = _load(path)
    if doc is None:
        print(f"wgtrack status: {problem}", file=sys.stderr)
        return 1
    print(json.dumps(doc, indent=1) if as_json else table(doc, time.time(), colour=colour))
    stale = freshness(doc, time.time())
    if stale is not None:
        print(f"wgtrack status: {stale}", file=sys.stderr)
        return 3
    return 0


def _configured_path(config_path: str) -> Path:
    try:
        cfg = config.load(config_path)
    except config.ConfigError:
        return DEFAULT_STATUS_FILE
    settings = cfg.output("output:json", JsonSettings)
    return settings.filename if settings else DEFAULT_STATUS_FILE
