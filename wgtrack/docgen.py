"""Generates the parts of ``docs/`` that must match the code: the state diagram drawn from
``link.TRANSITIONS`` and the worked re-resolution schedule, computed by running the machine.

``python -m wgtrack.docgen`` rewrites them in place; a test fails when they are out of date.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from wgtrack import link
from wgtrack.config import TrackSettings

DOCS = Path(__file__).resolve().parent.parent / "docs"


def _node(status: link.Status | None) -> str:
    return "new" if status is None else status.name.lower()


def mermaid() -> str:
    """The state diagram, one edge per distinct (from, to)."""
    lines = ["```mermaid", "stateDiagram-v2"]
    for status in link.Status:
        lines.append(f'    {_node(status)}: {status.value} (is_up={int(status.is_up)})')
    lines.append("    [*] --> new")
    seen: set[tuple[str, str]] = set()
    for old, new, why in link.TRANSITIONS:
        edge = (_node(old), _node(new))
        if edge not in seen:
            seen.add(edge)
            lines.append(f"    {edge[0]} --> {edge[1]}: {why}")
    lines.append("```")
    return "\n".join(lines)


def transition_table() -> str:
    rows = ["| from | to | when |", "|---|---|---|"]
    for old, new, why in link.TRANSITIONS:
        rows.append(f"| {old.value if old else '(new peer)'} | {new.value} | {why} |")
    return "\n".join(rows)


def schedule_trace(settings: TrackSettings, cycles: int) -> list[tuple[int, str, bool]]:
    """(quiet cycle, status, re-resolved?) for a hostname peer that is dead from cycle 1 on.

    The link was last alive at cycle 0; every probe fails, every resolve returns the same
    address. Jitter is left out (rand = 0).
    """
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


def schedule_table(settings: TrackSettings, cycles: int) -> str:
    rows = ["| cycle since last sign of life | status | re-resolve |", "|---|---|---|"]
    for cycle, status, resolved in schedule_trace(settings, cycles):
        rows.append(f"| {cycle} | {status} | {'yes' if resolved else ''} |")
    return "\n".join(rows)


def sections() -> dict[tuple[str, str], str]:
    """(file, marker) -> generated text."""
    return {
        ("link-state.md", "diagram"): mermaid(),
        ("link-state.md", "transitions"): transition_table(),
        ("reresolution.md", "schedule"): schedule_table(TrackSettings(), 60),
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
