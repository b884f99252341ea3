"""Outputs behind one small interface, and the registry that builds them from the config."""

from __future__ import annotations

from typing import Protocol

from wgtrack.config import Config
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


def build(config: Config) -> list[Output]:
    """Every output the config enables."""
    from wgtrack.outputs.influx_file import InfluxFile

    outputs: list[Output] = []
    if config.influx_file.enabled:
        outputs.append(InfluxFile(config.influx_file))
    if config.json_status is not None and config.json_status.enabled:
        from wgtrack.outputs.json_status import JsonStatus

        outputs.append(JsonStatus(config.json_status))
    if config.webhooks:
        from wgtrack.outputs.webhook import Webhook

        outputs.extend(Webhook(name, hook) for name, hook in config.webhooks)
    if config.influxdb is not None:
        from wgtrack.outputs.influxdb import InfluxDB

        outputs.append(InfluxDB(config.influxdb))
    if config.alertmanager is not None:
        import socket

        from wgtrack.outputs.alertmanager import Alertmanager

        outputs.append(Alertmanager(config.alertmanager, config.alertmanager.instance or socket.gethostname()))
    if config.stdout:
        from wgtrack.outputs.stdout import StdoutLines

        outputs.append(StdoutLines())
    if config.prometheus is not None and config.prometheus.enabled:
        from wgtrack.outputs.prometheus import PrometheusExporter

        outputs.append(PrometheusExporter(config.prometheus))
    return outputs
