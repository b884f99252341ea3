"""The one redactor for text that comes from outside (``wg``'s stderr, HTTP errors, exception
messages): key-shaped strings, control characters and unbounded length never reach a log, an
output or an event."""

from __future__ import annotations

import re
import urllib.parse

# A WireGuard key in base64 (44 characters ending in '=') or in hex (64 characters, UAPI);
# also any long base64/hex run, since a truncated or re-encoded key is still a secret.
_KEYISH = re.compile(r"[A-Za-z0-9+/]{42,43}=|[0-9A-Fa-f]{64}|[A-Za-z0-9+/_-]{40,}={0,2}")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
MAX_TEXT = 300


def redact_text(text: str, limit: int = MAX_TEXT) -> str:
    """``text`` with anything shaped like a key replaced, control characters escaped, and at
    most ``limit`` characters (newlines become '; ')."""
    text = text[: limit * 4]  # bound the work before the regexes run
    text = _KEYISH.sub("<redacted>", text)
    text = text.replace("\r\n", "\n").replace("\n", "; ")
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redact_url(url: str) -> str:
    """``scheme://host[:port]`` only: paths and queries of webhook URLs often hold tokens."""
    try:
        parts = urllib.parse.urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparsable URL>"
    host = parts.hostname or "?"
    return f"{parts.scheme}://{host}{port}"
