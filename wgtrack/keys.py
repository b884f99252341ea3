"""The keys of the sections that are not outputs: ``[general]`` (and ``[DEFAULT]``), the
per-peer tracking keys of ``[interface:<if>]`` and ``[peer:<key>]``, and ``[trigger:nflog]``.
Each output's keys live in its own module (its ``SPEC``)."""

from __future__ import annotations

from wgtrack.checks import parse_checks
from wgtrack.dump import valid_netns_name
from wgtrack.schema import (
    Key,
    absolute_path,
    boolean,
    hostname_endpoint,
    int_between,
    ip_address_text,
    label_value,
    milliseconds_or_off,
    nonempty,
    parse_loglevel,
    ratio_or_off,
    seconds,
    seconds_or_off,
)

TRACK = frozenset({"general", "interface", "peer"})
TRIGGER_NFLOG = "trigger:nflog"
HISTORY = "history"

def days_or_seconds(text: str) -> float:
    """A retention: a bare number is days; 1d, 12h, 30m and 90s say their unit (1 hour at least)."""
    text = text.strip().lower()
    units = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
    scale = units.get(text[-1:], 0.0)
    number = text[:-1] if scale else text
    try:
        value = float(number) * (scale or 86400.0)
    except ValueError:
        raise ValueError("must be a number of days, or a number with d, h, m or s") from None
    if not 3600 <= value <= 100 * 365 * 86400:
        raise ValueError("must be between 1 hour and 100 years")
    return value


def netns_names(text: str) -> tuple[str, ...]:
    names = tuple(name for name in text.replace(",", " ").split() if name)
    if text.strip().lower() in ("no", "none", "off"):
        return ()
    for name in names:
        if name != "all" and not valid_netns_name(name):
            raise ValueError(f"{name!r} is not a namespace name (1-64 of letters, digits, '.', '_', '-'), nor all")
    return names

KEYS: tuple[Key, ...] = (
    Key("cycle_time", "cycle_time_s", seconds(0.1, 3600, "faster only forks wg more often; slower is no monitoring"),
        frozenset({"general"}), "seconds between cycles"),
    Key("loglevel", "loglevel", parse_loglevel, frozenset({"general"}), "log level, a name or 0.2.0's number"),
    Key("wg_command", "wg_command", nonempty, frozenset({"general"}), "the wg binary"),
    Key("wg_config_dir", "wg_config_dir", absolute_path, frozenset({"general"}), "where <interface>.conf files live"),
    Key("wg_timeout", "wg_timeout_s", seconds(0.1, 300), frozenset({"general"}), "seconds a wg call may take"),
    Key("netns", "netns", netns_names, frozenset({"general"}),
        "other network namespaces to track: all (every named one, and those of processes holding WireGuard), or "
        "names from ip netns; empty (default): only wgtrack's own (docs/container.md)"),
    Key("dns_timeout", "dns_timeout_s", seconds(0.1, 60), frozenset({"general"}),
        "seconds one DNS query may take when re-resolving"),
    Key("hosts_file", "hosts_file", absolute_path, frozenset({"general"}), "hosts file consulted before DNS"),
    Key("host", "host", label_value, frozenset({"general"}),
        "this host's name on wgtrack_interface_info (fleet views); default: the system's host name"),
    Key("probe_rate", "probe_rate", int_between(1, 100_000, "the sockets' buffers and the tunnels"),
        frozenset({"general"}),
        "echo requests per second at most, the whole daemon (probes queue for their turn, links up or in "
        "their first minute down first, the others at most a hundredth); bounds the probes per cycle to "
        "probe_rate × cycle_time"),
    Key("ping_interval", "ping_interval", int_between(0, 100_000), TRACK, "probe every N cycles; 0 = no probes"),
    Key("ping_failafternum", "ping_failafternum", int_between(1, 1000), TRACK, "failed probes in a row before down"),
    Key("confirm_pings", "confirm_pings", int_between(0, 30), TRACK,
        "echo requests of each probe that confirms a failed one (any reply is life): a lossy link is not down "
        "(docs/link-state.md, Flapping); 0: one probe of ping_count, as 0.2.0"),
    Key("degraded_loss", "degraded_loss", ratio_or_off, TRACK,
        "loss over the last 5 minutes at which an up link is up:degraded, once it has held 2 minutes (it "
        "recovers after 5 within); 0 = off (docs/link-state.md, Degraded)"),
    Key("degraded_rtt", "degraded_rtt_ms", milliseconds_or_off(0.1, 60_000), TRACK,
        "median RTT over the last 5 minutes, in ms, above which an up link is up:degraded (as degraded_loss); "
        "0 (default) = off"),
    Key("mtu_interval", "mtu_interval_s", seconds_or_off(60, 86400), TRACK,
        "seconds between path-MTU searches of an up link whose probe target answers (and one when it comes up; "
        "every minute while the path is short); 0 = off (docs/link-state.md, Path MTU)"),
    Key("ping_count", "ping_count", int_between(1, 10, "a probe must end within its period"), TRACK,
        "echo requests per probe"),
    Key("ping_timeout", "ping_timeout_s", seconds(0.01, 60), TRACK, "seconds to wait for each echo reply"),
    Key("ping_target", "ping_target", ip_address_text, frozenset({"peer"}), "address to probe through the tunnel"),
    Key("handshake_timeout", "handshake_timeout_s", seconds(1, 86400), TRACK,
        "handshake age (plus keepalive and 10 s) past which a link without other evidence is stale"),
    Key("cycles_wait", "cycles_wait", int_between(0, 1_000_000), TRACK, "cycles in down:waiting before re-resolving"),
    Key("cycles_checking", "cycles_checking", int_between(0, 1_000_000), TRACK, "cycles spent in down:checking"),
    Key("cycles_checkperiod", "cycles_checkperiod", int_between(1, 1_000_000), TRACK,
        "re-resolve every N cycles while checking"),
    Key("cycles_slowcheckingperiod", "cycles_slowcheckingperiod", int_between(1, 1_000_000), TRACK,
        "back-off cap, then re-resolve every N cycles"),
    Key("reresolve", "reresolve", boolean, TRACK, "re-resolve a hostname endpoint while the link is down"),
    Key("check", "checks", parse_checks, frozenset({"peer"}),
        "service checks through the tunnel, evidence like probes: tcp://ip:port, http(s)://ip[:port]/path[#status], "
        "dns://name@ip (several: separated by spaces or commas)"),
    Key("check_timeout", "check_timeout_s", seconds(0.1, 30), TRACK, "seconds one check may take in all"),
    Key("probe_interval", "probe_interval_s", seconds_or_off(0.2, 3600), TRACK,
        "seconds between probes of an up peer, on their own clock between cycles; 0 (default): every "
        "ping_interval cycles, as 0.2.0 did"),
    Key("down_probe_interval", "down_probe_interval_s", seconds_or_off(0.2, 60), TRACK,
        "a down peer is probed this often, between cycles, for its first minute down (then less often); "
        "a heal is reported at once whatever cycle_time is; 0 = only with the cycle"),
    Key("per_peer_metrics", "per_peer_metrics", boolean, TRACK,
        "series of its own in Prometheus and the Influx outputs; no: counted only in the totals per interface and "
        "friendly_json group (big hubs: docs/prometheus.md, series cost)"),
    Key("icmp", "icmp", boolean, TRACK, "ICMP probes; no: a peer with checks is probed by its checks alone"),
    Key("underlay_probe", "underlay_probe", boolean, TRACK,
        "while down, ping the endpoint's own address outside the tunnel (at most once a minute) to tell "
        "tunnel_only from host_unreachable; off by default (it sends ICMP to the peer's public address)"),
    Key("endpoint", "endpoint", hostname_endpoint, frozenset({"peer"}),
        "hostname:port to re-resolve when no wg-quick config names one (systemd-networkd ...)"),
    Key("group", "nflog_group", int_between(0, 65535), frozenset({"trigger:nflog"}),
        "the nflog group nft rules log WireGuard's handshake messages to (docs/link-state.md has them)"),
    Key("min_interval", "nflog_min_interval_s", seconds(0.05, 60, "each read forks wg"), frozenset({"trigger:nflog"}),
        "seconds between two handshake-triggered reads of one interface (more handshakes coalesce)"),
    Key("manage_rule", "nflog_manage_rule", boolean, frozenset({"trigger:nflog"}),
        "wgtrack keeps the nft rules itself, in table inet wgtrack, for every listen port it tracks (removed "
        "on stop); no: you add them (docs/link-state.md)"),
    Key("enabled", "history_enabled", boolean, frozenset({HISTORY}),
        "keep the history store (states, outages, sessions, availability; what a restart resumes from)"),
    Key("path", "history_path", absolute_path, frozenset({HISTORY}),
        "the history store's sqlite file; default: $STATE_DIRECTORY/history.db, else /var/lib/wgtrack/history.db"),
    Key("retention", "history_retention_s", days_or_seconds, frozenset({HISTORY}),
        "how long the history is kept: days (400, the default) or with a unit (400d, 12h)"),
)
BY_NAME: dict[str, list[Key]] = {}
for _key in KEYS:
    BY_NAME.setdefault(_key.name, []).append(_key)
