"""The docs cannot drift from the code: the key table, and every metric, line-protocol field and
config key the docs name."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import yaml

from wgtrack import config
from wgtrack.checks import CheckResult
from wgtrack.config import all_keys
from wgtrack.lineproto import render_lines
from wgtrack.link import Status
from wgtrack.promtext import LabelCache, render_chunks
from wgtrack.quality import Quality
from wgtrack.snapshot import InterfaceView, PeerView, Snapshot

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"


def test_every_key_is_documented() -> None:
    text = DOC.read_text()
    missing = [key.name for key in all_keys() if f"| `{key.name}` |" not in text]
    assert missing == []


def test_generated_sections_are_up_to_date() -> None:
    from wgtrack.docgen import DOCS, render, sections

    for (name, marker), body in sections().items():
        text = (DOCS / name).read_text()
        assert render(text, marker, body) == text, f"run `python -m wgtrack.docgen` to refresh docs/{name}"


# ---- what the docs name must exist: metrics, line-protocol fields, config keys ----

REPO = DOC.parent.parent
NOW_NS = 1_800_000_000 * 10**9


def _documents() -> dict[str, str]:
    paths = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "contrib").rglob("*.yml")),
             *sorted((REPO / "contrib").rglob("*.json"))]
    return {str(p.relative_to(REPO)): p.read_text() for p in paths}


def _rich_snapshot() -> Snapshot:
    """A snapshot with every optional part present: probes, silence, names, labels."""
    def peer(key: str, status: Status, **extra: object) -> PeerView:
        values: dict[str, object] = dict(
            interface="wg0", public_key=key, friendly_name="peer-a", endpoint="198.51.100.11:51820",
            allowed_ips=("192.0.2.11/32",), latest_handshake=1_800_000_000 - 20, handshake_age_s=20,
            rx_bytes=100, tx_bytes=200, keepalive_s=25, status=status, since=NOW_NS / 1e9 - 5.0, rtt_ms=1.5, loss=0.0,
            reresolves=1, endpoint_changes=1, friendly_labels=(("site", "lab"),), next_reresolve_s=10.0,
            probe_silent=True, interface_key="I" * 43 + "=", endpoint_host="a.lab.test", diagnosis="tunnel_only",
            checks=(CheckResult("tcp://192.0.2.11:22", True, 1.5),
                    CheckResult("http://192.0.2.11:80/#204", False, None, "HTTP 500, wanted 204")))
        values.update(extra)
        return PeerView(**values)  # type: ignore[arg-type]

    measured = Quality()
    measured.record(NOW_NS / 1e9 - 2, 3, (1.5, 2.5))
    peers = (peer("A" * 43 + "=", Status.DEGRADED, quality=measured.summary(NOW_NS / 1e9), degraded="mtu",
                  path_mtu=1136, mtu_note=None),
             peer("B" * 43 + "=", Status.WAITING))
    return Snapshot(time_ns=NOW_NS, cycle=3, wg_ok=True, wg_error=None,
                    interfaces=(InterfaceView("wg0", "I" * 43 + "=", 51820, peers),), cycle_duration_s=0.1,
                    started_ns=NOW_NS - 10**10, loop_lag_ms=1.0, last_success_ns=NOW_NS,
                    errors=(("wg_failed", 1),), cycle_time_s=5.0, host="hub")


def test_documented_metrics_exist() -> None:
    """Every ``wgtrack_*`` / ``wireguard_*`` name in the docs, rules and dashboards is a metric
    the exporter writes, a recording rule's output, or a line-protocol measurement or field."""
    snapshot = _rich_snapshot()
    exposition = "".join(render_chunks(snapshot, LabelCache()))
    metrics = set(re.findall(r"^# TYPE (\S+) ", exposition, re.M))
    recorded = set()
    for text in _documents().values():
        recorded |= set(re.findall(r"record:\s*(\S+)", text))
    lines = list(render_lines(snapshot))
    influx = {name for text in lines for name in re.findall(r"(?:^|,| )([a-z_]+)=", text)}
    influx |= {text.split(",", 1)[0].split(" ", 1)[0] for text in lines}
    known = metrics | recorded | influx
    unknown: dict[str, set[str]] = {}
    for name, text in _documents().items():
        for found in set(re.findall(r"\b((?:wgtrack|wireguard)_[a-z_]+[a-z])\b", text)):
            family = re.sub(r"_(bucket|sum|count)$", "", found)
            if found not in known and family not in known:
                unknown.setdefault(name, set()).add(found)
    assert unknown == {}


def test_documented_line_protocol_fields_exist() -> None:
    """The field table in docs/telegraf.md matches what the Influx outputs write."""
    rendered: dict[str, set[str]] = {}
    failed = dataclasses.replace(_rich_snapshot(), wg_ok=False, wg_error="wg timed out", interfaces=())
    for text in [*render_lines(_rich_snapshot()), *render_lines(failed)]:
        measurement_and_tags, fields_part = text.split(" ", 1)  # no tag value here has a space
        measurement = measurement_and_tags.split(",", 1)[0].split(" ", 1)[0]
        rendered.setdefault(measurement, set()).update(
            re.findall(r"(?:^|,)([a-z_]+)=", fields_part))
    table = [line for line in (REPO / "docs" / "telegraf.md").read_text().splitlines()
             if line.startswith("| `wgtrack")]
    assert len(table) == 5
    for row in table:
        cells = [c.strip() for c in row.strip("|").split("|")]
        measurement = re.findall(r"`([a-z_]+)`", cells[0])[0]
        documented = set(re.findall(r"`([a-z_]+)`", re.sub(r"\([^)]*\)", "", cells[2])))
        missing = documented - rendered[measurement]
        assert missing == set(), f"{measurement}: documented, never written: {missing}"
        undocumented = rendered[measurement] - documented
        assert undocumented == set(), f"{measurement}: written, not documented: {undocumented}"


def test_documented_config_examples_parse() -> None:
    """Every ini example in the docs and the shipped config files uses keys and sections that
    exist (values with placeholders aside, the parser has the last word)."""
    blocks = []
    for name, text in _documents().items():
        blocks += [(name, block) for block in re.findall(r"```ini\n(.*?)```", text, re.S)]
    for path in ("etc/wgtrack.conf", "contrib/container/wgtrack.conf"):
        blocks.append((path, (REPO / path).read_text()))
    daemonset = (REPO / "contrib/kubernetes/wgtrack-daemonset.yaml").read_text()
    blocks.append(("contrib/kubernetes/wgtrack-daemonset.yaml",
                   next(iter(yaml.safe_load_all(daemonset)))["data"]["wgtrack.conf"]))
    assert len(blocks) >= 8
    wrong = []
    for name, block in blocks:
        try:
            config.parse(block, name)
        except config.ConfigError as exc:
            wrong += [str(p) for p in exc.problems if "unknown key" in str(p) or "unknown section" in str(p)]
    assert wrong == []
