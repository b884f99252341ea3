"""dnspython, loaded when first needed and off the event loop.

Its import costs about 75 ms and 6 MB, which a hub without hostname endpoints or DNS checks
never needs: it is imported in a worker thread by the first re-resolution or DNS check, and
by nothing else.
"""

from __future__ import annotations

import importlib

from wgtrack.workers import Workers

MODULES = ("dns.asyncquery", "dns.asyncresolver", "dns.exception", "dns.message", "dns.rcode", "dns.rdatatype",
           "dns.resolver")
IMPORT_TIMEOUT_S = 30.0
_worker = Workers("dns-import")
_loaded = False


def _import() -> None:
    for name in MODULES:
        importlib.import_module(name)


async def load() -> None:
    """Make sure dnspython is imported (the import lock keeps a concurrent one safe)."""
    global _loaded
    if not _loaded:
        await _worker.run(_import, timeout_s=IMPORT_TIMEOUT_S)
        _loaded = True
