"""Outputs behind one small interface, and the registry that builds them from the config."""

from __future__ import annotations

import dataclasses
import importlib
import socket
from typing import Any, Protocol

from wgtrack.config import AlertmanagerSettings, Config, output_scope
from wgtrack.snapshot import Snapshot


class Output(Protocol):
    """Where snapshots go. ``publish`` must not block the event loop."""

    name: str

    def check(self) -> list[str]:
        """Problems that would stop this output from working (empty when ready)."""
        ...

    async def start(self) -> None:
        """Prepare; raise ``StartupError`` with a clear message when impossible."""
        ...

    async def publish(self, snapshot: Snapshot) -> None:
        """Deliver one snapshot; raise on failure (the caller logs and carries on)."""
        ...

    async def close(self) -> None:
        """Release resources."""
        ...

    async def stop_for_successor(self) -> None:
        """A reload replaces this output (same section, new settings): stop without flushing
        what is queued, which the successor takes over. By default, close."""
        await self.close()

    def take_over(self, old: Output) -> None:
        """Carry over what ``old``, the output this one replaces, had queued. By default
        there is nothing to carry."""
        return None


# One factory per entry of config.OUTPUT_SECTIONS: (module, class). Imported only when that
# output is configured, so an output that is not used costs no memory.
FACTORIES: dict[str, tuple[str, str]] = {
    "output:influx": ("wgtrack.outputs.influx_file", "InfluxFile"),
    "output:json": ("wgtrack.outputs.json_status", "JsonStatus"),
    "output:webhook": ("wgtrack.outputs.webhook", "Webhook"),
    "output:influxdb": ("wgtrack.outputs.influxdb", "InfluxDB"),
    "output:alertmanager": ("wgtrack.outputs.alertmanager", "Alertmanager"),
    "output:stdout": ("wgtrack.outputs.stdout", "StdoutLines"),
    "output:prometheus": ("wgtrack.outputs.prometheus", "PrometheusExporter"),
}


def plan(config: Config) -> dict[str, object]:
    """Every output the config enables: section name -> the settings that build it. Two
    plans' entries compare equal exactly when a reload may keep the running output."""
    wanted: dict[str, object] = {}
    for section, settings in config.outputs:
        if isinstance(settings, AlertmanagerSettings) and not settings.instance:
            settings = dataclasses.replace(settings, instance=socket.gethostname())
        wanted[section] = settings
    return wanted


def make(section: str, settings: object) -> Output:
    """The output for one entry of ``plan``."""
    entry = output_scope(section)
    if entry is None:
        raise ValueError(f"no output for [{section}]")
    module, name = FACTORIES[entry.scope]
    factory: Any = getattr(importlib.import_module(module), name)
    return factory(section, settings)  # type: ignore[no-any-return]


def build(config: Config) -> list[Output]:
    """Every output the config enables (not started)."""
    return [make(section, settings) for section, settings in plan(config).items()]
