"""Outputs behind one small interface. ``registry`` lists them and builds them from the config."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from wgtrack.history.outbox import Outbox
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

    def keep_in(self, outbox: Outbox, section: str) -> None:
        """Keep what is queued for delivery in the history store's ``outbox`` (and take what
        the last run left there). By default nothing is queued that a restart must deliver."""
        return None
