"""``[output:json]``: a JSON status file rewritten atomically each cycle, read by ``wgtrack status``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from wgtrack.atomic import directory_problem, write_atomic
from wgtrack.config import JsonSettings
from wgtrack.errors import StartupError
from wgtrack.snapshot import Snapshot
from wgtrack.workers import Workers

WRITE_TIMEOUT_S = 30.0


def status_document(snap: Snapshot) -> dict[str, Any]:
    """The file's content: plain data, no secrets (the snapshot has none)."""
    at = snap.time_ns / 1e9
    return {
        "time": snap.time_ns / 1e9,
        "cycle": snap.cycle,
        "wg_ok": snap.wg_ok,
        "wg_error": snap.wg_error,
        "cycle_time_s": snap.cycle_time_s,
        "stopped": snap.stopped,
        "interfaces": [
            {
                "name": iface.name,
                "public_key": iface.public_key,
                "listen_port": iface.listen_port,
                "peers": [
                    {
                        "public_key": p.public_key,
                        "friendly_name": p.friendly_name,
                        "status": p.status.value,
                        "is_up": p.is_up,
                        "since_s": round(p.since_s(at), 1),
                        "latest_handshake": p.latest_handshake,
                        "handshake_age_s": p.handshake_age_s,
                        "endpoint": p.endpoint,
                        "endpoint_host": p.endpoint_host,
                        "allowed_ips": list(p.allowed_ips),
                        "rx_bytes": p.rx_bytes,
                        "tx_bytes": p.tx_bytes,
                        "keepalive_s": p.keepalive_s,
                        "rtt_ms": p.rtt_ms,
                        "loss": p.loss,
                        "probe_silent": p.probe_silent,
                        "next_reresolve_s": p.next_reresolve_s,
                        "reresolves": p.reresolves,
                        "endpoint_changes": p.endpoint_changes,
                        "roams": p.roams,
                        "diagnosis": p.diagnosis,
                        "checks": [{"check": c.check, "ok": c.ok, "rtt_ms": c.rtt_ms, "error": c.error}
                                   for c in p.checks],
                    }
                    for p in iface.peers
                ],
            }
            for iface in snap.interfaces
        ],
    }


class JsonStatus:
    """Atomic JSON status file; its directory is created at start if only it is missing."""

    name = "output:json"

    def __init__(self, section: str, settings: JsonSettings) -> None:
        self.settings = settings
        self._worker = Workers("output-json")

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
        await self._worker.run(self._write, snapshot, timeout_s=WRITE_TIMEOUT_S, refuse_when_busy=True)

    def _write(self, snapshot: Snapshot) -> None:
        data = json.dumps(status_document(snapshot), indent=1).encode() + b"\n"
        write_atomic(self.settings.filename, data, 0o644)

    async def close(self) -> None:
        return None


def read_status(path: Path) -> dict[str, Any]:
    """For ``wgtrack status``: the last status document (raises OSError / ValueError)."""
    loaded = json.loads(path.read_text())
    if not isinstance(loaded, dict):
        raise ValueError("not a JSON object")
    return loaded
