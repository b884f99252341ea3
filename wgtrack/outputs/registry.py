"""The outputs wgtrack has: one line each, the section and the module that declares it.

Each output's module declares its ``SPEC`` (``schema.OutputSpec``): settings, keys, factory.
A module is imported only when its section is used (or when every output must be listed: the
docs, an error message), so an output that is not configured costs no memory.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from wgtrack.schema import OutputSpec

if TYPE_CHECKING:  # the config imports this registry; only the type goes the other way
    from wgtrack.config import Config
    from wgtrack.outputs import Output

# (section, module): the order is the order outputs start and are listed in.
OUTPUTS: tuple[tuple[str, str], ...] = (
    ("output:influx", "wgtrack.outputs.influx_file"),
    ("output:json", "wgtrack.outputs.json_status"),
    ("output:webhook", "wgtrack.outputs.webhook"),
    ("output:influxdb", "wgtrack.outputs.influxdb"),
    ("output:alertmanager", "wgtrack.outputs.alertmanager"),
    ("output:stdout", "wgtrack.outputs.stdout"),
    ("output:prometheus", "wgtrack.outputs.prometheus"),
)


def spec(scope: str) -> OutputSpec:
    """The spec of one kind of output (``output:webhook``), importing its module."""
    module = dict(OUTPUTS)[scope]
    found = importlib.import_module(module).SPEC
    if not isinstance(found, OutputSpec) or found.scope != scope:
        raise TypeError(f"{module}.SPEC does not declare [{scope}]")
    return found


def specs() -> list[OutputSpec]:
    """Every output's spec (imports them all)."""
    return [spec(scope) for scope, _ in OUTPUTS]


def scope_of(section: str) -> str | None:
    """The kind of output a section is (``output:webhook:ops`` -> ``output:webhook``), or None."""
    known = dict(OUTPUTS)
    if section in known:
        return section
    base = section.rpartition(":")[0]
    if section.count(":") == 2 and base in known and spec(base).repeats:
        return base
    return None


def rank(section: str) -> tuple[int, str]:
    """Where a section's output stands in the registry's order."""
    scopes = [scope for scope, _ in OUTPUTS]
    scope = scope_of(section)
    return (scopes.index(scope) if scope is not None else len(scopes), section)


def plan(config: Config) -> dict[str, object]:
    """Every output the config enables: section name -> the settings that build it. Two
    plans' entries compare equal exactly when a reload may keep the running output."""
    wanted: dict[str, object] = {}
    for section, settings in config.outputs:
        scope = scope_of(section)
        wanted[section] = spec(scope).complete(settings) if scope is not None else settings
    return wanted


def make(section: str, settings: object) -> Output:
    """The output for one entry of ``plan``."""
    scope = scope_of(section)
    if scope is None:
        raise ValueError(f"no output for [{section}]")
    made: Output = spec(scope).factory(section, settings)
    return made


def build(config: Config) -> list[Output]:
    """Every output the config enables (not started)."""
    return [make(section, settings) for section, settings in plan(config).items()]
