"""Minimal sd_notify(3): tell systemd READY, RELOADING, STOPPING (no dependency needed)."""

from __future__ import annotations

import os
import socket
import time


def notify(message: str) -> bool:
    """Send ``message`` to ``$NOTIFY_SOCKET``; False when not under systemd or on failure."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(1.0)
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError:
        return False
    return True


def reloading() -> bool:
    """RELOADING=1 with the monotonic timestamp that Type=notify-reload expects."""
    usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    return notify(f"RELOADING=1\nMONOTONIC_USEC={usec}")
