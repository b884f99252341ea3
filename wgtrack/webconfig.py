"""Reads a Prometheus-style web config file: TLS (``tls_server_config``) and basic auth
(``basic_auth_users`` with bcrypt hashes), as Prometheus's own exporters accept it.

PyYAML and bcrypt are imported only when a web config is used.
"""

from __future__ import annotations

import hashlib
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wgtrack.errors import StartupError


@dataclass(frozen=True)
class WebConfig:
    """What the file asks for; ``ssl_context`` is None without TLS."""

    ssl_context: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # name -> bcrypt hash


def load(path: Path) -> WebConfig:
    """Parse and check the file; every problem is a ``StartupError`` naming the file and key."""
    try:
        import yaml
    except ImportError:
        raise StartupError(f"{path}: reading a web config needs PyYAML (Debian: python3-yaml)") from None
    try:
        data: Any = yaml.safe_load(path.read_text()) or {}
    except OSError as exc:
        raise StartupError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise StartupError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise StartupError(f"{path}: must be a YAML mapping")
    unknown = set(data) - {"tls_server_config", "basic_auth_users", "http_server_config"}
    if unknown:
        raise StartupError(f"{path}: unknown keys {sorted(unknown)}")
    context = _tls(path, data.get("tls_server_config"))
    users = _users(path, data.get("basic_auth_users"))
    return WebConfig(context, users)


def _tls(path: Path, tls: Any) -> ssl.SSLContext | None:
    if not tls:
        return None
    if not isinstance(tls, dict) or not tls.get("cert_file") or not tls.get("key_file"):
        raise StartupError(f"{path}: tls_server_config needs cert_file and key_file")
    base = path.parent
    cert, key = base / str(tls["cert_file"]), base / str(tls["key_file"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"{path}: tls_server_config: cannot load {cert} / {key}: {exc}") from None
    return context


def _users(path: Path, users: Any) -> dict[str, bytes]:
    if not users:
        return {}
    if not isinstance(users, dict):
        raise StartupError(f"{path}: basic_auth_users must map user names to bcrypt hashes")
    try:
        import bcrypt  # noqa: F401 - checked now so a missing module fails at start, not at a scrape
    except ImportError:
        raise StartupError(f"{path}: basic auth needs bcrypt (Debian: python3-bcrypt)") from None
    out = {}
    for name, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            # The value is a hash, but still never echo it: say which user is wrong.
            raise StartupError(f"{path}: basic_auth_users: the entry for {name!r} is not a bcrypt hash")
        out[str(name)] = hashed.encode()
    return out


class Authenticator:
    """Checks basic-auth credentials; bcrypt is slow, so good answers are remembered by digest."""

    def __init__(self, users: dict[str, bytes]) -> None:
        self.users = users
        self._good: set[bytes] = set()
        self._dummy: bytes | None = None

    def cache_key(self, user: str, password: str) -> bytes:
        return hashlib.sha256(f"{user}\0{password}".encode()).digest()

    def known_good(self, user: str, password: str) -> bool:
        return self.cache_key(user, password) in self._good

    def check(self, user: str, password: str) -> bool:
        """Blocking (bcrypt): run it off the event loop."""
        import bcrypt

        hashed = self.users.get(user)
        if hashed is None:
            # An unknown user costs one bcrypt too, at the same cost (the salt prefix of a real
            # hash): a fast "no" would tell which users exist.
            if self._dummy is None:
                model = next(iter(self.users.values()))
                self._dummy = bcrypt.hashpw(b"wgtrack: no such user", model[:29])
            bcrypt.checkpw(password.encode(), self._dummy)
            return False
        if bcrypt.checkpw(password.encode(), hashed):
            self._good.add(self.cache_key(user, password))
            return True
        return False
