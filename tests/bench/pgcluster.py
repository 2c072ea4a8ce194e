"""A PostgreSQL cluster of the bench's own (Debian's server binaries), pinned off the measured
core: the API's database work then never competes with the process under test, and other work
on the machine's shared server cannot slow the measured queries. Started with ``initdb`` in
``var/bench``; stopped and left on disk at the end (``make clean`` removes it)."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
from pathlib import Path

from tests.bench.services import OTHER_CORE, free_port, port_open, wait_until


def server_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with ``initdb``, else ``initdb`` on
    the PATH."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    exe = shutil.which("initdb")
    return Path(exe).parent if exe else None


class PostgresCluster:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.bindir = server_bindir()

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_owner(self) -> list[str]:
        """As root, the server runs as ``postgres`` (initdb refuses root)."""
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def start(self) -> PostgresCluster:
        if self.bindir is None:
            raise RuntimeError("no PostgreSQL server binaries (Debian package postgresql)")
        data = self.workdir / "pgdata"
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir(parents=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.workdir, owner.pw_uid, owner.pw_gid)
            os.chown(data, owner.pw_uid, owner.pw_gid)
        log = (self.workdir / "postgres.log").open("wb")
        subprocess.run(
            [*self._as_owner(), str(self.bindir / "initdb"), "-D", str(data), "-U", "postgres",
             "-A", "trust", "-E", "UTF8", "--no-sync"],
            check=True, stdout=log, stderr=subprocess.STDOUT, timeout=120,
        )  # fmt: skip
        self.proc = subprocess.Popen(
            ["taskset", "-c", OTHER_CORE, *self._as_owner(), str(self.bindir / "postgres"),
             "-D", str(data), "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
             "-c", "unix_socket_directories=", "-c", "max_connections=300",
             # the API's CPU is measured, not the disk: a commit waiting on fsync would idle
             # the API at a rate set by the disk and make its CPU per request vary with it
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        wait_until(self.ready, 60, "bench PostgreSQL")
        return self

    def ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"bench PostgreSQL exited: see {self.workdir / 'postgres.log'}")
        assert self.bindir is not None
        check = [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        return port_open("127.0.0.1", self.port) and subprocess.run(check).returncode == 0

    def stop(self) -> None:
        """Fast shutdown of the postmaster itself (its pid is in ``postmaster.pid``: the process
        we started may be ``runuser``, which does not pass signals on)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        pidfile = self.workdir / "pgdata" / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
