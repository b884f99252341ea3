"""Typed configuration: ``load(path) -> Config``, validated once, every problem reported together.

Layering, lowest first: built-in default, ``[DEFAULT]``, ``[general]``, ``[interface:<if>]``,
``[peer:<public key>]``. Keys and defaults of wgtrack 0.2.0 keep their meaning. This module
never logs and never exits; the CLI decides what to do with a ``ConfigError``.
"""

from __future__ import annotations

import configparser
import dataclasses
import ipaddress
import logging
import re
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wgtrack.checks import Check, parse_checks
from wgtrack.dump import is_public_key, valid_ifname
from wgtrack.errors import WgtrackError
from wgtrack.link.settings import LinkSettings
from wgtrack.model import is_ip_literal, split_endpoint

DEFAULT_PATH = Path("/etc/wgtrack.conf")


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config file, located as precisely as we can."""

    file: str
    section: str | None
    key: str | None
    value: str | None
    why: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        if self.section is not None:
            where += f": [{self.section}]"
        if self.key is not None:
            where += f" {self.key}"
            if self.value is not None:
                where += f" = {self.value!r}"
        return f"{where}: {self.why}"


class ConfigError(WgtrackError):
    """A config file could not be used; ``problems`` lists every reason found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


@dataclass(frozen=True, slots=True)
class TrackSettings(LinkSettings):
    """Per-peer tracking settings (may differ by interface and by peer): the link machine's own
    (``LinkSettings``: probe counts, handshake timeout, the re-resolution schedule) and what only
    the daemon reads (how to probe, what to check, what to export)."""

    ping_count: int = 1  # echo requests per probe
    ping_timeout_s: float = 1.0  # wait for each reply
    ping_target: str | None = None  # None = the /32 or /128 allowed IP, if there is one
    reresolve: bool = True  # re-resolve a hostname endpoint while the link is down
    endpoint: str | None = None  # "host:port" when the wg-quick config does not say it
    checks: tuple[Check, ...] = ()  # service checks through the tunnel, evidence like probes
    check_timeout_s: float = 2.0
    icmp: bool = True  # no: the checks alone are the probe
    per_peer_metrics: bool = True  # series of its own; no: only in the interface's and group's totals


@dataclass(frozen=True, slots=True)
class InfluxFileSettings:
    """``[output:influx]``: the line-protocol file Telegraf's ``inputs.file`` reads."""

    enabled: bool = True
    filename: Path = Path("/var/cache/wg-track_influx.out")
    mode: int = 0o644


@dataclass(frozen=True, slots=True)
class PrometheusSettings:
    """``[output:prometheus]``: the scrape endpoint (prometheus_wireguard_exporter's port)."""

    enabled: bool = True
    listen: str = ":9586"
    path: str = "/metrics"
    web_config: Path | None = None  # Prometheus web config file: TLS and basic auth


@dataclass(frozen=True, slots=True)
class JsonSettings:
    """``[output:json]``: the status file that ``wgtrack status`` reads."""

    enabled: bool = True
    filename: Path = Path("/run/wgtrack/status.json")


DEFAULT_STATUS_FILE = JsonSettings().filename


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """``[output:webhook]`` / ``[output:webhook:<name>]``: events POSTed to a URL."""

    url: str = ""
    events: frozenset[str] = frozenset()  # empty: every kind
    format: str = "json"  # json | slack | discord | teams
    timeout_s: float = 5.0
    retries: int = 0  # 0: retry until delivered (or pushed out of the queue)
    backoff_s: float = 1.0  # first retry delay; doubles, capped at 60 s
    queue_size: int = 1000
    secret: str | None = None  # HMAC-SHA256 key for X-Wgtrack-Signature
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AlertmanagerSettings:
    """``[output:alertmanager]``: alerts for down peers via Alertmanager's v2 API."""

    url: str = ""
    resend_interval_s: float = 60.0
    timeout_s: float = 5.0
    severity: str = "critical"
    instance: str | None = None  # default: the host name

    @property
    def urls(self) -> tuple[str, ...]:
        """Every Alertmanager of the cluster: each gets every alert (they deduplicate)."""
        return tuple(u.strip() for u in self.url.split(",") if u.strip())


@dataclass(frozen=True, slots=True)
class StdoutSettings:
    """``[output:stdout]`` (or ``--stdout``): line protocol on stdout for Telegraf's inputs.execd."""

    enabled: bool = True


@dataclass(frozen=True, slots=True)
class InfluxDBSettings:
    """``[output:influxdb]``: direct writes to ``/api/v2/write``."""

    url: str = ""
    token: str | None = None
    org: str | None = None
    bucket: str = ""  # InfluxDB 1.8+: "database/retention_policy"
    precision: str = "ns"
    username: str | None = None  # 1.8+: with password instead of a token
    password: str | None = None
    timeout_s: float = 5.0
    buffer_points: int = 100_000


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration."""

    path: str = str(DEFAULT_PATH)
    cycle_time_s: float = 30.0
    loglevel: int = logging.INFO
    wg_command: str = "wg"
    wg_config_dir: Path = Path("/etc/wireguard")
    wg_timeout_s: float = 5.0
    dns_timeout_s: float = 2.0
    hosts_file: Path = Path("/etc/hosts")
    host: str | None = None  # the host's name in the fleet's series; default: the system's host name
    probe_rate: float = 1000.0  # echo requests per second, the whole daemon
    nflog_group: int | None = None  # [trigger:nflog]: read an interface at once on a handshake
    nflog_min_interval_s: float = 0.5
    track: TrackSettings = field(default_factory=TrackSettings)
    interface_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    peer_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Every enabled output: (section name, its settings), in the registry's order. [output:influx]
    # is on without a section, as in 0.2.0.
    outputs: tuple[tuple[str, Any], ...] = (("output:influx", InfluxFileSettings()),)

    def output(self, section: str) -> Any:
        """The settings of one enabled output section, or None."""
        return next((settings for name, settings in self.outputs if name == section), None)

    def with_output(self, section: str, settings: object) -> Config:
        """This config with ``section`` added or replaced (``--stdout`` on every reload)."""
        kept = tuple((n, s) for n, s in self.outputs if n != section)
        return dataclasses.replace(self, outputs=_ordered((*kept, (section, settings))))

    @property
    def json_status(self) -> JsonSettings | None:
        return self.output("output:json")  # type: ignore[no-any-return]

    def settings_for(self, interface: str, public_key: str) -> TrackSettings:
        """The effective tracking settings for one peer."""
        merged = {**self.interface_overrides.get(interface, {}), **self.peer_overrides.get(public_key, {})}
        return dataclasses.replace(self.track, **merged) if merged else self.track


# ---- value parsers: each returns the typed value or raises ValueError(why) ----


@dataclass(frozen=True, slots=True)
class OutputSection:
    """One kind of ``[output:...]`` section. This registry drives parsing, ``describe`` and
    ``outputs.plan``: adding an output is one entry here and one factory in ``outputs``."""

    scope: str
    settings: type[Any]
    required: tuple[str, ...] = ()
    repeats: bool = False  # [output:webhook:<name>] as well as [output:webhook]


OUTPUT_SECTIONS: tuple[OutputSection, ...] = (
    OutputSection("output:influx", InfluxFileSettings),
    OutputSection("output:json", JsonSettings),
    OutputSection("output:webhook", WebhookSettings, ("url",), repeats=True),
    OutputSection("output:influxdb", InfluxDBSettings, ("url", "bucket")),
    OutputSection("output:alertmanager", AlertmanagerSettings, ("url",)),
    OutputSection("output:stdout", StdoutSettings),
    OutputSection("output:prometheus", PrometheusSettings),
)
_OUTPUT_BY_SCOPE = {o.scope: o for o in OUTPUT_SECTIONS}


def output_scope(section: str) -> OutputSection | None:
    """The registry entry for a section name (``output:webhook:ops`` -> webhook)."""
    entry = _OUTPUT_BY_SCOPE.get(section)
    if entry is None and section.count(":") == 2:
        entry = _OUTPUT_BY_SCOPE.get(section.rpartition(":")[0])
        if entry is not None and not entry.repeats:
            return None
    return entry


def _ordered(outputs: tuple[tuple[str, Any], ...]) -> tuple[tuple[str, Any], ...]:
    rank = {o.scope: i for i, o in enumerate(OUTPUT_SECTIONS)}
    scope = {name: output_scope(name) for name, _ in outputs}
    return tuple(sorted(outputs, key=lambda item: (rank[scope[item[0]].scope], item[0])))  # type: ignore[union-attr]


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


def _seconds(low: float, high: float, why: str = "") -> Callable[[str], float]:
    """A number of seconds within [low, high]; the error says why the bounds are what they are."""
    def parse(text: str) -> float:
        value = _positive_float(text)
        if not low <= value <= high:
            raise ValueError(f"must be from {low:g} to {high:g} s{': ' + why if why else ''}")
        return value

    return parse


def _int_between(low: int, high: int, why: str = "") -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _int_at_least(low)(text)
        if value > high:
            raise ValueError(f"must be from {low} to {high}{': ' + why if why else ''}")
        return value

    return parse


def _int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError("not a whole number") from None
        if value < minimum:
            raise ValueError(f"must be {minimum} or more")
        return value

    return parse


def parse_loglevel(text: str) -> int:
    if text.lstrip("-").isdigit():
        value = int(text)
        if not 0 <= value <= 50:
            raise ValueError("numeric log level must be 0-50")
        return value
    names = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50}
    try:
        return names[text.lower()]
    except KeyError:
        raise ValueError("not a log level (debug, info, warning, error, critical or 0-50)") from None


def _seconds_or_off(low: float, high: float) -> Callable[[str], float]:
    """0 (off), or a number of seconds within [low, high]."""
    within = _seconds(low, high)

    def parse(text: str) -> float:
        return 0.0 if text.strip() in ("0", "0.0") else within(text)
    return parse


def _bool(text: str) -> bool:
    states = configparser.ConfigParser.BOOLEAN_STATES
    try:
        return states[text.lower()]
    except KeyError:
        raise ValueError("not a boolean (yes/no, true/false, on/off, 1/0)") from None


def _ip_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError("not an IPv4 or IPv6 address") from None


def _nonempty(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def _path(text: str) -> Path:
    path = Path(_nonempty(text))
    if not path.is_absolute():
        raise ValueError("must be an absolute path (the service's working directory is /, and "
                         "ProtectSystem=strict makes relative places unwritable)")
    return path


def _file_path(text: str) -> Path:
    path = _path(text)
    if path.is_dir():
        raise ValueError("is a directory; name the file to write")
    return path


def _label_value(text: str) -> str:
    if not text or len(text) > 128 or any(c in text for c in '"\\') or not text.isprintable():
        raise ValueError("must be 1-128 printable characters without quotes or backslashes")
    return text


def _hostname_endpoint(text: str) -> str:
    host, _port = split_endpoint(text)
    if is_ip_literal(host):
        raise ValueError("names an address; re-resolution needs a hostname")
    return text


def split_listen(text: str) -> tuple[str | None, int]:
    """``:9586`` (every address), ``127.0.0.1:9586``, ``[::1]:9586`` -> (host or None, port)."""
    if text.startswith(":"):
        host, port = None, text[1:]
    elif text.startswith("["):
        inner, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError("IPv6 listen address must look like [::1]:9586")
        host, port = inner, rest[1:]
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ValueError("must be [host]:port, like :9586 or 127.0.0.1:9586")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("port must be 1-65535")
    if host is not None and host != "localhost" and not is_ip_literal(host):
        raise ValueError("host must be an IP address (or empty for every address)")
    return host, int(port)


def _listen(text: str) -> str:
    split_listen(text)
    return text


def _url_path(text: str) -> str:
    if not text.startswith("/") or " " in text:
        raise ValueError("must be an absolute URL path like /metrics")
    return text


def _url(text: str) -> str:
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError("a URL has no spaces or control characters (percent-encode them)")
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return text


def _url_list(text: str) -> str:
    urls = [part.strip() for part in text.split(",")]
    for url in urls:
        _url(url)
    if len(set(urls)) != len(urls):
        raise ValueError("names the same URL twice")
    return ", ".join(urls)


def header_value(text: str) -> str:
    """A header value: one line, no control characters (they would smuggle more headers)."""
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in text):
        raise ValueError("has a control character (a header value is one line)")
    return text


def _event_kinds(text: str) -> frozenset[str]:
    from wgtrack.events import KINDS

    kinds = frozenset(k.strip() for k in text.split(",") if k.strip())
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise ValueError(f"unknown event kinds {unknown} (known: {', '.join(KINDS)})")
    return kinds


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text.lower()

    return parse


def _mode(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise ValueError("not an octal file mode like 0644") from None
    if not 0 <= value <= 0o777:
        raise ValueError("file mode must be within 0000-0777")
    return value


@dataclass(frozen=True, slots=True)
class Key:
    """One config key: where it may stand, how it parses, what it means (docs come from here)."""

    name: str
    attr: str
    parse: Callable[[str], Any]
    scopes: frozenset[str]  # "general", "interface", "peer", "output:influx"
    doc: str
    secret: bool = False  # its value is never echoed in errors or --check-config


_TRACK = frozenset({"general", "interface", "peer"})
TRIGGER_NFLOG = "trigger:nflog"
KEYS: tuple[Key, ...] = (
    Key("cycle_time", "cycle_time_s", _seconds(0.1, 3600, "faster only forks wg more often; slower is no monitoring"),
        frozenset({"general"}), "seconds between cycles"),
    Key("loglevel", "loglevel", parse_loglevel, frozenset({"general"}), "log level, a name or 0.2.0's number"),
    Key("wg_command", "wg_command", _nonempty, frozenset({"general"}), "the wg binary"),
    Key("wg_config_dir", "wg_config_dir", _path, frozenset({"general"}), "where <interface>.conf files live"),
    Key("wg_timeout", "wg_timeout_s", _seconds(0.1, 300), frozenset({"general"}), "seconds a wg call may take"),
    Key("dns_timeout", "dns_timeout_s", _seconds(0.1, 60), frozenset({"general"}),
        "seconds one DNS query may take when re-resolving"),
    Key("hosts_file", "hosts_file", _path, frozenset({"general"}), "hosts file consulted before DNS"),
    Key("host", "host", _label_value, frozenset({"general"}),
        "this host's name on wgtrack_interface_info (fleet views); default: the system's host name"),
    Key("probe_rate", "probe_rate", _int_between(1, 100_000, "the sockets' buffers and the tunnels"),
        frozenset({"general"}),
        "echo requests per second at most, the whole daemon (probes queue for their turn, links up or in "
        "their first minute down first, the others at most a hundredth); bounds the probes per cycle to "
        "probe_rate × cycle_time"),
    Key("ping_interval", "ping_interval", _int_between(0, 100_000), _TRACK, "probe every N cycles; 0 = no probes"),
    Key("ping_failafternum", "ping_failafternum", _int_between(1, 1000), _TRACK, "failed probes in a row before down"),
    Key("ping_count", "ping_count", _int_between(1, 10, "a probe must end within its period"), _TRACK,
        "echo requests per probe"),
    Key("ping_timeout", "ping_timeout_s", _seconds(0.01, 60), _TRACK, "seconds to wait for each echo reply"),
    Key("ping_target", "ping_target", _ip_address, frozenset({"peer"}), "address to probe through the tunnel"),
    Key("handshake_timeout", "handshake_timeout_s", _seconds(1, 86400), _TRACK,
        "handshake age (plus keepalive and 10 s) past which a link without other evidence is stale"),
    Key("cycles_wait", "cycles_wait", _int_between(0, 1_000_000), _TRACK, "cycles in down:waiting before re-resolving"),
    Key("cycles_checking", "cycles_checking", _int_between(0, 1_000_000), _TRACK, "cycles spent in down:checking"),
    Key("cycles_checkperiod", "cycles_checkperiod", _int_between(1, 1_000_000), _TRACK,
        "re-resolve every N cycles while checking"),
    Key("cycles_slowcheckingperiod", "cycles_slowcheckingperiod", _int_between(1, 1_000_000), _TRACK,
        "back-off cap, then re-resolve every N cycles"),
    Key("token", "token", _nonempty, frozenset({"output:influxdb"}), "API token (InfluxDB 2.x/3.x)", secret=True),
    Key("org", "org", _nonempty, frozenset({"output:influxdb"}), "organisation (InfluxDB 2.x)"),
    Key("bucket", "bucket", _nonempty, frozenset({"output:influxdb"}),
        "bucket; for InfluxDB 1.8+ database/retention_policy"),
    Key("precision", "precision", _choice("ns", "us", "ms", "s"), frozenset({"output:influxdb"}),
        "timestamp precision"),
    Key("username", "username", _nonempty, frozenset({"output:influxdb"}), "InfluxDB 1.8+ user (with password)"),
    Key("password", "password", _nonempty, frozenset({"output:influxdb"}), "InfluxDB 1.8+ password", secret=True),
    Key("buffer_points", "buffer_points", _int_between(1, 10_000_000, "the buffer lives in memory"),
        frozenset({"output:influxdb"}),
        "points kept while the server is unreachable; the oldest are dropped beyond"),
    Key("url", "url", _url_list, frozenset({"output:alertmanager"}),
        "Alertmanager's base URL; several, comma-separated, for an HA cluster (each gets every alert)",
        secret=True),
    Key("url", "url", _url, frozenset({"output:webhook", "output:influxdb"}),
        "where to POST (webhook: the full URL; alertmanager: its base URL)", secret=True),
    Key("resend_interval", "resend_interval_s", _seconds(1, 86400), frozenset({"output:alertmanager"}),
        "seconds between re-sends of firing alerts"),
    Key("severity", "severity", _nonempty, frozenset({"output:alertmanager"}), "the alerts' severity label"),
    Key("instance", "instance", _nonempty, frozenset({"output:alertmanager"}),
        "the alerts' instance label (default: host name)"),
    Key("events", "events", _event_kinds, frozenset({"output:webhook"}), "event kinds to send (default: all)"),
    Key("format", "format", _choice("json", "slack", "discord", "teams"), frozenset({"output:webhook"}),
        "body format"),
    Key("timeout", "timeout_s", _seconds(0.1, 300, "a stop waits for a request in flight"),
        frozenset({"output:webhook", "output:alertmanager", "output:influxdb"}),
        "seconds one POST may take"),
    Key("retries", "retries", _int_between(0, 1_000_000), frozenset({"output:webhook"}),
        "attempts per event before it is dropped; 0 = until delivered"),
    Key("backoff", "backoff_s", _seconds(0.01, 3600), frozenset({"output:webhook"}), "first retry delay, doubling"),
    Key("queue_size", "queue_size", _int_between(1, 1_000_000, "the queue lives in memory"),
        frozenset({"output:webhook"}),
        "events kept while the receiver is unreachable; the oldest are dropped beyond"),
    Key("secret", "secret", _nonempty, frozenset({"output:webhook"}),
        "HMAC-SHA256 key: X-Wgtrack-Signature: sha256=<hex> over the body", secret=True),
    Key("reresolve", "reresolve", _bool, _TRACK, "re-resolve a hostname endpoint while the link is down"),
    Key("check", "checks", parse_checks, frozenset({"peer"}),
        "service checks through the tunnel, evidence like probes: tcp://ip:port, http(s)://ip[:port]/path[#status], "
        "dns://name@ip (several: separated by spaces or commas)"),
    Key("check_timeout", "check_timeout_s", _seconds(0.1, 30), _TRACK, "seconds one check may take in all"),
    Key("probe_interval", "probe_interval_s", _seconds_or_off(0.2, 3600), _TRACK,
        "seconds between probes of an up peer, on their own clock between cycles; 0 (default): every "
        "ping_interval cycles, as 0.2.0 did"),
    Key("down_probe_interval", "down_probe_interval_s", _seconds_or_off(0.2, 60), _TRACK,
        "a down peer is probed this often, between cycles, for its first minute down (then less often); "
        "a heal is reported at once whatever cycle_time is; 0 = only with the cycle"),
    Key("per_peer_metrics", "per_peer_metrics", _bool, _TRACK,
        "series of its own in Prometheus and the Influx outputs; no: counted only in the totals per interface and "
        "friendly_json group (big hubs: docs/prometheus.md, series cost)"),
    Key("icmp", "icmp", _bool, _TRACK, "ICMP probes; no: a peer with checks is probed by its checks alone"),
    Key("underlay_probe", "underlay_probe", _bool, _TRACK,
        "while down, ping the endpoint's own address outside the tunnel (at most once a minute) to tell "
        "tunnel_only from host_unreachable; off by default (it sends ICMP to the peer's public address)"),
    Key("endpoint", "endpoint", _hostname_endpoint, frozenset({"peer"}),
        "hostname:port to re-resolve when no wg-quick config names one (systemd-networkd ...)"),
    Key("enabled", "enabled", _bool, frozenset({"output:influx", "output:prometheus", "output:stdout", "output:json"}),
        "turn the output on or off"),
    Key("listen", "listen", _listen, frozenset({"output:prometheus"}), "address:port to serve metrics on"),
    Key("path", "path", _url_path, frozenset({"output:prometheus"}), "URL path of the metrics"),
    Key("web_config", "web_config", _path, frozenset({"output:prometheus"}),
        "Prometheus web config file (TLS, basic auth)"),
    Key("group", "nflog_group", _int_between(0, 65535), frozenset({"trigger:nflog"}),
        "the nflog group an nft rule logs WireGuard's listen ports to (udp dport <port> log group <N>)"),
    Key("min_interval", "nflog_min_interval_s", _seconds(0.05, 60, "each read forks wg"), frozenset({"trigger:nflog"}),
        "seconds between two handshake-triggered reads of one interface (more handshakes coalesce)"),
    Key("filename", "filename", _file_path, frozenset({"output:influx", "output:json"}), "path of the output file"),
    Key("mode", "mode", _mode, frozenset({"output:influx"}), "file mode of the line-protocol file"),
)
_BY_NAME: dict[str, list[Key]] = {}
for _key in KEYS:
    _BY_NAME.setdefault(_key.name, []).append(_key)


def _scope_of(section: str) -> str | None:
    if section == "general":
        return "general"
    if section.startswith("interface:"):
        return "interface"
    if section.startswith("peer:"):
        return "peer"
    if section == TRIGGER_NFLOG:
        return TRIGGER_NFLOG
    entry = output_scope(section)
    return entry.scope if entry is not None else None


def _lookup(name: str, scope: str) -> Key | None:
    return next((k for k in _BY_NAME.get(name, ()) if scope in k.scopes), None)


class _Reader:
    """Collects typed values per section, and every problem on the way."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def section(self, name: str, scope: str, items: Mapping[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for raw_key, raw_value in items.items():
            value = raw_value.strip()
            if scope == "output:webhook" and raw_key.startswith("header_") and len(raw_key) > 7:
                # header_x_api_key = ... -> "x-api-key: ..."; the value may be a token: never echoed.
                try:
                    values.setdefault("headers", {})[raw_key[7:].replace("_", "-")] = header_value(value)
                except ValueError as exc:
                    self.problems.append(Problem(self.source, name, raw_key, "(hidden)", str(exc)))
                continue
            key = _lookup(raw_key, scope)
            if key is None:
                where = sorted({s for k in _BY_NAME.get(raw_key, ()) for s in k.scopes})
                why = f"not valid here (belongs in {', '.join(where)})" if where else "unknown key"
                self.problems.append(Problem(self.source, name, raw_key, value, why))
                continue
            try:
                values[key.attr] = key.parse(value)
            except ValueError as exc:
                shown = "(hidden)" if key.secret else value
                self.problems.append(Problem(self.source, name, raw_key, shown, str(exc)))
        return values


def _check_track(reader: _Reader, section: str, settings: TrackSettings, cycle_time_s: float) -> None:
    def bad(key: str, value: object, why: str) -> None:
        reader.problems.append(Problem(reader.source, section, key, str(value), why))

    if settings.cycles_slowcheckingperiod < settings.cycles_checkperiod:
        bad("cycles_slowcheckingperiod", settings.cycles_slowcheckingperiod,
            f"must be at least cycles_checkperiod ({settings.cycles_checkperiod})")
    if settings.ping_interval and settings.ping_timeout_s * settings.ping_count > cycle_time_s * settings.ping_interval:
        bad("ping_timeout", settings.ping_timeout_s,
            f"ping_count × ping_timeout must be shorter than the probe period "
            f"({settings.ping_interval} × cycle_time {cycle_time_s:g} s)")


_SECTION_LINE = re.compile(r"\s*\[([^\]]+)\]")
_KEY_LINE = re.compile(r"([^\s=:#;\[][^=:]*?)\s*[=:]")


def _line_index(text: str) -> dict[tuple[str | None, str | None], int]:
    """(section, key) -> the line where it first appears; (section, None) -> its header."""
    index: dict[tuple[str | None, str | None], int] = {}
    section: str | None = None
    for lineno, line in enumerate(text.splitlines(), 1):
        header = _SECTION_LINE.match(line)
        if header:
            section = header.group(1)
            index.setdefault((section, None), lineno)
            continue
        key = _KEY_LINE.match(line)
        if key and not line[:1].isspace():
            index.setdefault((section, key.group(1).strip().lower()), lineno)
    return index


def parse(text: str, source: str = "<string>") -> Config:
    """Parse and validate config text; raise ``ConfigError`` listing every problem, each with
    its line."""
    text = text.removeprefix("\ufeff")  # a BOM from Windows editors
    try:
        return _parse(text, source)
    except ConfigError as exc:
        index = _line_index(text)
        located = [p if p.line is not None else dataclasses.replace(
            p, line=index.get((p.section, p.key)) or index.get((p.section, None))) for p in exc.problems]
        raise ConfigError(located) from None


def _read_ini(text: str, source: str) -> configparser.ConfigParser:
    # DEFAULT is read as an ordinary section so that we know which section set what.
    parser = configparser.ConfigParser(interpolation=None, default_section="\0none", strict=True)
    try:
        parser.read_string(text, source=source)
    except configparser.Error as exc:
        lineno = getattr(exc, "lineno", None)
        section = getattr(exc, "section", None)
        key = getattr(exc, "option", None)
        why = exc.message.splitlines()[0] if hasattr(exc, "message") else str(exc)
        if lineno:
            why = f"line {lineno}: {why}"
        raise ConfigError([Problem(source, section, key, None, why)]) from None
    return parser


@dataclass
class _Found:
    """The typed values read so far, by where they go."""

    general: dict[str, Any] = field(default_factory=dict)
    # Output sections by name; [output:influx] exists without a section, as in 0.2.0.
    outputs: dict[str, dict[str, Any]] = field(default_factory=lambda: {"output:influx": {}})
    interfaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    peers: dict[str, dict[str, Any]] = field(default_factory=dict)


def _read_defaults(defaults: dict[str, str], reader: _Reader, found: _Found) -> None:
    """[DEFAULT] applies to all sections, as in 0.2.0: each key goes where it is valid."""
    source = reader.source
    unknown = {k: v for k, v in defaults.items() if k not in _BY_NAME}
    reader.section("DEFAULT", "general", unknown)
    for key, value in defaults.items():
        if key in _BY_NAME and not (_lookup(key, "general") or _lookup(key, "output:influx")):
            where = sorted({s for k in _BY_NAME[key] for s in k.scopes})
            shown = None if _BY_NAME[key][0].secret else value
            reader.problems.append(Problem(source, "DEFAULT", key, shown, "no section takes it from [DEFAULT]: "
                                           f"set it in [{'] or ['.join(where)}]"))
    found.general.update(reader.section("DEFAULT", "general",
                                        {k: v for k, v in defaults.items() if _lookup(k, "general")}))
    found.outputs["output:influx"].update(reader.section(
        "DEFAULT", "output:influx", {k: v for k, v in defaults.items() if _lookup(k, "output:influx")}))


def _require(reader: _Reader, section: str, values: dict[str, Any], keys: tuple[str, ...]) -> None:
    """A required key missing (and not already reported as bad) is a problem."""
    for key in keys:
        if key not in values and not any(p.section == section and p.key == key for p in reader.problems):
            reader.problems.append(Problem(reader.source, section, key, None, "is required"))


def _read_section(name: str, items: dict[str, str], reader: _Reader, found: _Found) -> None:
    scope = _scope_of(name)
    if scope is None:
        known = ", ".join(o.scope + ("[:<name>]" if o.repeats else "") for o in OUTPUT_SECTIONS)
        reader.problems.append(Problem(reader.source, name, None, None,
                                       f"unknown section (known: general, DEFAULT, interface:<name>, "
                                       f"peer:<public key>, {TRIGGER_NFLOG}, {known})"))
        return
    values = reader.section(name, scope, items)
    entry = output_scope(name)
    if scope == "general":
        found.general.update(values)
    elif scope == TRIGGER_NFLOG:
        _require(reader, name, {"group": 1} if "nflog_group" in values else {}, ("group",))
        found.general.update(values)
    elif entry is not None:
        _require(reader, name, values, entry.required)
        found.outputs.setdefault(name, {}).update(values)
    elif scope == "interface":
        ifname = name.partition(":")[2]
        if not valid_ifname(ifname):
            reader.problems.append(Problem(reader.source, name, None, None, "not a valid interface name (1-15 "
                                           "bytes, no '/', ':', NUL or whitespace, not '.' or '..')"))
        found.interfaces[ifname] = values
    else:
        key = name.partition(":")[2]
        if not is_public_key(key):
            reader.problems.append(Problem(reader.source, name, None, None,
                                           "not a WireGuard public key (44 base64 characters)"))
        found.peers[key] = values


def _build(found: _Found, reader: _Reader) -> Config:
    db = found.outputs.get("output:influxdb", {})
    if ("username" in db) != ("password" in db):
        reader.problems.append(Problem(reader.source, "output:influxdb", "username", None,
                                       "needs password, and password username"))
    config_fields = {f.name for f in dataclasses.fields(Config)}
    track = TrackSettings(**{k: v for k, v in found.general.items() if k not in config_fields})
    top = {k: v for k, v in found.general.items() if k in config_fields}
    built: list[tuple[str, Any]] = []
    for name, values in found.outputs.items():
        entry = output_scope(name)
        assert entry is not None
        if all(r in values for r in entry.required):
            settings = entry.settings(**values)
            if getattr(settings, "enabled", True):
                built.append((name, settings))
    return Config(path=reader.source, track=track, interface_overrides=found.interfaces,
                  peer_overrides=found.peers, outputs=_ordered(tuple(built)), **top)


def _parse(text: str, source: str) -> Config:
    parser = _read_ini(text, source)
    reader, found = _Reader(source), _Found()
    if parser.has_section("DEFAULT"):
        _read_defaults(dict(parser.items("DEFAULT")), reader, found)
    for name in parser.sections():
        if name != "DEFAULT":
            _read_section(name, dict(parser.items(name)), reader, found)
    config = _build(found, reader)
    # Every section's settings are checked, whatever else is wrong: all problems at once.
    _check_track(reader, "general", config.track, config.cycle_time_s)
    for ifname, over in found.interfaces.items():
        _check_track(reader, f"interface:{ifname}", dataclasses.replace(config.track, **over), config.cycle_time_s)
    for key, over in found.peers.items():
        _check_track(reader, f"peer:{key}", dataclasses.replace(config.track, **over), config.cycle_time_s)
    if reader.problems:
        raise ConfigError(reader.problems)
    return config


def load(path: str | Path) -> Config:
    """Read and validate a config file; a missing or unreadable file is a ``ConfigError`` too."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([Problem(str(path), None, None, None, f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError([Problem(str(path), None, None, None, "not UTF-8 text")]) from None
    return parse(text, str(path))


def describe(config: Config) -> str:
    """Human-readable summary of what was understood (for ``--check-config``), by key name."""
    lines = [f"config file: {config.path}"]
    for key in KEYS:
        if "general" in key.scopes:
            holder: object = config if hasattr(config, key.attr) else config.track
            value = getattr(holder, key.attr)
            if key.name == "loglevel":
                value = logging.getLevelName(value)
            lines.append(f"[general] {key.name} = {value}")
    by_attr = {k.attr: k.name for k in KEYS}
    for ifname, over in config.interface_overrides.items():
        lines.extend(f"[interface:{ifname}] {by_attr[k]} = {v}" for k, v in over.items())
    for pubkey, over in config.peer_overrides.items():
        lines.extend(f"[peer:{pubkey}] {by_attr[k]} = {_shown(v)}" for k, v in over.items())
    if config.nflog_group is not None:
        lines.append(f"[{TRIGGER_NFLOG}] group = {config.nflog_group}, min_interval = {config.nflog_min_interval_s:g} "
                     "(a WireGuard handshake on a listen port reads that interface at once)")
    for name, settings in config.outputs:
        lines.append(f"[{name}] " + ", ".join(_describe_field(name, f.name, getattr(settings, f.name))
                                             for f in dataclasses.fields(settings)))
    return "\n".join(lines)


def _shown(value: Any) -> Any:
    """Checks as they are written, not as records."""
    if isinstance(value, tuple) and value and all(isinstance(v, Check) for v in value):
        return " ".join(v.text for v in value)
    return value


def _describe_field(section: str, attr: str, value: Any) -> str:
    """``key = value`` for --check-config; secrets, URL paths and header values never shown."""
    from wgtrack.redact import redact_url

    scope = output_scope(section)
    key = next((k for k in KEYS if k.attr == attr and scope is not None and scope.scope in k.scopes), None)
    name = key.name if key else attr
    if attr == "url":
        return "url = " + ", ".join(f"{redact_url(u.strip())}/..." for u in value.split(","))
    if attr == "headers":
        return f"headers = {', '.join(sorted(value)) or 'none'}"
    if key is not None and key.secret:
        return f"{name} = {'set' if value else 'none'}"
    if attr == "mode":
        return f"mode = {value:04o}"
    if isinstance(value, frozenset):
        return f"{name} = {','.join(sorted(value)) or 'all'}"
    if isinstance(value, float):
        return f"{name} = {value:g}"
    return f"{name} = {value if value is not None else '(none)'}"
