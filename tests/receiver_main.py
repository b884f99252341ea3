"""``python -m tests.receiver_main PORT FILE [HEADER]``: a receiver for Alertmanager's webhook, run
inside a lab namespace; appends every POSTed body to FILE, one JSON document per line. With
HEADER, each line is ``{"header": <that request header>, "body": <the body>}`` instead."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tests.receiver import Receiver

if __name__ == "__main__":
    port, out = int(sys.argv[1]), Path(sys.argv[2])
    header = sys.argv[3].lower() if len(sys.argv) > 3 else None
    receiver = Receiver(port)
    seen = 0
    for _ in range(36000):  # bounded: at most an hour; the lab kills it long before
        while seen < len(receiver.requests):
            headers, body = receiver.requests[seen]
            line = body.replace(b"\n", b" ") if header is None else \
                json.dumps({"header": headers.get(header), "body": json.loads(body)}).encode()
            with out.open("ab") as handle:
                handle.write(line + b"\n")
            seen += 1
        time.sleep(0.1)
