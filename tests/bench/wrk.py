"""Load from ``wrk`` (Debian), pinned off the measured core, and its output parsed."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.bench.services import OTHER_CORE

_REQUESTS = re.compile(r"^\s*(\d+) requests in ([\d.]+)(ms|s|m)", re.M)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)")
_SOCKET = re.compile(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0}


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    non_2xx: int
    socket_errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def parse(output: str) -> WrkResult:
    m = _REQUESTS.search(output)
    if m is None:
        raise ValueError(f"no request count in wrk output:\n{output}")
    non = _NON_2XX.search(output)
    sock = _SOCKET.search(output)
    return WrkResult(
        requests=int(m.group(1)),
        seconds=float(m.group(2)) * _UNITS[m.group(3)],
        non_2xx=int(non.group(1)) if non else 0,
        socket_errors=sum(int(x) for x in sock.groups()) if sock else 0,
    )


def lua_script(method: str, body: str | None, headers: dict[str, str]) -> str:
    lines = [f'wrk.method = "{method}"']
    if body is not None:
        lines.append("wrk.body = [==[" + body + "]==]")
    for k, v in headers.items():
        lines.append(f'wrk.headers["{k}"] = "{v}"')
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Load:
    """One request shape: a URL, a method, headers and a body."""

    url: str
    method: str = "GET"
    headers: tuple[tuple[str, str], ...] = ()
    body: str | None = None


def command(load: Load, seconds: float, connections: int, script: Path) -> list[str]:
    """wrk takes whole seconds only (at least 1)."""
    exe = shutil.which("wrk")
    if exe is None:
        raise RuntimeError("wrk is not installed (Debian package wrk)")
    return [
        "taskset", "-c", OTHER_CORE, exe, "-t1", f"-c{connections}",
        f"-d{max(round(seconds), 1)}s", "--timeout", "5s", "-s", str(script), load.url,
    ]  # fmt: skip


class Wrk:
    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)

    def _script(self, load: Load) -> Path:
        text = lua_script(load.method, load.body, dict(load.headers))
        fd, name = tempfile.mkstemp(suffix=".lua", dir=self.workdir)
        path = Path(name)
        with open(fd, "w") as f:
            f.write(text)
        return path

    def run(self, load: Load, seconds: float, connections: int = 16) -> WrkResult:
        script = self._script(load)
        try:
            out = subprocess.run(
                command(load, seconds, connections, script),
                check=True,
                capture_output=True,
                text=True,
                timeout=seconds + 30,
            )
        finally:
            script.unlink(missing_ok=True)
        return parse(out.stdout)

    def start(self, load: Load, seconds: float, connections: int) -> subprocess.Popen[str]:
        """Background load (for the health probes); the script outlives the call."""
        script = self._script(load)
        return subprocess.Popen(
            command(load, seconds, connections, script),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
