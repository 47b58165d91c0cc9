"""A throwaway PostgreSQL server for tests when CI has not exported MLESTAR_TEST_POSTGRES_URL.

``start(folder)`` runs ``initdb`` and ``pg_ctl`` from the installed PostgreSQL
(as the ``postgres`` user when this process is root, which PostgreSQL refuses
to run as) with the data folder under ``folder``, listening on 127.0.0.1 on a
free port, and creates a database. It returns a :class:`Server`, or a string
saying why it could not.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Server:
    """A running server; ``stop()`` shuts it down."""

    url: str
    data_dir: Path
    bin_dir: Path
    prefix: list[str]

    def stop(self) -> None:
        subprocess.run([*self.prefix, str(self.bin_dir / "pg_ctl"), "-D", str(self.data_dir), "-m", "immediate",
                        "stop"], capture_output=True, timeout=60)


def _bin_dir() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(os.path.realpath(found)).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(candidates[-1]).parent if candidates else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(folder: Path) -> Server | str:
    """Start a server with its files in ``folder`` (must be reachable by the postgres user)."""
    bin_dir = _bin_dir()
    if bin_dir is None:
        return "no PostgreSQL installation (initdb not found)"
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "running as root without runuser to switch to the postgres user"
        prefix = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres")
    data, port = folder / "data", _free_port()
    steps = [[str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"],
             [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"), "-w", "-o",
              f"-p {port} -k {folder} -c listen_addresses=127.0.0.1", "start"],
             [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "mlestar_test"]]
    for step in steps:
        done = subprocess.run([*prefix, *step], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            return f"{Path(step[0]).name} failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return Server(f"postgresql+psycopg2://postgres@127.0.0.1:{port}/mlestar_test", data, bin_dir, prefix)
