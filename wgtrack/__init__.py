"""wgtrack: keeps WireGuard links healthy and visible."""

from wgtrack import deferred

__version__ = "0.3.0"

# Before anything of ours imports asyncio: OpenSSL loads only when TLS is used (3 MB of RSS).
deferred.defer_tls()
