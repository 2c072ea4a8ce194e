"""Sampling profiles with py-spy (collapsed stacks, which speedscope and flamegraph.pl read)
and their text summary: where the samples are, by component and by function."""

from __future__ import annotations

import gzip
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tests.bench.services import OTHER_CORE

#: First segment of a frame's file (py-spy prints paths relative to ``sys.path``) -> component.
COMPONENTS: dict[str, str] = {
    "h11": "h11 (HTTP/1.1 parser)",
    "uvicorn": "uvicorn",
    "starlette": "starlette (middleware, routing, responses)",
    "fastapi": "fastapi (dependencies, validation, serialization)",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
    "sqlalchemy": "SQLAlchemy",
    "asyncpg": "asyncpg",
    "aiosqlite": "aiosqlite / sqlite3",
    "sqlite3": "aiosqlite / sqlite3",
    "prometheus_fastapi_instrumentator": "prometheus-fastapi-instrumentator",
    "prometheus_client": "prometheus_client",
    "otel": "otel (Trawl's telemetry package)",
    "app": "app (Trawl)",
    "redis": "redis-py",
    "taskiq": "taskiq",
    "taskiq_redis": "taskiq",
    "httpx": "httpx / httpcore",
    "httpcore": "httpx / httpcore",
    "anyio": "anyio (thread pool hops)",
    "parsel": "parsel / lxml (extraction)",
    "lxml": "parsel / lxml (extraction)",
    "cssselect": "parsel / lxml (extraction)",
    "w3lib": "parsel / lxml (extraction)",
    "google": "protobuf (OTLP encoding)",
    "asyncio": "asyncio event loop",
    "selectors.py": "asyncio event loop",
    "logging": "logging",
    "json": "json",
    "threading.py": "threads, queues",
    "queue.py": "threads, queues",
    "concurrent": "threads, queues",
    "tests": "bench harness",
    # py-spy prints the OpenTelemetry namespace packages without their ``opentelemetry/``
    # (or ``opentelemetry/sdk/``) prefix: ``metrics/_internal/…``, ``trace/…``, ``context/…``
    **dict.fromkeys(
        (
            "metrics",
            "trace",
            "context",
            "_logs",
            "sdk",
            "instrumentation",
            "semconv",
            "exporter",
            "propagate",
            "propagators",
            "attributes",
            "baggage",
            "util",
            "proto",
            "_events",
            "opentelemetry",
        ),
        "OpenTelemetry SDK/API/contrib",
    ),
    "scrapy": "scrapy / twisted",
    "twisted": "scrapy / twisted",
}


def frame_file(frame: str) -> str:
    """``func (pkg/mod.py)`` -> ``pkg/mod.py``."""
    _, _, path = frame.rpartition(" (")
    return path.rstrip(")")


def component(frame: str) -> str:
    path = frame_file(frame)
    top = path.split("/", 1)[0]
    return COMPONENTS.get(top, "other (stdlib, interpreter)")


def short(frame: str) -> str:
    return frame if frame.strip() and not frame.startswith(" (") else f"(unknown frame){frame}"


#: Components that say nothing about who spent the time: stdlib leaf frames are charged to the
#: nearest caller outside them, and the harness's entry point is not shown as "on the stack".
UNATTRIBUTED = frozenset({"other (stdlib, interpreter)", "bench harness", "json", "logging"})


def attributed(frames: list[str]) -> str:
    """The component a sample's time belongs to: the leaf's, or, for a stdlib leaf
    (``contextlib``, ``json``, ``uuid``...), the nearest caller's outside the stdlib."""
    for f in reversed(frames):
        c = component(f)
        if c not in UNATTRIBUTED:
            return c
    return component(frames[-1])


@dataclass(frozen=True)
class Summary:
    samples: int
    by_component: list[tuple[str, float]]  # share per component, stdlib charged to callers
    inclusive_component: list[tuple[str, float]]  # share of samples with the component on stack
    top_self: list[tuple[str, float]]
    top_inclusive: list[tuple[str, float]]


def parse_collapsed(text: str) -> list[tuple[list[str], int]]:
    stacks: list[tuple[list[str], int]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        stacks.append((stack.split(";"), int(count)))
    return stacks


def summarize(text: str, top: int = 20) -> Summary:
    stacks = parse_collapsed(text)
    total = sum(n for _, n in stacks) or 1
    comp: Counter[str] = Counter()
    comp_incl: Counter[str] = Counter()
    self_: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for frames, n in stacks:
        if not frames:
            continue
        leaf = frames[-1]
        comp[attributed(frames)] += n
        for c in {component(f) for f in frames} - UNATTRIBUTED:
            comp_incl[c] += n
        self_[short(leaf)] += n
        for f in {short(f) for f in frames}:
            incl[f] += n
    return Summary(
        samples=total,
        by_component=[(k, v / total) for k, v in comp.most_common()],
        inclusive_component=[(k, v / total) for k, v in comp_incl.most_common()],
        top_self=[(k, v / total) for k, v in self_.most_common(top)],
        top_inclusive=[(k, v / total) for k, v in incl.most_common(top * 3) if v / total < 0.97][
            :top
        ],
    )


def render(title: str, s: Summary) -> str:
    lines = [f"# {title}", "", f"samples: {s.samples}", "", "## Time by component", ""]
    lines += ["(a stdlib frame's time is charged to the nearest caller outside the stdlib)", ""]
    lines += [f"{share * 100:6.1f} %  {name}" for name, share in s.by_component]
    lines += ["", "## Samples with the component anywhere on the stack (inclusive)", ""]
    lines += [f"{share * 100:6.1f} %  {name}" for name, share in s.inclusive_component]
    lines += ["", "## Top functions, self time", ""]
    lines += [f"{share * 100:6.1f} %  {name}" for name, share in s.top_self]
    lines += ["", "## Top functions, inclusive (below 97 %)", ""]
    lines += [f"{share * 100:6.1f} %  {name}" for name, share in s.top_inclusive]
    return "\n".join(lines) + "\n"


def record(pid: int, seconds: float, out: Path, rate: int = 200) -> subprocess.Popen[bytes]:
    """Start py-spy on ``pid`` for ``seconds`` (collapsed stacks to ``out``). ``--gil``: only
    the thread holding the GIL is sampled, so a sample is Python code running on the CPU (idle
    threads waiting on a lock or a queue would otherwise count as busy)."""
    exe = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if exe is None:
        raise RuntimeError("py-spy is not installed: make bench installs the [bench] extra")
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [
            "taskset",
            "-c",
            OTHER_CORE,
            exe,
            "record",
            "-p",
            str(pid),
            "-d",
            str(int(seconds)),
            "-r",
            str(rate),
            "--gil",
            "--format",
            "raw",
            "--nolineno",
            "-o",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def finish(out: Path, title: str) -> str:
    """Summarise the collapsed stacks py-spy wrote to ``out``, write ``<tag>.summary.txt`` next
    to them and keep the stacks gzipped (``<tag>.collapsed.txt.gz``: ``zcat`` it into
    speedscope or flamegraph.pl). Returns the summary."""
    text = out.read_text()
    summary = render(title, summarize(text))
    out.with_name(out.name.replace(".collapsed.txt", ".summary.txt")).write_text(summary)
    with gzip.open(stacks_path(out.parent, out.name.replace(".collapsed.txt", "")), "wt") as f:
        f.write(text)
    out.unlink()
    return summary


def stacks_path(directory: Path, tag: str) -> Path:
    return directory / f"{tag}.collapsed.txt.gz"


def read_stacks(directory: Path, tag: str) -> str | None:
    path = stacks_path(directory, tag)
    if not path.exists():
        return None
    with gzip.open(path, "rt") as f:
        return f.read()
