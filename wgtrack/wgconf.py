"""Reads what wgtrack needs from wg-quick configs: endpoint hostnames and friendly names.

Only ``[Peer]`` blocks are looked at; ``PrivateKey`` and ``PresharedKey`` lines are never
kept. The parser is pure; ``load_interface_conf`` is the small blocking reader that the
daemon runs off the event loop.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from wgtrack.model import is_ip_literal, split_endpoint

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PeerConf:
    """What a wg-quick ``[Peer]`` block tells about one peer."""

    public_key: str
    endpoint_host: str | None = None  # set only when Endpoint names a hostname
    endpoint_port: int | None = None
    friendly_name: str | None = None
    friendly_json: dict[str, str] = field(default_factory=dict)


def _comment_setting(line: str) -> tuple[str, str] | None:
    """``# friendly_name = alice`` -> ("friendly_name", "alice")."""
    body = line.lstrip("#;").strip()
    key, sep, value = body.partition("=")
    if not sep:
        return None
    return key.strip().lower(), value.strip()


def _finish(block: dict[str, str], problems: list[str], where: str) -> PeerConf | None:
    key = block.get("publickey")
    if not key:
        problems.append(f"{where}: [Peer] without PublicKey")
        return None
    host: str | None = None
    port: int | None = None
    endpoint = block.get("endpoint")
    if endpoint:
        try:
            parsed_host, port = split_endpoint(endpoint)
        except ValueError as exc:
            problems.append(f"{where}: Endpoint {endpoint!r}: {exc}")
        else:
            host = None if is_ip_literal(parsed_host) else parsed_host
            if host is None:
                port = None
    friendly_json: dict[str, str] = {}
    raw_json = block.get("#friendly_json")
    if raw_json:
        try:
            loaded = json.loads(raw_json)
            if not isinstance(loaded, dict):
                raise ValueError("not a JSON object")
            friendly_json = {str(k): str(v) for k, v in loaded.items()}
        except ValueError as exc:
            problems.append(f"{where}: friendly_json is not a flat JSON object: {exc}")
    return PeerConf(
        public_key=key,
        endpoint_host=host,
        endpoint_port=port,
        friendly_name=block.get("#friendly_name") or None,
        friendly_json=friendly_json,
    )


def parse_wg_quick(text: str, source: str = "<string>") -> tuple[dict[str, PeerConf], list[str]]:
    """Parse a wg-quick config; return peers by public key and a list of problems."""
    peers: dict[str, PeerConf] = {}
    problems: list[str] = []
    block: dict[str, str] | None = None
    block_line = 0

    def close() -> None:
        if block is not None:
            conf = _finish(block, problems, f"{source}:{block_line}")
            if conf is not None:
                peers[conf.public_key] = conf

    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("["):
            close()
            block = {} if line.lower() == "[peer]" else None
            block_line = lineno
            continue
        if block is None or not line:
            continue
        if line.startswith(("#", ";")):
            setting = _comment_setting(line)
            if setting and setting[0] in ("friendly_name", "friendly_json"):
                block["#" + setting[0]] = setting[1]
            continue
        key, sep, value = line.partition("=")
        key = key.strip().lower()
        if sep and key in ("publickey", "endpoint"):
            # Keys are base64 and end in '='; partition on the first '=' keeps them whole.
            block[key] = value.split("#", 1)[0].strip()
    close()
    return peers, problems


def load_interface_conf(config_dir: Path, ifname: str) -> dict[str, PeerConf]:
    """Read ``<config_dir>/<ifname>.conf``; a missing or unreadable file means no extra facts."""
    from wgtrack.dump import valid_ifname

    if not valid_ifname(ifname):  # never let a name from outside walk out of config_dir
        log.warning("not reading a wg config for interface %r: not a valid interface name", ifname)
        return {}
    path = config_dir / f"{ifname}.conf"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("cannot read %s: %s", path, exc.strerror)
        return {}
    peers, problems = parse_wg_quick(text, str(path))
    for problem in problems:
        log.warning("%s", problem)
    return peers
