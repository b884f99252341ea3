"""Outputs behind one small interface, and the registry that builds them from the config."""

from __future__ import annotations

import dataclasses
import socket
from typing import Protocol

from wgtrack.config import AlertmanagerSettings, Config
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


def plan(config: Config) -> dict[str, object]:
    """Every output the config enables: section name -> the settings that build it. Two
    plans' entries compare equal exactly when a reload may keep the running output."""
    wanted: dict[str, object] = {}
    if config.influx_file.enabled:
        wanted["output:influx"] = config.influx_file
    if config.json_status is not None and config.json_status.enabled:
        wanted["output:json"] = config.json_status
    for name, hook in config.webhooks:
        wanted[f"output:{name}"] = hook
    if config.influxdb is not None:
        wanted["output:influxdb"] = config.influxdb
    if config.alertmanager is not None:
        am = config.alertmanager
        wanted["output:alertmanager"] = am if am.instance else dataclasses.replace(am, instance=socket.gethostname())
    if config.stdout:
        wanted["output:stdout"] = True
    if config.prometheus is not None and config.prometheus.enabled:
        wanted["output:prometheus"] = config.prometheus
    return wanted


def make(section: str, settings: object) -> Output:
    """The output for one entry of ``plan``; imports only what is configured."""
    # Each import is local: an output that is not configured costs no memory.
    if section == "output:influx":
        from wgtrack.outputs.influx_file import InfluxFile

        return InfluxFile(settings)  # type: ignore[arg-type]
    if section == "output:json":
        from wgtrack.outputs.json_status import JsonStatus

        return JsonStatus(settings)  # type: ignore[arg-type]
    if section.startswith("output:webhook"):
        from wgtrack.outputs.webhook import Webhook

        return Webhook(section.removeprefix("output:"), settings)  # type: ignore[arg-type]
    if section == "output:influxdb":
        from wgtrack.outputs.influxdb import InfluxDB

        return InfluxDB(settings)  # type: ignore[arg-type]
    if section == "output:alertmanager":
        from wgtrack.outputs.alertmanager import Alertmanager

        assert isinstance(settings, AlertmanagerSettings)
        return Alertmanager(settings, settings.instance or socket.gethostname())
    if section == "output:stdout":
        from wgtrack.outputs.stdout import StdoutLines

        return StdoutLines()
    if section == "output:prometheus":
        from wgtrack.outputs.prometheus import PrometheusExporter

        return PrometheusExporter(settings)  # type: ignore[arg-type]
    raise ValueError(f"no output for [{section}]")


def build(config: Config) -> list[Output]:
    """Every output the config enables (not started)."""
    return [make(section, settings) for section, settings in plan(config).items()]
