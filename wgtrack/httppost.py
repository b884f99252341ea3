"""Blocking HTTP POST with a timeout, for worker threads (webhooks, Alertmanager).

Failures are results, never exceptions. URLs, headers and bodies are never logged here: they
can carry tokens. ``redact`` gives the form that logs may show.
"""

from __future__ import annotations

import ipaddress
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PostResult:
    status: int | None  # None: no HTTP answer at all
    error: str | None  # None on 2xx

    @property
    def ok(self) -> bool:
        return self.error is None


def redact(url: str) -> str:
    """``scheme://host[:port]`` only: paths and queries of webhook URLs often hold tokens."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or "?"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def _is_loopback(url: str) -> bool:
    host = urllib.parse.urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def post(url: str, body: bytes, headers: dict[str, str], timeout_s: float) -> PostResult:
    """POST ``body``; 2xx is success, anything else (or no answer) is a failure result."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    # The environment's proxy applies to remote receivers, never to loopback ones.
    handlers = [urllib.request.ProxyHandler({})] if _is_loopback(url) else []
    opener = urllib.request.build_opener(*handlers)
    try:
        with opener.open(request, timeout=timeout_s) as response:
            response.read(65536)
            return PostResult(response.status, None)
    except urllib.error.HTTPError as exc:
        return PostResult(exc.code, f"HTTP {exc.code}")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return PostResult(None, f"no answer: {reason}")
