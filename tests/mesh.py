"""A fleet lab: four hosts in a full WireGuard mesh (wireguard-go in network namespaces), each
to run its own wgtrack. Built on ``Lab``: "mon" is host h1, the other three are h2-h4."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

from tests.lab import REPO, WG_PORT, Lab, wait_until

HOSTS = ("mon", "h2", "h3", "h4")


def host_name(short: str) -> str:
    return "h1" if short == "mon" else short


class Mesh(Lab):
    """Every host peers with every other; ``conf_dir(host)`` holds its wg-quick config."""

    def __init__(self) -> None:
        super().__init__(peers=HOSTS[1:], hostname_peer="")

    def _configure_wireguard(self) -> None:
        for short, host in self.hosts.items():
            self.wg(short, "set", "wg0", "private-key", str(host.private_key_file), "listen-port", str(WG_PORT))
            for other_short, other in self.hosts.items():
                if other_short != short:
                    self.wg(short, "set", "wg0", "peer", other.public_key, "allowed-ips", f"{other.tunnel}/32",
                            "endpoint", f"{other.underlay}:{WG_PORT}", "persistent-keepalive", "5")

    def _write_wg_quick_conf(self) -> None:
        for short in self.hosts:
            lines = ["[Interface]", f"ListenPort = {WG_PORT}", ""]
            for other_short, other in self.hosts.items():
                if other_short != short:
                    lines += ["[Peer]", f"# friendly_name = {host_name(other_short)}",
                              f"PublicKey = {other.public_key}", f"AllowedIPs = {other.tunnel}/32",
                              f"Endpoint = {other.underlay}:{WG_PORT}", ""]
            self.conf_dir(short).mkdir(parents=True, exist_ok=True)
            (self.conf_dir(short) / "wg0.conf").write_text("\n".join(lines))

    def conf_dir(self, short: str) -> Path:
        return self.dir / f"wg-{short}"

    def all_handshakes(self) -> None:
        """Every pair completes a handshake (the first can take one 5 s retransmit)."""
        for short, host in self.hosts.items():
            for other in self.hosts.values():
                if other is not host:
                    wait_until(f"a tunnel ping {short} -> {other.name}",
                               lambda s=short, o=other: self.ping(s, o.tunnel), 20, interval=0.1)

    def spawn_in_lan(self, argv: list[str], stderr: Path) -> subprocess.Popen[bytes]:
        """Run ``argv`` in the lan namespace (it reaches every host's underlay); killed on close."""
        with open(stderr, "ab") as err:
            proc = subprocess.Popen(["ip", "netns", "exec", self.prefix + "lan", *argv], stdout=subprocess.DEVNULL,
                                    stderr=err)
        self.procs.append(proc)
        return proc

    def wgtrack(self, short: str, config: Path, log: Path) -> subprocess.Popen[bytes]:
        """``python -m wgtrack`` in ``short``'s network and mount namespaces."""
        argv = ["nsenter", "-t", str(self.hosts[short].wg_pid), "-m", "-n", sys.executable, "-m", "wgtrack",
                "-c", str(config)]
        with contextlib.ExitStack() as files:
            err = files.enter_context(open(log, "ab"))
            proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, env={"PYTHONPATH": str(REPO),
                                                                                     "PATH": "/usr/sbin:/usr/bin:/bin"})
        self.procs.append(proc)
        return proc

    def cut(self, short: str, other: str) -> None:
        """Drop WireGuard between two hosts (both ways), at ``short``'s side."""
        peer = self.hosts[other].underlay
        rules = (f"table inet {self.prefix[:-1]}cut {{\n"
                 f"  chain i {{ type filter hook input priority 0; ip saddr {peer} udp dport {WG_PORT} drop; }}\n"
                 f"  chain o {{ type filter hook output priority 0; ip daddr {peer} udp dport {WG_PORT} drop; }}\n}}\n")
        subprocess.run(["ip", "netns", "exec", self.hosts[short].ns, "nft", "-f", "-"], input=rules, text=True,
                       check=True, timeout=10)

    def uncut(self, short: str) -> None:
        self.exec(short, "nft", "delete", "table", "inet", f"{self.prefix[:-1]}cut")
