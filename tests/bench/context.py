"""What every phase shares: the configuration, the bench's own services (Redis, the OTLP sink,
the target site, PostgreSQL databases) and a place for raw output (``var/bench``)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench.pgcluster import PostgresCluster
from tests.bench.procs import ROOT
from tests.bench.services import (
    OTHER_CORE,
    PostgresDatabases,
    RedisServer,
    free_port,
    port_open,
    wait_until,
)
from tests.bench.variants import Variant, app_env
from tests.bench.wrk import Wrk

PHASES = ("api", "instructions", "worker", "work", "health", "memory")


@dataclass(frozen=True)
class Config:
    quick: bool
    rounds: int  # API, PostgreSQL (where the targets are judged)
    sqlite_rounds: int  # API, SQLite (reported, not judged)
    worker_rounds: int
    api_seconds: int  # one measured wrk run (wrk takes whole seconds)
    connections: int
    count_requests: int  # requests per endpoint while counting spans, SQL, ...
    worker_pages: int  # pages of one worker-variant job
    job_sizes: tuple[int, ...]
    work_window_s: float  # longest measured window of a cost-against-work job
    health_seconds: float  # per condition
    attack_requests: int
    attack_hosts: int
    soak_seconds: float
    profile_seconds: float
    phases: tuple[str, ...] = PHASES

    @classmethod
    def make(cls, quick: bool, phases: tuple[str, ...] = PHASES) -> Config:
        if quick:
            return cls(
                quick=True, rounds=2, sqlite_rounds=2, worker_rounds=2, api_seconds=1,
                connections=16, count_requests=40, worker_pages=60, job_sizes=(50, 400, 2000),
                work_window_s=8.0, health_seconds=5.0, attack_requests=1500, attack_hosts=100,
                soak_seconds=15.0, profile_seconds=3.0, phases=phases,
            )  # fmt: skip
        return cls(
            quick=False, rounds=4, sqlite_rounds=2, worker_rounds=4, api_seconds=1,
            connections=16, count_requests=100, worker_pages=120, job_sizes=(50, 400, 2000),
            work_window_s=10.0, health_seconds=6.0, attack_requests=2000, attack_hosts=300,
            soak_seconds=20.0, profile_seconds=4.0, phases=phases,
        )  # fmt: skip


@dataclass
class Bench:
    config: Config
    workdir: Path
    postgres_admin_url: str | None  # None: a cluster of the bench's own
    redis: RedisServer | None = None
    cluster: PostgresCluster | None = None
    postgres_note: str = ""
    sink_port: int = 0
    site_port: int = 0
    postgres: PostgresDatabases | None = None
    wrk: Wrk | None = None
    _helpers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> Bench:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.redis = RedisServer(self.workdir / "redis").start()
        self.sink_port = free_port()
        self.site_port = free_port()
        self._helper("sink", ["tests.bench.sink", "--port", str(self.sink_port)])
        self._helper("site", ["tests.bench.site", "--port", str(self.site_port)])
        wait_until(lambda: port_open("127.0.0.1", self.sink_port), 20, "OTLP sink")
        wait_until(lambda: port_open("127.0.0.1", self.site_port), 20, "target site")
        admin_url = self.postgres_admin_url or self._own_cluster()
        self.postgres = PostgresDatabases(admin_url)
        if not self.postgres.available():
            raise RuntimeError(f"PostgreSQL is not reachable at {admin_url} (BENCH_POSTGRES_URL)")
        self.wrk = Wrk(self.workdir / "wrk")
        return self

    def _own_cluster(self) -> str:
        """A dedicated cluster pinned off the measured core; the local shared server when
        this machine has no PostgreSQL server binaries."""
        cluster = PostgresCluster(self.workdir / "pg")
        if cluster.bindir is None:
            self.postgres_note = "the shared server (no server binaries for a cluster of its own)"
            return shared_postgres_url()
        self.cluster = cluster.start()
        version = cluster.bindir.parent.name
        self.postgres_note = (
            f"a cluster of its own (PostgreSQL {version}, defaults but fsync, synchronous_commit "
            f"and full_page_writes off: the API's CPU is measured, not the disk; pinned to core "
            f"{OTHER_CORE})"
        )
        return cluster.admin_url

    def _helper(self, name: str, module_args: list[str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        self._helpers.append(
            subprocess.Popen(
                ["taskset", "-c", OTHER_CORE, sys.executable, "-m", *module_args],
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )

    def close(self) -> None:
        for p in self._helpers:
            p.terminate()
        for p in self._helpers:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=5)
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.drop_all()
        if self.cluster is not None:
            self.cluster.stop()

    # ------------------------------------------------------------------ shared helpers

    @property
    def sink_url(self) -> str:
        return f"http://127.0.0.1:{self.sink_port}"

    def site_url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.site_port}{path}"

    def sink_stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.sink_url + "/stats", timeout=30) as r:
            data: dict[str, Any] = json.loads(r.read())
            return data

    def sink_reset(self) -> None:
        req = urllib.request.Request(self.sink_url + "/reset", method="POST", data=b"")
        with urllib.request.urlopen(req, timeout=30):
            pass

    def database(self, kind: str, label: str) -> str:
        if kind == "postgres":
            assert self.postgres is not None
            return self.postgres.new(label)
        path = self.workdir / "sqlite" / label
        path.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path / 'trawl.db'}"

    def env(
        self,
        variant: Variant,
        database_url: str,
        label: str,
        extra: dict[str, str] | None = None,
        prefix: str | None = None,
    ) -> dict[str, str]:
        """One process's environment; an API and its workers share ``label`` and ``prefix``."""
        assert self.redis is not None
        data_dir = self.workdir / "data" / label
        data_dir.mkdir(parents=True, exist_ok=True)
        return app_env(
            database_url=database_url,
            redis_url=self.redis.url,
            prefix=prefix or f"bench-{label}-{uuid.uuid4().hex[:4]}",
            sink_url=self.sink_url,
            data_dir=str(data_dir),
            variant=variant,
            extra=extra,
        )

    def log(self, message: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        print(f"[bench {stamp}] {message}", file=sys.stderr, flush=True)


def default_postgres_url() -> str | None:
    """``BENCH_POSTGRES_URL`` (an admin URL of a server to create databases on), else None:
    the bench starts a cluster of its own."""
    return os.environ.get("BENCH_POSTGRES_URL") or None


def shared_postgres_url() -> str:
    return os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
