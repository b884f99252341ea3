"""A real WireGuard lab: wireguard-go peers in network namespaces, a bridge, and dnsmasq.

Used by the lab tests and by ``make demo``. Everything it makes carries a per-run prefix;
``close()`` kills only the PIDs it started and deletes only its own namespaces and
/etc/netns entries. Underlay 198.51.100.0/24, tunnel 192.0.2.0/24, names under ``.test``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DNS_IP = "198.51.100.53"
MON_UNDERLAY = "198.51.100.1"
MON_TUNNEL = "192.0.2.1"
WG_PORT = 51820
STALE_IP = "198.51.100.254"  # nobody has it: where a stale endpoint points


def run(*args: str, check: bool = True, timeout: float = 20, input: str | None = None) -> str:
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout


def wait_until(what: str, predicate, timeout: float = 20.0, interval: float = 0.2):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns something truthy; bounded in time and count."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 2):
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            break
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")


@dataclass
class Host:
    name: str  # short name: mon, a, b ...
    ns: str
    underlay: str
    tunnel: str
    private_key_file: Path
    public_key: str
    wg_pid: int = 0

    @property
    def tunnel6(self) -> str:
        """The IPv6 tunnel address: fd00:2:: plus the IPv4 tunnel address's last byte."""
        return f"fd00:2::{self.tunnel.rsplit('.', 1)[1]}"


class Lab:
    """Build with ``Lab().build()``; always ``close()`` (it is also a context manager)."""

    def __init__(self, peers: tuple[str, ...] = ("a", "b", "c"), hostname_peer: str = "a",
                 mon_wg_user: int | None = None) -> None:
        self.prefix = f"wgt{os.getpid() % 0xFFFF:x}{secrets.token_hex(2)}-"
        self.dir = Path(tempfile.mkdtemp(prefix=self.prefix))
        self.procs: list[subprocess.Popen[bytes]] = []
        self.namespaces: list[str] = []
        self.peer_names = peers
        self.hostname_peer = hostname_peer
        self.hosts: dict[str, Host] = {}
        self.wg_config_dir = self.dir / "wireguard"
        self.dns_records: dict[str, str] = {}
        self._dnsmasq: subprocess.Popen[bytes] | None = None
        # mon's wireguard-go as this uid (with CAP_NET_ADMIN only): its UAPI socket is then that
        # user's, which is how an unprivileged wgtrack reaches a userspace interface.
        self.mon_wg_user = mon_wg_user

    # ---- building ----

    def __enter__(self) -> Lab:
        return self.build()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _key(self, name: str) -> tuple[Path, str]:
        private = run("wg", "genkey").strip()
        path = self.dir / f"{name}.key"
        path.write_text(private + "\n")
        path.chmod(0o600)
        return path, run("wg", "pubkey", input=private + "\n").strip()

    def _ns(self, short: str) -> str:
        ns = self.prefix + short
        run("ip", "netns", "add", ns)
        self.namespaces.append(ns)
        run("ip", "-n", ns, "link", "set", "lo", "up")
        return ns

    def build(self) -> Lab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def _build(self) -> None:
        Path("/var/run/wireguard").mkdir(parents=True, exist_ok=True)
        self.wg_config_dir.mkdir()
        lan = self._ns("lan")
        run("ip", "-n", lan, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", lan, "addr", "add", f"{DNS_IP}/24", "dev", "br0")
        run("ip", "-n", lan, "link", "set", "br0", "up")
        names = ("mon", *self.peer_names)
        for index, short in enumerate(names):
            underlay = MON_UNDERLAY if short == "mon" else f"198.51.100.{11 + index - 1}"
            tunnel = MON_TUNNEL if short == "mon" else f"192.0.2.{11 + index - 1}"
            keyfile, pub = self._key(short)
            self.hosts[short] = Host(short, "", underlay, tunnel, keyfile, pub)
        for record_peer in self.peer_names:
            if record_peer == self.hostname_peer:
                self.dns_records[f"{record_peer}.lab.test"] = self.hosts[record_peer].underlay
        self._start_dns()
        for index, host in enumerate(self.hosts.values()):
            self._host(lan, host, index)
        self._configure_wireguard()
        self._write_wg_quick_conf()

    def _start_dns(self) -> None:
        lan = self.prefix + "lan"
        args = ["ip", "netns", "exec", lan, "dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts",
                "--conf-file=/dev/null", f"--listen-address={DNS_IP}", "--bind-interfaces",
                "--local=/test/", "--pid-file=", "--user=root", "--cache-size=0", "--log-facility=-"]
        args += [f"--host-record={name},{ip}" for name, ip in self.dns_records.items()]
        self._dnsmasq = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(self._dnsmasq)

    def set_dns(self, name: str, ip: str) -> None:
        """Change a DNS record: dnsmasq is restarted with the new records."""
        self.dns_records[name] = ip
        if self._dnsmasq is not None:
            self._stop(self._dnsmasq)
        self._start_dns()

    def _host(self, lan: str, host: Host, index: int) -> None:
        host.ns = self._ns(host.name)
        # resolv.conf must exist before the namespace's processes start.
        netns_etc = Path("/etc/netns") / host.ns
        netns_etc.mkdir(parents=True, exist_ok=True)
        (netns_etc / "resolv.conf").write_text(f"nameserver {DNS_IP}\n")
        (netns_etc / "hosts").write_text("127.0.0.1 localhost\n")
        veth = f"v{index}"
        run("ip", "-n", lan, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", host.ns)
        run("ip", "-n", lan, "link", "set", veth, "master", "br0", "up")
        run("ip", "-n", host.ns, "addr", "add", f"{host.underlay}/24", "dev", "eth0")
        run("ip", "-n", host.ns, "link", "set", "eth0", "up")
        host.wg_pid = self._start_wireguard_go(host.ns, "wg0", self.mon_wg_user if host.name == "mon" else None)
        run("ip", "-n", host.ns, "addr", "add", f"{host.tunnel}/24", "dev", "wg0")
        run("ip", "-n", host.ns, "addr", "add", f"{host.tunnel6}/64", "dev", "wg0", "nodad")
        run("ip", "-n", host.ns, "link", "set", "wg0", "up")

    def _start_wireguard_go(self, ns: str, ifname: str, user: int | None = None) -> int:
        # A directory of its own on /var/run/wireguard per namespace keeps each UAPI socket apart;
        # from outside it is reachable at ``run_dir(host)`` (a container mounts it there).
        run_dir = self.run_dir(ns.removeprefix(self.prefix))
        run_dir.mkdir(mode=0o755)
        if user is not None:
            os.chown(run_dir, user, user)
        script = f"mount --bind {run_dir} /var/run/wireguard && "
        if user is not None:
            # /dev/net/tun is 0666 on Debian (udev); this machine has it 0600, so the namespace
            # gets a node of its own with Debian's mode.
            script += ("mount -t tmpfs -o mode=755 tmpfs /dev/net && mknod -m 666 /dev/net/tun c 10 200 && "
                       f"exec setpriv --reuid={user} --regid={user} --clear-groups --inh-caps=+net_admin "
                       "--ambient-caps=+net_admin --bounding-set=-all,+net_admin ")
        else:
            script += "exec "
        script += f"wireguard-go -f {ifname}"
        log = self.dir / f"wireguard-go-{ns}-{ifname}.log"
        with open(log, "wb") as err:
            proc = subprocess.Popen(["ip", "netns", "exec", ns, "unshare", "-m", "--propagation", "private",
                                     "sh", "-c", script], stdout=subprocess.DEVNULL, stderr=err,
                                    env={**os.environ, "WG_PROCESS_FOREGROUND": "1"})
        self.procs.append(proc)
        sock = Path(f"/proc/{proc.pid}/root/run/wireguard/{ifname}.sock")
        wait_until(f"wireguard-go {ifname} in {ns}", lambda: sock.exists() or proc.poll() is not None, 10)
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise RuntimeError(f"wireguard-go in {ns} exited {proc.returncode}: {' / '.join(tail)}")
        return proc.pid

    def run_dir(self, host: str) -> Path:
        """``host``'s /var/run/wireguard (its wireguard-go sockets) as seen from outside."""
        return self.dir / f"run-{host}"

    def add_interface(self, ifname: str) -> subprocess.Popen[bytes]:
        """Start another wireguard-go interface in mon's namespaces (seen by the daemon)."""
        mon = self.hosts["mon"]
        proc = subprocess.Popen(["nsenter", "-t", str(mon.wg_pid), "-m", "-n", "wireguard-go", "-f", ifname],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        sock = Path(f"/proc/{mon.wg_pid}/root/run/wireguard/{ifname}.sock")
        wait_until(f"wireguard-go {ifname}", lambda: sock.exists() or proc.poll() is not None, 10)
        key, _pub = self._key(ifname)
        self.wg("mon", "set", ifname, "private-key", str(key), "listen-port", "51999")
        return proc

    def _configure_wireguard(self) -> None:
        mon = self.hosts["mon"]
        self.wg("mon", "set", "wg0", "private-key", str(mon.private_key_file), "listen-port", str(WG_PORT))
        for short in self.peer_names:
            peer = self.hosts[short]
            self.wg(short, "set", "wg0", "private-key", str(peer.private_key_file), "listen-port", str(WG_PORT),
                    "peer", mon.public_key, "allowed-ips", "192.0.2.0/24,fd00:2::/64",
                    "endpoint", f"{MON_UNDERLAY}:{WG_PORT}")
            self.wg("mon", "set", "wg0", "peer", peer.public_key, "allowed-ips", f"{peer.tunnel}/32,{peer.tunnel6}/128",
                    "endpoint", f"{peer.underlay}:{WG_PORT}")

    def _write_wg_quick_conf(self) -> None:
        mon = self.hosts["mon"]
        lines = ["[Interface]", f"PrivateKey = {mon.private_key_file.read_text().strip()}",
                 f"Address = {MON_TUNNEL}/24", f"ListenPort = {WG_PORT}", ""]
        for short in self.peer_names:
            peer = self.hosts[short]
            endpoint = f"{short}.lab.test" if short == self.hostname_peer else peer.underlay
            lines += ["[Peer]", f"# friendly_name = peer-{short}", f"PublicKey = {peer.public_key}",
                      f"AllowedIPs = {peer.tunnel}/32", f"Endpoint = {endpoint}:{WG_PORT}", ""]
        (self.wg_config_dir / "wg0.conf").write_text("\n".join(lines))

    # ---- using ----

    def wg(self, host: str, *args: str, timeout: float = 10) -> str:
        pid = self.hosts[host].wg_pid
        return run("nsenter", "-t", str(pid), "-m", "-n", "wg", *args, timeout=timeout)

    def exec(self, host: str, *args: str, check: bool = True, timeout: float = 20) -> str:
        return run("ip", "netns", "exec", self.hosts[host].ns, *args, check=check, timeout=timeout)

    def http_get(self, host: str, url: str, timeout: float = 10) -> str:
        """GET ``url`` from inside ``host``'s network namespace (where the lab's servers are)."""
        code = ("import sys, urllib.request as u; o = u.build_opener(u.ProxyHandler({})); "
                "sys.stdout.write(o.open(sys.argv[1], timeout=float(sys.argv[2])).read().decode())")
        return run("ip", "netns", "exec", self.hosts[host].ns, sys.executable, "-c", code, url, str(timeout - 1),
                   timeout=timeout)

    def ping(self, host: str, target: str) -> bool:
        proc = subprocess.run(["ip", "netns", "exec", self.hosts[host].ns, "ping", "-c1", "-W1", "-q", target],
                              capture_output=True, timeout=5)
        return proc.returncode == 0

    def handshake(self, peer: str, timeout: float = 20) -> None:
        """Make mon and ``peer`` complete a handshake (the first can take one 5 s retransmit)."""
        target = self.hosts[peer].tunnel
        wait_until(f"a tunnel ping mon -> {peer}", lambda: self.ping("mon", target), timeout, interval=0.1)

    def blackhole(self, host: str) -> None:
        """Drop all WireGuard UDP to and from ``host`` (nftables inside its namespace)."""
        rules = (f"table inet {self.prefix[:-1]}blk {{\n"
                 f"  chain i {{ type filter hook input priority 0; udp dport {WG_PORT} drop; }}\n"
                 f"  chain o {{ type filter hook output priority 0; udp sport {WG_PORT} drop; }}\n}}\n")
        run("ip", "netns", "exec", self.hosts[host].ns, "nft", "-f", "-", input=rules)

    def heal(self, host: str) -> None:
        self.exec(host, "nft", "delete", "table", "inet", f"{self.prefix[:-1]}blk")

    def move_underlay(self, host: str, new_ip: str, *, roam: bool = False, restart: bool = False) -> None:
        """Give ``host`` a new underlay address (a dynamic-IP change).

        By default the host's own idea of mon's address goes stale too (both sides dynamic):
        it keeps its session but cannot reach mon, so only mon can re-establish the link, by
        re-resolving. With ``roam`` it re-binds its socket (a new NAT port) and can speak first.
        With ``restart`` its WireGuard restarted too: the session is gone and mon must handshake.
        """
        h = self.hosts[host]
        run("ip", "-n", h.ns, "addr", "del", f"{h.underlay}/24", "dev", "eth0")
        run("ip", "-n", h.ns, "addr", "add", f"{new_ip}/24", "dev", "eth0")
        h.underlay = new_ip
        mon = self.hosts["mon"].public_key
        if roam:
            # wireguard-go keeps sending from the vanished source address until it re-binds.
            self.wg(host, "set", "wg0", "listen-port", str(WG_PORT + 1))
        elif restart:
            self.wg(host, "set", "wg0", "peer", mon, "remove")
            self.wg(host, "set", "wg0", "peer", mon, "allowed-ips", "192.0.2.0/24,fd00:2::/64")
        else:
            self.wg(host, "set", "wg0", "peer", mon, "endpoint", f"{STALE_IP}:{WG_PORT}")

    def blackhole_dns(self) -> None:
        """Drop every DNS query to dnsmasq: a dead DNS server."""
        rules = (f"table inet {self.prefix[:-1]}dns {{\n"
                 f"  chain i {{ type filter hook input priority 0; udp dport 53 drop; tcp dport 53 drop; }}\n}}\n")
        run("ip", "netns", "exec", self.prefix + "lan", "nft", "-f", "-", input=rules)

    def heal_dns(self) -> None:
        run("ip", "netns", "exec", self.prefix + "lan", "nft", "delete", "table", "inet", f"{self.prefix[:-1]}dns")

    def endpoint_of(self, peer: str) -> str:
        """mon's current endpoint for ``peer``, as WireGuard reports it."""
        for line in self.wg("mon", "show", "wg0", "endpoints").splitlines():
            key, _, endpoint = line.partition("\t")
            if key == self.hosts[peer].public_key:
                return endpoint
        raise KeyError(peer)

    def daemon(self, config: Path, *args: str, stderr: Path | None = None, stdout: Path | None = None,
               python: str = sys.executable, pythonpath: bool = True) -> subprocess.Popen[bytes]:
        """Run ``python -m wgtrack`` inside mon's network and mount namespaces."""
        env = {**os.environ, "PYTHONPATH": str(REPO)} if pythonpath else dict(os.environ)
        argv = ["nsenter", "-t", str(self.hosts["mon"].wg_pid), "-m", "-n",
                python, "-m", "wgtrack", "-c", str(config), *args]
        with contextlib.ExitStack() as files:
            out = files.enter_context(open(stdout, "ab")) if stdout else subprocess.DEVNULL
            err = files.enter_context(open(stderr, "ab")) if stderr else subprocess.DEVNULL
            proc = subprocess.Popen(argv, stdout=out, stderr=err, env=env)
        self.procs.append(proc)
        return proc

    def spawn_in_mon(self, argv: list[str], stdout: Path | None = None,
                     stderr: Path | None = None) -> subprocess.Popen[bytes]:
        """Run ``argv`` in mon's network and mount namespaces; the lab kills it on close."""
        with contextlib.ExitStack() as files:
            out = files.enter_context(open(stdout, "ab")) if stdout else subprocess.DEVNULL
            err = files.enter_context(open(stderr, "ab")) if stderr else subprocess.DEVNULL
            proc = subprocess.Popen(["nsenter", "-t", str(self.hosts["mon"].wg_pid), "-m", "-n", *argv],
                                    stdout=out, stderr=err)
        self.procs.append(proc)
        return proc

    def handshake_time(self, peer: str) -> int:
        """mon's latest handshake with ``peer``, epoch seconds (0 = never)."""
        for line in self.wg("mon", "show", "wg0", "latest-handshakes").splitlines():
            key, _, value = line.partition("\t")
            if key == self.hosts[peer].public_key:
                return int(value)
        raise KeyError(peer)

    # ---- tearing down ----

    @staticmethod
    def _stop(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)

    def close(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                self._stop(proc)
        self.procs.clear()
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
            shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)
        self.namespaces.clear()
        shutil.rmtree(self.dir, ignore_errors=True)
