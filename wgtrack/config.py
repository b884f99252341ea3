"""Typed configuration: ``load(path) -> Config``, validated once, every problem reported together.

Layering, lowest first: built-in default, ``[DEFAULT]``, ``[general]``, ``[interface:<if>]``,
``[peer:<public key>]``. Keys and defaults of wgtrack 0.2.0 keep their meaning. This module
never logs and never exits; the CLI decides what to do with a ``ConfigError``.
"""

from __future__ import annotations

import configparser
import dataclasses
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from wgtrack.dump import is_public_key, valid_ifname
from wgtrack.errors import WgtrackError
from wgtrack.keys import BY_NAME, HISTORY, KEYS, TRIGGER_NFLOG
from wgtrack.link.settings import LinkSettings
from wgtrack.outputs import registry

if TYPE_CHECKING:
    from wgtrack.checks import Check
    from wgtrack.schema import (
        Key,
    )

DEFAULT_PATH = Path("/etc/wgtrack.conf")
SettingsT = TypeVar("SettingsT")


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
    ping_target: str | None = None  # None = the /32 or /128 allowed IP, if there is one
    reresolve: bool = True  # re-resolve a hostname endpoint while the link is down
    endpoint: str | None = None  # "host:port" when the wg-quick config does not say it
    checks: tuple[Check, ...] = ()  # service checks through the tunnel, evidence like probes
    check_timeout_s: float = 2.0
    icmp: bool = True  # no: the checks alone are the probe
    per_peer_metrics: bool = True  # series of its own; no: only in the interface's and group's totals


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration."""

    path: str = str(DEFAULT_PATH)
    cycle_time_s: float = 30.0
    loglevel: int = logging.INFO
    wg_command: str = "wg"
    wg_config_dir: Path = Path("/etc/wireguard")
    wg_timeout_s: float = 5.0
    netns: tuple[str, ...] = ()  # other network namespaces to read: names, or ("all",)
    dns_timeout_s: float = 2.0
    hosts_file: Path = Path("/etc/hosts")
    host: str | None = None  # the host's name in the fleet's series; default: the system's host name
    probe_rate: float = 1000.0  # echo requests per second, the whole daemon
    nflog_group: int | None = None  # [trigger:nflog]: read an interface at once on a handshake
    nflog_min_interval_s: float = 0.5
    nflog_manage_rule: bool = True  # table inet wgtrack, kept by wgtrack (wgtrack/nftrule.py)
    history_enabled: bool = True  # [history]: the embedded store (wgtrack/history)
    history_path: Path | None = None  # None: history.default_path() ($STATE_DIRECTORY or /var/lib/wgtrack)
    history_retention_s: float = 400 * 86400.0
    track: TrackSettings = field(default_factory=TrackSettings)
    interface_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    peer_overrides: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Every enabled output: (section name, its settings), in the registry's order. [output:influx]
    # is on without a section, as in 0.2.0.
    outputs: tuple[tuple[str, object], ...] = field(default_factory=lambda: (
        ("output:influx", registry.spec("output:influx").settings()),))

    def output(self, section: str, kind: type[SettingsT]) -> SettingsT | None:
        """The settings of one enabled output section, or None."""
        found = next((settings for name, settings in self.outputs if name == section), None)
        return found if isinstance(found, kind) else None

    def with_output(self, section: str, settings: object) -> Config:
        """This config with ``section`` added or replaced (``--stdout`` on every reload)."""
        kept = tuple((n, s) for n, s in self.outputs if n != section)
        return dataclasses.replace(self, outputs=_ordered((*kept, (section, settings))))

    def settings_for(self, interface: str, public_key: str) -> TrackSettings:
        """The effective tracking settings for one peer."""
        merged = {**self.interface_overrides.get(interface, {}), **self.peer_overrides.get(public_key, {})}
        return dataclasses.replace(self.track, **merged) if merged else self.track


def _ordered(outputs: tuple[tuple[str, object], ...]) -> tuple[tuple[str, object], ...]:
    return tuple(sorted(outputs, key=lambda item: registry.rank(item[0])))


def _scope_of(section: str) -> str | None:
    if section == "general":
        return "general"
    if section.startswith("interface:"):
        return "interface"
    if section.startswith("peer:"):
        return "peer"
    if section in (TRIGGER_NFLOG, HISTORY):
        return section
    return registry.scope_of(section)


def _lookup(name: str, scope: str) -> Key | None:
    if scope.startswith("output:"):
        return next((k for k in registry.spec(scope).keys if k.name == name), None)
    return next((k for k in BY_NAME.get(name, ()) if scope in k.scopes), None)


def _where(name: str) -> list[str]:
    """Every section kind that takes this key (all outputs are looked at: an error's path)."""
    keys = [*KEYS, *(k for spec in registry.specs() for k in spec.keys)]
    return sorted({s for k in keys if k.name == name for s in k.scopes})


def all_keys() -> list[Key]:
    """Every key of every section (the docs list them)."""
    return [*KEYS, *(k for spec in registry.specs() for k in spec.keys)]


class _Reader:
    """Collects typed values per section, and every problem on the way."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[Problem] = []

    def section(self, name: str, scope: str, items: Mapping[str, str]) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for raw_key, raw_value in items.items():
            value = raw_value.strip()
            prefixed = registry.spec(scope).prefixed if scope.startswith("output:") else None
            if prefixed is not None and raw_key.startswith(prefixed.prefix) and len(raw_key) > len(prefixed.prefix):
                try:  # the value may be a token: never echoed
                    values.setdefault(prefixed.attr, {})[prefixed.name(raw_key[len(prefixed.prefix):])] = \
                        prefixed.parse(value)
                except ValueError as exc:
                    self.problems.append(Problem(self.source, name, raw_key, "(hidden)", str(exc)))
                continue
            key = _lookup(raw_key, scope)
            if key is None:
                where = _where(raw_key)
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
    elsewhere = {k: v for k, v in defaults.items() if not (_lookup(k, "general") or _lookup(k, "output:influx"))}
    for key, value in elsewhere.items():
        where = _where(key)
        if not where:
            reader.section("DEFAULT", "general", {key: value})  # an unknown key, said as anywhere
            continue
        secret = any(k.secret for k in all_keys() if k.name == key)
        reader.problems.append(Problem(reader.source, "DEFAULT", key, None if secret else value,
                                       f"no section takes it from [DEFAULT]: set it in [{'] or ['.join(where)}]"))
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
        known = ", ".join(o.scope + ("[:<name>]" if o.repeats else "") for o in registry.specs())
        reader.problems.append(Problem(reader.source, name, None, None,
                                       f"unknown section (known: general, DEFAULT, interface:<name>, "
                                       f"peer:<public key>, {TRIGGER_NFLOG}, {HISTORY}, {known})"))
        return
    values = reader.section(name, scope, items)
    if scope == "general":
        found.general.update(values)
    elif scope == TRIGGER_NFLOG:
        _require(reader, name, {"group": 1} if "nflog_group" in values else {}, ("group",))
        found.general.update(values)
    elif scope == HISTORY:
        found.general.update(values)
    elif scope.startswith("output:"):
        _require(reader, name, values, registry.spec(scope).required)
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
    config_fields = {f.name for f in dataclasses.fields(Config)}
    track = TrackSettings(**{k: v for k, v in found.general.items() if k not in config_fields})
    top = {k: v for k, v in found.general.items() if k in config_fields}
    built: list[tuple[str, object]] = []
    for name, values in found.outputs.items():
        spec = registry.spec(registry.scope_of(name) or name)
        reader.problems += [Problem(reader.source, name, key, None, why) for key, why in spec.check(values)]
        if all(r in values for r in spec.required):
            settings = spec.settings(**values)
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
