"""Re-resolves endpoint hostnames: the hosts file first, then DNS with dnspython's async
resolver. Every query has a timeout; failures are results, never exceptions."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from wgtrack import lazydns
from wgtrack.link import ResolveResult
from wgtrack.model import is_ip_literal
from wgtrack.redact import redact_text
from wgtrack.workers import Workers

if TYPE_CHECKING:
    import dns.asyncresolver

log = logging.getLogger(__name__)
_FILES = Workers("resolve-files")  # the hosts file and resolv.conf


def parse_hosts(text: str, hostname: str) -> tuple[str, ...]:
    """Addresses the hosts-file text gives ``hostname``, in file order."""
    wanted = hostname.lower().rstrip(".")
    found: list[str] = []
    for line in text.splitlines():
        fields = line.split("#", 1)[0].split()
        names = (f.lower().rstrip(".") for f in fields[1:])
        if len(fields) >= 2 and wanted in names and is_ip_literal(fields[0]) and fields[0] not in found:
            found.append(fields[0])
    return tuple(found)


def _read_hosts(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


class Resolver:
    """One per daemon config; the DNS resolver is built off the loop on first use."""

    def __init__(self, hosts_file: Path, timeout_s: float) -> None:
        self.hosts_file = hosts_file
        self.timeout_s = timeout_s
        self._dns: dns.asyncresolver.Resolver | None = None

    async def _resolver(self) -> dns.asyncresolver.Resolver:
        import dns.asyncresolver

        if self._dns is None:
            # Reading /etc/resolv.conf is file I/O: not on the loop.
            self._dns = await _FILES.run(dns.asyncresolver.Resolver, timeout_s=5.0)
        return self._dns

    async def resolve(self, hostname: str) -> ResolveResult:
        try:
            hosts = await _FILES.run(_read_hosts, self.hosts_file, timeout_s=5.0)
        except TimeoutError:
            hosts = ""
        from_hosts = parse_hosts(hosts, hostname)
        if from_hosts:
            return ResolveResult(from_hosts)
        try:
            await lazydns.load()
        except TimeoutError:
            return ResolveResult(error="loading dnspython timed out")
        import dns.resolver

        try:
            resolver = await self._resolver()
        except (dns.resolver.NoResolverConfiguration, OSError, TimeoutError) as exc:
            return ResolveResult(error=f"no DNS configuration: {exc}")
        answers = await asyncio.gather(*(self._query(resolver, hostname, rdtype) for rdtype in ("A", "AAAA")))
        addresses = tuple(a for found, _ in answers for a in found)
        if addresses:
            return ResolveResult(addresses)
        errors = [err for _, err in answers if err]
        return ResolveResult(error=errors[0] if errors else "no A or AAAA records")

    async def _query(self, resolver: dns.asyncresolver.Resolver, hostname: str,
                     rdtype: str) -> tuple[tuple[str, ...], str | None]:
        import dns.exception
        import dns.resolver

        try:
            # The outer wait_for is a second guard: lifetime bounds dnspython's own retries.
            answer = await asyncio.wait_for(resolver.resolve(hostname, rdtype, lifetime=self.timeout_s,
                                                             search=False),
                                            self.timeout_s + 1.0)
        except dns.resolver.NXDOMAIN:
            return (), "NXDOMAIN"
        except dns.resolver.NoAnswer:
            return (), None
        except dns.resolver.NoNameservers:
            return (), "SERVFAIL (no name server answered)"
        except (dns.exception.Timeout, TimeoutError):
            return (), f"DNS timeout after {self.timeout_s:g} s"
        except dns.exception.DNSException as exc:
            return (), f"DNS error: {redact_text(str(exc))}"
        return tuple(rr.to_text() for rr in answer), None
