"""Generates the parts of ``docs/`` that must match the code: the state diagram drawn from
``link.TRANSITIONS`` and the worked re-resolution schedule, computed by running the machine.

``python -m wgtrack.docgen`` rewrites them in place; a test fails when they are out of date.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path

from wgtrack import link
from wgtrack.link import LinkSettings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _node(status: link.Status | None) -> str:
    return "new" if status is None else status.name.lower()


def edges() -> dict[tuple[link.Status | None, link.Status], list[link.Verdict]]:
    """Every move between two different statuses the table allows, with the verdicts that make it."""
    found: dict[tuple[link.Status | None, link.Status], list[link.Verdict]] = {}
    for (old, verdict), new in link.TRANSITIONS.items():
        if old is not new:
            found.setdefault((old, new), []).append(verdict)
    return found


def mermaid() -> str:
    """The state diagram: one edge per move the table allows, labelled with its verdicts."""
    lines = ["```mermaid", "stateDiagram-v2"]
    for status in link.Status:
        lines.append(f'    {_node(status)}: {status.value} (is_up={int(status.is_up)})')
    lines.append("    [*] --> new")
    for (old, new), verdicts in edges().items():
        lines.append(f"    {_node(old)} --> {_node(new)}: {', '.join(v.value for v in verdicts)}")
    lines.append("```")
    return "\n".join(lines)


def transition_table() -> str:
    """``TRANSITIONS`` as a matrix: a row per status, a column per verdict, the status that
    follows in each cell (= where it stays, blank where the verdict cannot come)."""
    verdicts = list(link.Verdict)
    rows = ["| status \\ verdict | " + " | ".join(v.value for v in verdicts) + " |",
            "|---|" + "---|" * len(verdicts)]
    for old in (None, *link.Status):
        cells = []
        for verdict in verdicts:
            new = link.TRANSITIONS.get((old, verdict))
            cells.append("" if new is None else "=" if new is old else new.value)
        rows.append(f"| {old.value if old else '(new peer)'} | " + " | ".join(cells) + " |")
    rows.append("")
    rows.extend(f"- **{v.value}**: {doc}" for v, doc in link.VERDICT_MEANING.items())
    return "\n".join(rows)


def schedule_trace(settings: LinkSettings, cycles: int) -> list[tuple[int, str, bool]]:
    """(quiet cycle, status, re-resolved?) for a hostname peer that is dead from cycle 1 on.

    The link was last alive at cycle 0; every probe fails, every resolve returns the same
    address. Jitter is left out (rand = 0). Probes come with the cycles here (the fast lane
    off); with it on the re-resolutions are the same, a status may show one cycle later.
    """
    settings = dataclasses.replace(settings, down_probe_interval_s=0)
    state = link.LinkState()
    sample = link.Sample(latest_handshake=0, rx_bytes=0, keepalive_s=0, wall=0.0, probe_target="192.0.2.2",
                         endpoint="198.51.100.9:51820", hostname="peer.example.test", port=51820)
    state, _ = link.step(state, link.ProbeResult(ok=True), 0.0, settings)
    trace = []
    for cycle in range(1, cycles + 1):
        pending: list[link.Action]
        state, pending = link.step(state, sample, float(cycle), settings)
        resolved = False
        for _ in range(20):
            if not pending:
                break
            action, pending = pending[0], pending[1:]
            if isinstance(action, link.Probe):
                state, more = link.step(state, link.ProbeResult(ok=False), float(cycle), settings)
                pending += more
            elif isinstance(action, link.Resolve):
                resolved = True
                state, more = link.step(state, link.ResolveResult(("198.51.100.9",)), float(cycle), settings)
                pending += more
        trace.append((cycle, state.status.value if state.status else "-", resolved))
    return trace


def schedule_table(settings: LinkSettings, cycles: int) -> str:
    rows = ["| cycle since last sign of life | status | re-resolve |", "|---|---|---|"]
    for cycle, status, resolved in schedule_trace(settings, cycles):
        rows.append(f"| {cycle} | {status} | {'yes' if resolved else ''} |")
    return "\n".join(rows)


def _hub(peers: int, exported: bool, groups: int) -> object:
    """A snapshot of one interface with ``peers`` probed, up peers in ``groups`` friendly_json
    groups (0: none), every per-peer value present."""
    from wgtrack.snapshot import InterfaceView, PeerView, Snapshot, tally

    views = tuple(PeerView(
        interface="wg0", public_key=f"{i:043d}=", friendly_name=f"peer-{i}", endpoint="198.51.100.11:51820",
        allowed_ips=(f"fd00:1::{i:x}/128",), latest_handshake=1_800_000_000, handshake_age_s=20, rx_bytes=10**6,
        tx_bytes=10**6, keepalive_s=25, status=link.Status.UP, since=1_800_000_000.0, rtt_ms=1.0, loss=0.0,
        friendly_labels=((("site", f"site-{i % groups}"),) if groups else ()), exported=exported)
        for i in range(peers))
    iface = InterfaceView("wg0", "I" * 43 + "=", 51820, views, tally(views, lambda labels: (0, 0)))
    return Snapshot(time_ns=1_800_000_000 * 10**9, cycle=1, wg_ok=True, wg_error=None, interfaces=(iface,),
                    cycle_duration_s=0.1, started_ns=0, host="hub")


def series_table() -> str:
    """Series (Prometheus samples) and Influx points per cycle at 10,000 and 50,000 peers, for
    each choice, counted by rendering hubs of 100 and 200 peers (the cost is linear in peers)."""
    from wgtrack.lineproto import render_lines
    from wgtrack.promtext import LabelCache, render_chunks
    from wgtrack.snapshot import Snapshot

    def count(peers: int, exported: bool, groups: int) -> tuple[int, int]:
        snap = _hub(peers, exported, groups)
        assert isinstance(snap, Snapshot)
        text = "".join(render_chunks(snap, LabelCache()))
        samples = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        return samples, sum(1 for line in render_lines(snap) if line)

    rows = ["| per_peer_metrics | friendly_json groups | series at 10,000 peers | at 50,000 | Influx points per "
            "cycle at 10,000 | at 50,000 |", "|---|---|---|---|---|---|"]
    for exported, groups in ((True, 0), (True, 50), (False, 0), (False, 50)):
        small, big = count(100, exported, groups), count(200, exported, groups)
        at = [tuple(s + (b - s) * (n - 100) // 100 for s, b in zip(small, big, strict=True)) for n in (10_000, 50_000)]
        rows.append(f"| {'yes' if exported else 'no'} | {groups or 'none'} | {at[0][0]:,} | {at[1][0]:,} | "
                    f"{at[0][1]:,} | {at[1][1]:,} |")
    return "\n".join(rows)


def sections() -> dict[tuple[str, str], str]:
    """(file, marker) -> generated text."""
    return {
        ("link-state.md", "diagram"): mermaid(),
        ("link-state.md", "transitions"): transition_table(),
        ("reresolution.md", "schedule"): schedule_table(LinkSettings(), 60),
        ("prometheus.md", "series"): series_table(),
    }


def render(text: str, marker: str, body: str) -> str:
    pattern = re.compile(rf"(<!-- generated:{marker} -->\n).*?(<!-- end:{marker} -->)", re.S)
    if not pattern.search(text):
        raise ValueError(f"marker {marker} missing")
    return pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)


def main() -> int:
    for (name, marker), body in sections().items():
        path = DOCS / name
        path.write_text(render(path.read_text(), marker, body))
    return 0


if __name__ == "__main__":
    sys.exit(main())
