"""One lane of the drill: a whole Trawl stack of its own on loopback, without Docker.

PostgreSQL (a throwaway cluster: ``initdb`` in the lane's directory) and redis-server on free
ports, their Debian exporters, the API, two workers and the canary with the SDK's Prometheus
exporter (the scrape path), a target site, two forward proxies in pool ``drill``, a webhook
endpoint, the alert sink (HTTP for Slack and PagerDuty, SMTP for e-mail), Alertmanager with the
configuration grafana/alertmanager/render.py writes, and Prometheus with the repository's rule
files and a scrape configuration derived from grafana/prometheus/prometheus.yml by changing
addresses only. The blackbox and node exporters are shared by the lanes (stateless).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.bench.pgcluster import server_bindir
from tests.drill.procs import ROOT, Proc, Procs, wait_until
from tests.drill.servers import DrillSite, WebhookSink
from tests.support.forward_proxy import ForwardProxy
from tests.support.net import free_port, reachable

PROM_YML = ROOT / "grafana/prometheus/prometheus.yml"
RULES = ROOT / "grafana/prometheus/rules"
BLACKBOX_YML = ROOT / "grafana/blackbox/blackbox.yml"
RENDER = ROOT / "grafana/alertmanager/render.py"
SINK = ROOT / "grafana/alert-sink/sink.py"
ADMIN_KEY = "drill-admin-key-0123456789abcdefghijklmnop"
SECRET_KEY = "drill-secret-key-0123456789abcdefghijklmnop"
ENVIRONMENT = "staging"
POOL = "drill"
#: Jobs of the production stack that have no counterpart here (no collector: the scrape path;
#: no Tempo, Loki or Grafana): dropped, so they do not show as down targets.
DROPPED_JOBS = ("otel-collector", "tempo", "loki", "grafana")
#: The one setting a drill changes for a scenario: a short webhook retry schedule (scenario
#: webhook-receiver-down reaches dead letters in about 40 s instead of 16 hours).
WEBHOOK_RETRY_SCHEDULE = "[5, 10, 20]"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (Debian package; .ci/run installs it)")
    return path


class Shared:
    """The exporters every lane's Prometheus scrapes (they hold no state of a lane)."""

    def __init__(self, workdir: Path, procs: Procs) -> None:
        self.workdir = workdir
        self.blackbox = f"127.0.0.1:{free_port()}"
        self.node = f"127.0.0.1:{free_port()}"
        procs.start(
            "blackbox",
            [
                tool("prometheus-blackbox-exporter"),
                f"--config.file={BLACKBOX_YML}",
                f"--web.listen-address={self.blackbox}",
            ],
            workdir / "blackbox.log",
        )
        procs.start(
            "node-exporter",
            [tool("prometheus-node-exporter"), f"--web.listen-address={self.node}"],
            workdir / "node-exporter.log",
        )
        for addr in (self.blackbox, self.node):
            host, port = addr.split(":")
            wait_until(lambda h=host, p=int(port): reachable(h, p), 30, f"exporter {addr}")


def prometheus_config(
    addresses: dict[str, str],
    rules_dir: Path,
    extra_jobs: list[dict[str, Any]],
) -> dict[str, Any]:
    """grafana/prometheus/prometheus.yml with its addresses replaced (``addresses``: compose
    address -> loopback one), rule files read from ``rules_dir``, the jobs without a local
    counterpart dropped and the scrape path's app jobs (docs/monitoring/alerting.md) added.
    Intervals, timeouts, relabelling and labels stay as committed."""
    text = PROM_YML.read_text()
    for old, new in addresses.items():
        text = text.replace(old, new)
    config: dict[str, Any] = yaml.safe_load(text)
    config["rule_files"] = [str(rules_dir / "*.yml")]
    config["scrape_configs"] = [
        job for job in config["scrape_configs"] if job["job_name"] not in DROPPED_JOBS
    ]
    config["scrape_configs"].extend(extra_jobs)
    return config


class Postgres:
    """A PostgreSQL cluster of the lane's own (killing it never touches the shared server)."""

    def __init__(self, workdir: Path, procs: Procs) -> None:
        self.workdir = workdir
        self.procs = procs
        self.port = free_port()
        bindir = server_bindir()
        if bindir is None:
            raise RuntimeError("no PostgreSQL server binaries (Debian package postgresql)")
        self.bindir = bindir
        self.proc: Proc | None = None
        self.data = workdir / "pgdata"

    def _owner(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def init(self) -> None:
        import pwd

        shutil.rmtree(self.data, ignore_errors=True)
        self.data.mkdir(parents=True)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.workdir, owner.pw_uid, owner.pw_gid)
            os.chown(self.data, owner.pw_uid, owner.pw_gid)
        with (self.workdir / "initdb.log").open("wb") as log:
            subprocess.run(
                [*self._owner(), str(self.bindir / "initdb"), "-D", str(self.data), "-U",
                 "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
                check=True, stdout=log, stderr=subprocess.STDOUT, timeout=120,
            )  # fmt: skip

    def start(self) -> None:
        self.proc = self.procs.start(
            "postgres",
            [*self._owner(), str(self.bindir / "postgres"), "-D", str(self.data),
             "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
             "-c", "unix_socket_directories=", "-c", "max_connections=200",
             "-c", "fsync=off", "-c", "shared_buffers=32MB"],
            self.workdir / "postgres.log",
        )  # fmt: skip
        wait_until(self.ready, 60, "lane PostgreSQL")

    def ready(self) -> bool:
        if self.proc is not None and not self.proc.alive():
            raise RuntimeError(f"PostgreSQL exited: see {self.workdir / 'postgres.log'}")
        cmd = [str(self.bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)]
        return subprocess.run(cmd, check=False).returncode == 0

    def stop(self) -> None:
        """Fast shutdown of the postmaster (its pid is in postmaster.pid: ``runuser`` does not
        pass signals on)."""
        import signal

        if self.proc is None:
            return
        pidfile = self.data / "postmaster.pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pidfile.read_text().split()[0]), signal.SIGINT)
        try:
            self.proc.popen.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.popen.kill()
        self.procs.forget(self.proc)
        self.proc.stop()
        self.proc = None

    def sql(self, query: str) -> list[list[str]]:
        out = subprocess.run(
            [str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
             "-d", "trawl", "-At", "-F", "\t", "-c", query],
            check=True, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return [line.split("\t") for line in out.stdout.splitlines() if line]

    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/trawl"


class Lane:
    """Everything of one lane; ``start()`` brings it up, ``stop()`` (idempotent) tears it down."""

    def __init__(self, name: str, workdir: Path, procs: Procs, shared: Shared) -> None:
        self.name = name
        self.dir = workdir
        self.procs = procs
        self.shared = shared
        # a fresh lane: an old run's TSDB or notification log would leak into this one
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        self.ports = {
            k: free_port()
            for k in (
                "api", "api_metrics", "canary", "redis", "sink_http", "sink_smtp", "am", "prom",
                "pg_exporter", "redis_exporter", "webhook",
            )
        }  # fmt: skip
        self.worker_ports: list[tuple[int, int]] = []  # (metrics port, scrape hop port)
        self.workers: dict[int, Proc] = {}
        self.hops: list[Proc] = []
        self.api: Proc | None = None
        self.redis: Proc | None = None
        self.prom: Proc | None = None
        self.pg = Postgres(self.dir / "pg", procs)
        self.site = DrillSite()
        self.webhook = WebhookSink(self.ports["webhook"])
        self.proxies: list[ForwardProxy] = []
        self.proxy_ids: list[str] = []
        self.rules_dir = self.dir / "rules"
        #: the demo load's pages: the in-process site, or a site in a network namespace
        self.pages_base = self.site.base
        self.netns: Any = None
        self.netns_site: Proc | None = None

    # ------------------------------------------------------------------ addresses
    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['api']}"

    @property
    def prom_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prom']}"

    @property
    def am_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['am']}"

    @property
    def sink_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['sink_http']}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.ports['redis']}/0"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_KEY}"}

    # ------------------------------------------------------------------ start
    def start(self, workers: int = 2, netns_index: int | None = None) -> None:
        self.site.start()
        if netns_index is not None:
            self._namespace_site(netns_index)
        self.webhook.up()
        self._sink_and_alertmanager()
        self.pg.init()
        self.pg.start()
        subprocess.run(
            [str(self.pg.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.pg.port),
             "-U", "postgres", "trawl"],
            check=True, timeout=30,
        )  # fmt: skip
        self.start_redis()
        self._exporters()
        self.start_api()
        for i in range(workers):
            self.worker_ports.append((free_port(), free_port()))
            hop_port = self.worker_ports[i][1]
            self.hops.append(
                self.procs.start(
                    f"{self.name}-hop-{i}",
                    [sys.executable, "-m", "tests.bench.tcphop", "--port", str(hop_port),
                     "--target", f"127.0.0.1:{self.worker_ports[i][0]}"],
                    self.dir / f"hop-{i}.log",
                )
            )  # fmt: skip
            self.start_worker(i)
        self._proxies()
        self._canary()
        self._prometheus()

    def _namespace_site(self, index: int) -> None:
        """The demo pages on a host of the lane's own (a network namespace behind a link that
        scenario targets-failing slows down and makes lossy)."""
        from tests.drill.netns import NetnsHost

        self.netns = NetnsHost(f"drill-{self.name}", index, clean_stale=True)
        port = 8080
        log = (self.dir / "nssite.log").open("ab")
        popen = self.netns.popen(
            [sys.executable, "-m", "tests.drill.nssite", "--port", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        self.pages_base = f"http://{self.netns.ns_ip}:{port}"
        wait_until(
            lambda: (
                popen.poll() is None
                and httpx.get(f"{self.pages_base}/page/1", timeout=2).status_code == 200
            ),
            30,
            "the target site in the namespace",
        )

    def set_pages_mode(self, mode: str) -> None:
        """Switch the demo pages (in-process or in the namespace) to ``mode``."""
        self.site.mode = mode
        if self.netns is not None:
            httpx.get(f"{self.pages_base}/drill/mode", params={"set": mode}, timeout=5)

    def _sink_and_alertmanager(self) -> None:
        self.procs.start(
            f"{self.name}-sink",
            [sys.executable, str(SINK), "--http-port", str(self.ports["sink_http"]),
             "--smtp-port", str(self.ports["sink_smtp"])],
            self.dir / "sink.log",
        )  # fmt: skip
        out = self.dir / "alertmanager"
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALERTMANAGER_")}
        # link bases only: runbook links point at this checkout, so the drill can open them
        env["TRAWL_RUNBOOK_BASE_URL"] = f"file://{ROOT}/"
        subprocess.run(
            [sys.executable, str(RENDER), str(out), "--mount-dir", str(out),
             "--sink-http", self.sink_url, "--sink-smtp", f"127.0.0.1:{self.ports['sink_smtp']}"],
            check=True, env=env, timeout=60, capture_output=True,
        )  # fmt: skip
        self.procs.start(
            f"{self.name}-alertmanager",
            [tool("prometheus-alertmanager"), f"--config.file={out / 'alertmanager.yml'}",
             f"--web.listen-address=127.0.0.1:{self.ports['am']}", "--cluster.listen-address=",
             f"--storage.path={self.dir / 'am-data'}"],
            self.dir / "alertmanager.log",
        )  # fmt: skip
        wait_until(lambda: httpx.get(f"{self.sink_url}/healthz").status_code == 200, 30, "sink")
        wait_until(lambda: httpx.get(f"{self.am_url}/-/ready").status_code == 200, 30, "AM")

    def start_redis(self) -> None:
        self.redis = self.procs.start(
            f"{self.name}-redis",
            [tool("redis-server"), "--bind", "127.0.0.1", "--port", str(self.ports["redis"]),
             "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            self.dir / "redis.log",
        )  # fmt: skip
        wait_until(lambda: reachable("127.0.0.1", self.ports["redis"]), 20, "lane redis")

    def _exporters(self) -> None:
        env = dict(os.environ)
        env["DATA_SOURCE_NAME"] = (
            f"postgresql://postgres@127.0.0.1:{self.pg.port}/trawl?sslmode=disable"
        )
        self.procs.start(
            f"{self.name}-pg-exporter",
            [tool("prometheus-postgres-exporter"),
             f"--web.listen-address=127.0.0.1:{self.ports['pg_exporter']}"],
            self.dir / "pg-exporter.log",
            env,
        )  # fmt: skip
        self.procs.start(
            f"{self.name}-redis-exporter",
            # -connection-timeout as docker-compose.otel.yml sets it (under the scrape timeout)
            [tool("prometheus-redis-exporter"), f"-redis.addr={self.redis_url}",
             "-connection-timeout=5s",
             f"-web.listen-address=127.0.0.1:{self.ports['redis_exporter']}"],
            self.dir / "redis-exporter.log",
        )  # fmt: skip

    def app_env(self, metrics_port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRAWL_"))}
        env.pop("DATABASE_URL", None)
        env.pop("REDIS_URL", None)
        env.update(
            PYTHONPATH=str(ROOT),
            DATABASE_URL=self.pg.url(),
            REDIS_URL=self.redis_url,
            TRAWL_ENVIRONMENT=ENVIRONMENT,
            TRAWL_ADMIN_API_KEY=ADMIN_KEY,
            TRAWL_SECRET_KEY=SECRET_KEY,
            TRAWL_ALLOW_PRIVATE_TARGETS="true",
            TRAWL_DATA_DIR=str(self.dir / "data"),
            TRAWL_WORKER_CONCURRENCY="4",
            TRAWL_WEBHOOK_RETRY_SCHEDULE_S=WEBHOOK_RETRY_SCHEDULE,
            OTEL_METRICS_EXPORTER="prometheus",
            OTEL_TRACES_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
            OTEL_EXPORTER_PROMETHEUS_HOST="127.0.0.1",
            OTEL_EXPORTER_PROMETHEUS_PORT=str(metrics_port),
        )
        return env

    def start_api(self) -> None:
        (self.dir / "data").mkdir(exist_ok=True)
        self.api = self.procs.start(
            f"{self.name}-api",
            [sys.executable, "-m", "app.serve", "--host", "127.0.0.1", "--port",
             str(self.ports["api"]), "--no-access-log"],
            self.dir / "api.log",
            self.app_env(self.ports["api_metrics"]),
        )  # fmt: skip

        def ready() -> bool:
            assert self.api is not None
            if not self.api.alive():
                raise RuntimeError(f"API exited:\n{self.api.tail()}")
            return httpx.get(f"{self.api_url}/health/ready", timeout=5).status_code == 200

        wait_until(ready, 90, f"{self.name} API ready")

    def start_worker(self, i: int) -> Proc:
        p = self.procs.start(
            f"{self.name}-worker-{i}",
            [sys.executable, "-m", "app.worker"],
            self.dir / f"worker-{i}.log",
            self.app_env(self.worker_ports[i][0]),
        )
        self.workers[i] = p
        return p

    def _proxies(self) -> None:
        for i in range(2):
            proxy = ForwardProxy(f"{self.name}-proxy-{i}").start()
            self.proxies.append(proxy)
            self.add_proxy(proxy)

    def add_proxy(self, proxy: ForwardProxy) -> str:
        r = httpx.post(
            f"{self.api_url}/v1/proxies",
            json={"pool": POOL, "url": proxy.url(), "enabled": True},
            headers=self.headers(),
            timeout=10,
        )
        r.raise_for_status()
        pid = str(r.json()["id"])
        self.proxy_ids.append(pid)
        return pid

    def _canary(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRAWL_"))}
        env.update(
            PYTHONPATH=str(ROOT),
            TRAWL_CANARY_API_URL=self.api_url,
            TRAWL_CANARY_API_KEY=ADMIN_KEY,
            TRAWL_CANARY_TARGET_URL=self.site.url("/canary/1"),
            TRAWL_CANARY_EXPECT_TITLE="Page 1",
            TRAWL_CANARY_LISTEN_PORT=str(self.ports["canary"]),
        )
        self.procs.start(
            f"{self.name}-canary",
            [sys.executable, "-m", "app.canary"],
            self.dir / "canary.log",
            env,
        )

    def _prometheus(self) -> None:
        self.rules_dir.mkdir(exist_ok=True)
        for f in RULES.glob("*.yml"):
            shutil.copy(f, self.rules_dir / f.name)
        lo = "127.0.0.1"
        config = prometheus_config(
            {
                "http://api:8000": self.api_url,
                "prometheus:9090": f"{lo}:{self.ports['prom']}",
                "alertmanager:9093": f"{lo}:{self.ports['am']}",
                "node-exporter:9100": self.shared.node,
                "postgres-exporter:9187": f"{lo}:{self.ports['pg_exporter']}",
                "redis-exporter:9121": f"{lo}:{self.ports['redis_exporter']}",
                "blackbox-exporter:9115": self.shared.blackbox,
                "canary:9469": f"{lo}:{self.ports['canary']}",
            },
            self.rules_dir,
            [
                {
                    "job_name": "trawl-api",
                    "scrape_interval": "15s",
                    "static_configs": [{"targets": [f"{lo}:{self.ports['api_metrics']}"]}],
                },
                {
                    "job_name": "trawl-worker",
                    "scrape_interval": "15s",
                    "static_configs": [
                        {"targets": [f"{lo}:{hop}" for _, hop in self.worker_ports]}
                    ],
                },
            ],
        )
        path = self.dir / "prometheus.yml"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.prom = self.procs.start(
            f"{self.name}-prometheus",
            [tool("prometheus"), f"--config.file={path}",
             f"--web.listen-address={lo}:{self.ports['prom']}",
             f"--storage.tsdb.path={self.dir / 'tsdb'}", "--web.enable-lifecycle",
             "--storage.tsdb.retention.time=1d"],
            self.dir / "prometheus.log",
        )  # fmt: skip
        wait_until(
            lambda: httpx.get(f"{self.prom_url}/-/ready").status_code == 200, 60, "prometheus"
        )
        # an alert sent before Prometheus has found Alertmanager waits for the resend delay
        # (1 min): the lane is ready only once it has
        wait_until(
            lambda: (
                self.query("prometheus_notifications_alertmanagers_discovered")[0]["value"][1]
                == "1"
            ),
            60,
            "prometheus discovered alertmanager",
        )

    # ------------------------------------------------------------------ queries
    def query(self, q: str) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.prom_url}/api/v1/query", params={"query": q}, timeout=10)
        r.raise_for_status()
        return list(r.json()["data"]["result"])

    def query_range(
        self, q: str, start: float, end: float, step: float = 5.0
    ) -> list[dict[str, Any]]:
        r = httpx.get(
            f"{self.prom_url}/api/v1/query_range",
            params={"query": q, "start": start, "end": end, "step": step},
            timeout=20,
        )
        r.raise_for_status()
        return list(r.json()["data"]["result"])

    def alerts(self) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.prom_url}/api/v1/alerts", timeout=10)
        r.raise_for_status()
        return list(r.json()["data"]["alerts"])

    def am_alerts(self) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.am_url}/api/v2/alerts", timeout=10)
        r.raise_for_status()
        return list(r.json())

    def sink_items(self, after: int = 0) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.sink_url}/notifications", params={"after": after}, timeout=10)
        r.raise_for_status()
        return list(r.json())

    def reload_rules(self) -> None:
        httpx.post(f"{self.prom_url}/-/reload", timeout=30).raise_for_status()

    def set_escalation_for(self, value: str | None) -> None:
        """The one override a drill may make: TrawlEscalation's ``for:`` in the lane's copy of
        escalation.yml (``None``: the committed file again)."""
        src = RULES / "escalation.yml"
        dst = self.rules_dir / "escalation.yml"
        if value is None:
            shutil.copy(src, dst)
        else:
            text = src.read_text()
            assert text.count("for: 15m") == 1, "escalation.yml: expected one `for: 15m`"
            dst.write_text(text.replace("for: 15m", f"for: {value}"))
        self.reload_rules()

    # ------------------------------------------------------------------ teardown
    def stop(self) -> None:
        # the forward proxies are daemon threads of this process: they end with it
        self.proxies.clear()
        with contextlib.suppress(Exception):
            self.site.stop()
        self.webhook.down()
        self.pg.stop()
        if self.netns is not None:
            with contextlib.suppress(Exception):
                self.netns.close()
            self.netns = None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "dir": str(self.dir), "ports": self.ports, "prom": self.prom_url}

    def dump(self) -> str:
        return json.dumps(self.describe())


def now() -> float:
    return time.time()
