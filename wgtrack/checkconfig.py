"""What ``wgtrack --check-config`` prints of a config: every key as it was understood, with
secrets, URL paths and header values never shown."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from wgtrack.checks import Check
from wgtrack.config import Config
from wgtrack.keys import KEYS, TRIGGER_NFLOG
from wgtrack.outputs import registry
from wgtrack.redact import redact_url


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
                     f"manage_rule = {'yes' if config.nflog_manage_rule else 'no'} "
                     "(a WireGuard handshake on a listen port reads that interface at once)")
    if config.history_enabled:
        from wgtrack.history.store import path_of

        lines.append(f"[history] enabled = yes, path = {path_of(config)}, "
                     f"retention = {config.history_retention_s / 86400:g} days")
    else:
        lines.append("[history] enabled = no (no restart memory, no availability)")
    for name, settings in config.outputs:
        fields = dataclasses.fields(settings)  # type: ignore[arg-type]  # every output's settings are a dataclass
        lines.append(f"[{name}] " + ", ".join(_describe_field(name, f.name, getattr(settings, f.name)) for f in fields))
    return "\n".join(lines)


def _shown(value: Any) -> Any:
    """Checks as they are written, not as records."""
    if isinstance(value, tuple) and value and all(isinstance(v, Check) for v in value):
        return " ".join(v.text for v in value)
    return value


def _describe_field(section: str, attr: str, value: Any) -> str:
    """``key = value`` for --check-config; secrets, URL paths and header values never shown."""
    spec = registry.spec(registry.scope_of(section) or section)
    key = next((k for k in spec.keys if k.attr == attr), None)
    name = key.name if key else attr
    if attr == "url":
        return "url = " + ", ".join(f"{redact_url(u.strip())}/..." for u in value.split(","))
    if spec.prefixed is not None and attr == spec.prefixed.attr:
        return f"{attr} = {', '.join(sorted(value)) or 'none'}"
    if key is not None and key.secret:
        return f"{name} = {'set' if value else 'none'}"
    if attr == "mode":
        return f"mode = {value:04o}"
    if isinstance(value, frozenset):
        return f"{name} = {','.join(sorted(value)) or 'all'}"
    if isinstance(value, float):
        return f"{name} = {value:g}"
    return f"{name} = {value if value is not None else '(none)'}"
