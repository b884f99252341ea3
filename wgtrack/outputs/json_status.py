"""``[output:json]``: a JSON status file rewritten atomically each cycle, read by ``wgtrack status``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wgtrack import quality
from wgtrack.atomic import directory_problem, write_atomic
from wgtrack.dump import interface_labels
from wgtrack.errors import StartupError
from wgtrack.history.availability import Availability
from wgtrack.outputs import Output
from wgtrack.schema import OutputSpec, enabled_key, filename_key
from wgtrack.snapshot import PeerView, Snapshot
from wgtrack.workers import TURN_EVERY, Workers, loop_turns

WRITE_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class JsonSettings:
    """``[output:json]``: the status file that ``wgtrack status`` reads."""

    enabled: bool = True
    filename: Path = Path("/run/wgtrack/status.json")


DEFAULT_STATUS_FILE = JsonSettings().filename


def _peer(p: PeerView) -> dict[str, Any]:
    """One peer as the file has it: what ``wgtrack status`` shows. A value that is none (no
    handshake, no probe, nothing re-resolved) is left out, which keeps a 50,000-peer file small."""
    doc: dict[str, Any] = {
        "public_key": p.public_key,
        "friendly_name": p.friendly_name,
        "status": p.status.value,
        "since": p.since,  # epoch seconds: the entry stays the same while the peer does
        "latest_handshake": p.latest_handshake or None,
        "handshake_age_s": p.handshake_age_s,
        "endpoint": p.endpoint,
        "endpoint_host": p.endpoint_host,
        "allowed_ips": list(p.allowed_ips) or None,
        "rx_bytes": p.rx_bytes or None,
        "tx_bytes": p.tx_bytes or None,
        "keepalive_s": p.keepalive_s or None,
        "rtt_ms": p.rtt_ms,
        "loss": p.loss,
        "probe_silent": p.probe_silent or None,
        "next_reresolve_s": p.next_reresolve_s,
        "reresolves": p.reresolves or None,
        "endpoint_changes": p.endpoint_changes or None,
        "roams": p.roams or None,
        "diagnosis": p.diagnosis,
        "degraded": p.degraded,
        "path_mtu": p.path_mtu,
        "path_mtu_note": p.mtu_note,
        "checks": [{"check": c.check, "ok": c.ok, "rtt_ms": c.rtt_ms, "error": c.error} for c in p.checks] or None,
        **quality.fields(p.quality),
    }
    return {k: v for k, v in doc.items() if v is not None}


def availability_doc(avail: Availability) -> dict[str, Any]:
    """A peer's availability as the file has it: ratios (0-1) over 24 h, 7 and 30 days, and
    the last 30 UTC days, oldest first (null: no time up or down that day)."""
    def r(value: float | None) -> float | None:
        return None if value is None else round(value, 5)
    return {"24h": r(avail.day), "7d": r(avail.week), "30d": r(avail.month), "days": [r(d) for d in avail.days]}


class PeerTexts:
    """Each peer's JSON text, kept while its view (and its availability figures) are the same
    objects (the tracker hands out the same view while nothing but the time changed; the
    history store's figures are new every few minutes): on a big hub most of the file is reused."""

    def __init__(self) -> None:
        self._texts: dict[tuple[str, str], tuple[PeerView, Availability | None, str]] = {}
        self._next: dict[tuple[str, str], tuple[PeerView, Availability | None, str]] = {}
        self._made = 0

    def text(self, p: PeerView, avail: Availability | None = None, turn: Callable[[], None] | None = None) -> str:
        """``turn`` is called after every TURN_EVERY texts made anew (workers.loop_turns)."""
        key = (p.interface, p.public_key)
        found = self._texts.get(key)
        if found is None or found[0] is not p or found[1] is not avail:
            doc = _peer(p)
            if avail is not None:
                doc["availability"] = availability_doc(avail)
            found = (p, avail, json.dumps(doc, separators=(",", ":")))
            self._made += 1
            if turn is not None and self._made % TURN_EVERY == 0:
                turn()
        self._next[key] = found
        return found[2]

    def done(self) -> None:
        self._texts, self._next = self._next, {}


def render_status(snap: Snapshot, texts: PeerTexts | None = None, turn: Callable[[], None] | None = None) -> str:
    """The file's content: plain data, no secrets (the snapshot has none); one line per peer."""
    texts = texts or PeerTexts()
    head = {"time": snap.time_ns / 1e9, "cycle": snap.cycle, "wg_ok": snap.wg_ok, "wg_error": snap.wg_error,
            "cycle_time_s": snap.cycle_time_s, "stopped": snap.stopped}
    parts = [json.dumps(head, separators=(",", ":"))[:-1], ',"interfaces":[']
    for n, iface in enumerate(snap.interfaces):
        about = {"name": iface.name, **dict(interface_labels(iface.name)[:-1]), "public_key": iface.public_key,
                 "listen_port": iface.listen_port}  # name: <netns>/<ifname> for another namespace, with netns
        parts.append(("," if n else "") + json.dumps(about, separators=(",", ":"))[:-1] + ',"peers":[\n')
        figures = snap.availability or {}
        parts.append(",\n".join(texts.text(p, figures.get((p.interface, p.public_key)), turn) for p in iface.peers))
        parts.append("]}")
    parts.append("]}\n")
    texts.done()
    return "".join(parts)


def status_document(snap: Snapshot) -> dict[str, Any]:
    """The file's content as data (tests, and readers in-process)."""
    loaded: dict[str, Any] = json.loads(render_status(snap))
    return loaded


class JsonStatus(Output):
    """Atomic JSON status file; its directory is created at start if only it is missing."""

    name = "output:json"

    def __init__(self, section: str, settings: JsonSettings) -> None:
        self.settings = settings
        self._worker = Workers("output-json")
        self._texts = PeerTexts()

    def check(self) -> list[str]:
        # /run/wgtrack may not exist yet: it is created at start (systemd's RuntimeDirectory does too).
        where = f"[output:json] filename = {str(self.settings.filename)!r}"
        problem = directory_problem(self.settings.filename, where, creatable=True)
        return [problem] if problem else []

    async def start(self) -> None:
        problems = self.check()
        if problems:
            raise StartupError("; ".join(problems))
        try:
            await self._worker.run(self.settings.filename.parent.mkdir, 0o755, False, True, timeout_s=WRITE_TIMEOUT_S)
        except OSError as exc:
            raise StartupError(f"[output:json] cannot create {self.settings.filename.parent}: {exc.strerror}") from None

    async def publish(self, snapshot: Snapshot) -> None:
        turn = loop_turns(asyncio.get_running_loop())  # the render gives way to the loop
        await self._worker.run(self._write, snapshot, turn, timeout_s=WRITE_TIMEOUT_S, refuse_when_busy=True)

    def _write(self, snapshot: Snapshot, turn: Callable[[], None]) -> None:
        write_atomic(self.settings.filename, render_status(snapshot, self._texts, turn).encode(), 0o644,
                     durable=False)  # rewritten every cycle (see write_atomic)

    async def close(self) -> None:
        return None


def read_status(path: Path) -> dict[str, Any]:
    """For ``wgtrack status``: the last status document (raises OSError / ValueError)."""
    loaded = json.loads(path.read_text())
    if not isinstance(loaded, dict):
        raise ValueError("not a JSON object")
    return loaded


SCOPE = "output:json"
SPEC = OutputSpec(SCOPE, JsonSettings, (enabled_key(SCOPE), filename_key(SCOPE)), JsonStatus)
