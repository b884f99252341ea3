"""The pushing outputs' shared sender: a stop that lands as a delivery finishes must not send
that item again."""

from __future__ import annotations

import asyncio

from wgtrack.outputs.sender import Sender


class Recorder(Sender[str]):
    def __init__(self, items: list[str]) -> None:
        super().__init__("output:test", "http://127.0.0.1:1/x")
        self.queue = list(items)
        self.sent: list[str] = []

    def _next(self) -> str | None:
        return self.queue[0] if self.queue else None

    def _delivered(self, item: str) -> None:
        self.queue.remove(item)

    def pending(self) -> int:
        return len(self.queue)

    async def publish(self, snapshot: object) -> None:
        raise AssertionError("not used: the queue is filled directly")

    async def _deliver(self, item: str) -> str | None:
        self.sent.append(item)
        if item == "last":
            # the stop arrives in the very turn the receiver's answer does
            assert self._task is not None
            asyncio.get_running_loop().call_soon(self._task.cancel)
        return None


def test_a_stop_landing_with_the_answer_counts_the_delivery_once() -> None:
    sender = Recorder(["first", "last"])

    async def go() -> None:
        await sender.start()
        for _ in range(100):  # bounded: the sender needs a few turns
            if sender._task is not None and sender._task.done():
                break
            await asyncio.sleep(0.01)
        await sender.close()

    asyncio.run(go())
    assert sender.sent == ["first", "last"]
    assert sender.queue == []
