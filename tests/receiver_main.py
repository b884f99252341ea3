"""``python -m tests.receiver_main PORT FILE``: a receiver for Alertmanager's webhook, run inside
a lab namespace; appends every POSTed body to FILE, one JSON document per line."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from tests.receiver import Receiver

if __name__ == "__main__":
    port, out = int(sys.argv[1]), Path(sys.argv[2])
    receiver = Receiver(port)
    seen = 0
    for _ in range(36000):  # bounded: at most an hour; the lab kills it long before
        while seen < len(receiver.requests):
            with out.open("ab") as handle:
                handle.write(receiver.requests[seen][1].replace(b"\n", b" ") + b"\n")
            seen += 1
        time.sleep(0.1)
