"""A small line-protocol reader for tests (independent of the renderer under test)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_TOKEN = re.compile(r'(?:\\.|"(?:\\.|[^"\\])*"|[^ ])+')


@dataclass
class Point:
    measurement: str
    tags: dict[str, str]
    fields: dict[str, object]
    time_ns: int


def _split(text: str, sep: str) -> list[str]:
    parts, cur, i, quoted = [], "", 0, False
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            cur += text[i:i + 2]
            i += 2
            continue
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    parts.append(cur)
    return parts


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text)


def _value(text: str) -> object:
    if text.startswith('"'):
        return _unescape(text[1:-1])
    if text.endswith("i"):
        return int(text[:-1])
    if text in ("true", "false"):
        return text == "true"
    return float(text)


def parse(text: str) -> list[Point]:
    points = []
    for raw in text.splitlines():
        if not raw.strip():
            continue
        series, fields, ts = _TOKEN.findall(raw)
        head, *tag_parts = _split(series, ",")
        tags: dict[str, str] = {}
        for t in tag_parts:
            k, v = _split(t, "=")
            tags[_unescape(k)] = _unescape(v)
        field_map = {}
        for f in _split(fields, ","):
            key, value = _split(f, "=", )[0], "=".join(_split(f, "=")[1:])
            field_map[_unescape(key)] = _value(value)
        points.append(Point(_unescape(head), tags, field_map, int(ts)))
    return points


def peers(text: str) -> dict[str, Point]:
    """Peer points by public key."""
    return {p.tags["peer"]: p for p in parse(text) if p.measurement == "wgtrack"}


def tracker(text: str) -> Point:
    return next(p for p in parse(text) if p.measurement == "wgtrack_tracker")
