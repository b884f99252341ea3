"""The config file's schema: one ``Key`` per key (where it may stand, how its value parses, what
it means: the docs are made from it), the value parsers they share, and ``OutputSpec``, which
an output module declares to be an ``[output:<type>]`` section. Parsing only: no file is read
here, nothing is logged."""

from __future__ import annotations

import configparser
import ipaddress
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wgtrack.events import KINDS
from wgtrack.model import is_ip_literal, split_endpoint


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError("not a number") from None
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return value


def seconds(low: float, high: float, why: str = "") -> Callable[[str], float]:
    """A number of seconds within [low, high]; the error says why the bounds are what they are."""
    def parse(text: str) -> float:
        value = positive_float(text)
        if not low <= value <= high:
            raise ValueError(f"must be from {low:g} to {high:g} s{': ' + why if why else ''}")
        return value

    return parse


def int_between(low: int, high: int, why: str = "") -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int_at_least(low)(text)
        if value > high:
            raise ValueError(f"must be from {low} to {high}{': ' + why if why else ''}")
        return value

    return parse


def int_at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise ValueError("not a whole number") from None
        if value < minimum:
            raise ValueError(f"must be {minimum} or more")
        return value

    return parse


def parse_loglevel(text: str) -> int:
    if text.lstrip("-").isdigit():
        value = int(text)
        if not 0 <= value <= 50:
            raise ValueError("numeric log level must be 0-50")
        return value
    names = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50}
    try:
        return names[text.lower()]
    except KeyError:
        raise ValueError("not a log level (debug, info, warning, error, critical or 0-50)") from None


def seconds_or_off(low: float, high: float) -> Callable[[str], float]:
    """0 (off), or a number of seconds within [low, high]."""
    within = seconds(low, high)

    def parse(text: str) -> float:
        return 0.0 if text.strip() in ("0", "0.0") else within(text)
    return parse


def ratio_or_off(text: str) -> float:
    """A share from 0 (off) to 1: 0.05 or 5%."""
    stripped = text.strip()
    try:
        value = float(stripped[:-1]) / 100 if stripped.endswith("%") else float(stripped)
    except ValueError:
        raise ValueError("not a ratio (0.05, or 5%)") from None
    if not 0 <= value <= 1:
        raise ValueError("must be from 0 (off) to 1")
    return value


def milliseconds_or_off(low: float, high: float) -> Callable[[str], float]:
    """0 (off), or a number of milliseconds within [low, high]."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise ValueError("not a number of milliseconds") from None
        if value != 0 and not low <= value <= high:
            raise ValueError(f"must be 0 (off) or from {low:g} to {high:g} ms")
        return value
    return parse


def boolean(text: str) -> bool:
    states = configparser.ConfigParser.BOOLEAN_STATES
    try:
        return states[text.lower()]
    except KeyError:
        raise ValueError("not a boolean (yes/no, true/false, on/off, 1/0)") from None


def ip_address_text(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise ValueError("not an IPv4 or IPv6 address") from None


def nonempty(text: str) -> str:
    if not text:
        raise ValueError("must not be empty")
    return text


def absolute_path(text: str) -> Path:
    path = Path(nonempty(text))
    if not path.is_absolute():
        raise ValueError("must be an absolute path (the service's working directory is /, and "
                         "ProtectSystem=strict makes relative places unwritable)")
    return path


def file_path(text: str) -> Path:
    path = absolute_path(text)
    if path.is_dir():
        raise ValueError("is a directory; name the file to write")
    return path


def label_value(text: str) -> str:
    if not text or len(text) > 128 or any(c in text for c in '"\\') or not text.isprintable():
        raise ValueError("must be 1-128 printable characters without quotes or backslashes")
    return text


def hostname_endpoint(text: str) -> str:
    host, _port = split_endpoint(text)
    if is_ip_literal(host):
        raise ValueError("names an address; re-resolution needs a hostname")
    return text


def split_listen(text: str) -> tuple[str | None, int]:
    """``:9586`` (every address), ``127.0.0.1:9586``, ``[::1]:9586`` -> (host or None, port)."""
    if text.startswith(":"):
        host, port = None, text[1:]
    elif text.startswith("["):
        inner, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError("IPv6 listen address must look like [::1]:9586")
        host, port = inner, rest[1:]
    else:
        host, sep, port = text.rpartition(":")
        if not sep:
            raise ValueError("must be [host]:port, like :9586 or 127.0.0.1:9586")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("port must be 1-65535")
    if host is not None and host != "localhost" and not is_ip_literal(host):
        raise ValueError("host must be an IP address (or empty for every address)")
    return host, int(port)


def listen_address(text: str) -> str:
    split_listen(text)
    return text


def url_path(text: str) -> str:
    if not text.startswith("/") or " " in text:
        raise ValueError("must be an absolute URL path like /metrics")
    return text


def http_url(text: str) -> str:
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in text):
        raise ValueError("a URL has no spaces or control characters (percent-encode them)")
    try:
        parts = urllib.parse.urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an http:// or https:// URL with a host")
    return text


def url_list(text: str) -> str:
    urls = [part.strip() for part in text.split(",")]
    for one in urls:
        http_url(one)
    if len(set(urls)) != len(urls):
        raise ValueError("names the same URL twice")
    return ", ".join(urls)


def header_value(text: str) -> str:
    """A header value: one line, no control characters (they would smuggle more headers)."""
    if any((ord(c) < 32 and c != "\t") or ord(c) == 127 for c in text):
        raise ValueError("has a control character (a header value is one line)")
    return text


def event_kinds(text: str) -> frozenset[str]:
    kinds = frozenset(k.strip() for k in text.split(",") if k.strip())
    unknown = sorted(kinds - set(KINDS))
    if unknown:
        raise ValueError(f"unknown event kinds {unknown} (known: {', '.join(KINDS)})")
    return kinds


def choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text.lower() not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text.lower()

    return parse


def file_mode(text: str) -> int:
    try:
        value = int(text, 8)
    except ValueError:
        raise ValueError("not an octal file mode like 0644") from None
    if not 0 <= value <= 0o777:
        raise ValueError("file mode must be within 0000-0777")
    return value


@dataclass(frozen=True, slots=True)
class Key:
    """One config key: where it may stand, how it parses, what it means (docs come from here)."""

    name: str
    attr: str
    parse: Callable[[str], Any]
    scopes: frozenset[str]  # "general", "interface", "peer", "output:influx"
    doc: str
    secret: bool = False  # its value is never echoed in errors or --check-config


@dataclass(frozen=True, slots=True)
class PrefixKeys:
    """Keys named ``<prefix><name>`` that gather into one mapping (``header_x_api_key = ...`` ->
    headers ``x-api-key``). Their values are never echoed: they may be tokens."""

    prefix: str
    attr: str
    parse: Callable[[str], str]
    name: Callable[[str], str] = lambda rest: rest


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """What makes an ``[output:<type>]`` section, declared once, in the output's own module:
    its settings (a frozen dataclass whose fields are the keys' attrs), its keys, and the
    factory that builds the output from them (``factory(section, settings)``)."""

    scope: str  # "output:webhook"
    settings: type[Any]
    keys: tuple[Key, ...]
    factory: Callable[[str, Any], Any]
    required: tuple[str, ...] = ()
    repeats: bool = False  # [output:webhook:<name>] as well as [output:webhook]
    prefixed: PrefixKeys | None = None
    # Problems that only the keys together show: (key, why) for each (a user without a password).
    check: Callable[[Mapping[str, Any]], list[tuple[str, str]]] = lambda values: []
    # Fills in what depends on the host the output runs on (a default instance name), so that
    # two plans compare equal exactly when a reload may keep the running output.
    complete: Callable[[Any], Any] = lambda settings: settings
    doc: str = ""


def output_key(name: str, attr: str, parse: Callable[[str], Any], scope: str, doc: str,
               secret: bool = False) -> Key:
    """A key of one output section."""
    return Key(name, attr, parse, frozenset({scope}), doc, secret)


def enabled_key(scope: str) -> Key:
    return output_key("enabled", "enabled", boolean, scope, "turn the output on or off")


def timeout_key(scope: str) -> Key:
    return output_key("timeout", "timeout_s", seconds(0.1, 300, "a stop waits for a request in flight"), scope,
                      "seconds one POST may take")


def filename_key(scope: str) -> Key:
    return output_key("filename", "filename", file_path, scope, "path of the output file")
