"""What the daemon loads, and what it leaves alone: a module loaded is RSS kept for good
(docs/scale.md, "Memory at a hub")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.lab import REPO
from tests.test_prometheus import make_cert

# The modules a default config's daemon imports, and its argument parser as it is built.
DAEMON = ("import sys, wgtrack.daemon, wgtrack.outputs.json_status, wgtrack.outputs.influx_file, wgtrack.cli; "
          "wgtrack.cli.build_parser().parse_args(['-c', '/dev/null']); ")


def _loaded(code: str) -> list[str]:
    done = subprocess.run([sys.executable, "-c", DAEMON + code], capture_output=True, text=True, timeout=60,
                          cwd=REPO, check=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)})
    return done.stdout.split()


def test_without_a_history_store_sqlite_is_never_loaded() -> None:
    """A store that is switched off costs no RSS (sqlite: 1.3 MB measured); the store loads it."""
    assert _loaded("print('sqlite3' in sys.modules); import wgtrack.history.store; "
                   "print('sqlite3' in sys.modules)") == ["False", "True"]


def test_the_argument_parser_loads_no_shutil() -> None:
    """argparse asks shutil for the terminal's width unless told it (shutil brings bz2 and lzma:
    0.5 MB); the help is still wrapped to COLUMNS."""
    assert _loaded("print('shutil' in sys.modules, 'bz2' in sys.modules)") == ["False", "False"]
    done = subprocess.run([sys.executable, "-m", "wgtrack", "--help"], capture_output=True, text=True, timeout=60,
                          cwd=REPO, check=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO), "COLUMNS": "50"})
    assert max(map(len, done.stdout.splitlines())) <= 50 and "--check-config" in done.stdout


def test_openssl_loads_only_when_tls_is_used(tmp_path: Path) -> None:
    """asyncio would load OpenSSL as it is imported (3.3 MB of RSS at a hub). A default daemon
    does not load it; TLS through asyncio (an HTTPS output, a TLS check) still works, and loads
    it then."""
    make_cert(tmp_path)
    tls = f"""
print('_ssl' in sys.modules)
import asyncio, ssl
async def main():
    server_side = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_side.load_cert_chain({str(tmp_path / 'cert.pem')!r}, {str(tmp_path / 'key.pem')!r})
    async def echo(reader, writer):
        writer.write(await reader.readline()); await writer.drain(); writer.close()
    server = await asyncio.start_server(echo, '127.0.0.1', 0, ssl=server_side)
    port = server.sockets[0].getsockname()[1]
    client_side = ssl.create_default_context(cafile={str(tmp_path / 'cert.pem')!r})
    reader, writer = await asyncio.wait_for(asyncio.open_connection('127.0.0.1', port, ssl=client_side,
                                                                    server_hostname='localhost'), 10)
    writer.write(b'over-tls\\n'); await writer.drain()
    print((await asyncio.wait_for(reader.readline(), 10)).decode().strip(), writer.get_extra_info('cipher') is not None)
    writer.close(); server.close()
asyncio.run(main())
print('_ssl' in sys.modules)
"""
    assert _loaded(tls) == ["False", "over-tls", "True", "True"]


def test_a_stand_in_is_not_put_over_a_loaded_or_missing_module() -> None:
    """The stand-in only defers: a module loaded already stays the module, and a name that
    cannot be found still fails to import as it would have."""
    assert _loaded("from wgtrack import deferred; import json; deferred.defer('json'); "
                   "print(sys.modules['json'] is json); deferred.defer('no_such_module_here'); "
                   "print('no_such_module_here' in sys.modules)") == ["True", "False"]
