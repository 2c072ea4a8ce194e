"""Reading a process's CPU time and memory from ``/proc``, and pinning it to cores."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class CpuTimes:
    """CPU seconds of one process (all its threads, live and exited)."""

    user: float
    system: float

    @property
    def total(self) -> float:
        return self.user + self.system

    def __sub__(self, other: CpuTimes) -> CpuTimes:
        return CpuTimes(self.user - other.user, self.system - other.system)


def parse_stat(text: str) -> CpuTimes:
    """utime and stime (fields 14 and 15) of a ``/proc/<pid>/stat`` line. The command name
    (field 2) is in parentheses and may itself contain spaces and parentheses, so the fields
    are counted from the last ``)``."""
    rest = text[text.rindex(")") + 2 :].split()
    # rest[0] is field 3 (state): utime is field 14 -> rest[11], stime field 15 -> rest[12]
    return CpuTimes(int(rest[11]) / CLK_TCK, int(rest[12]) / CLK_TCK)


def cpu_times(pid: int) -> CpuTimes:
    return parse_stat(Path(f"/proc/{pid}/stat").read_text())


def parse_status_rss(text: str) -> int:
    """Resident set size in bytes from a ``/proc/<pid>/status`` text (``VmRSS``)."""
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            value, unit = line.split()[1:3]
            if unit.lower() != "kb":
                raise ValueError(f"unexpected VmRSS unit {unit!r}")
            return int(value) * 1024
    raise ValueError("no VmRSS line (a kernel thread or a zombie?)")


def rss_bytes(pid: int) -> int:
    return parse_status_rss(Path(f"/proc/{pid}/status").read_text())


def pin(pid: int, cores: str) -> None:
    """Pin every thread of ``pid`` to ``cores`` (a list such as ``"0"`` or ``"0,1"``).

    Threads come and go (thread pools, exporters): one that ends meanwhile is skipped, and
    the threads are walked twice so that one started during the first walk is caught; threads
    started later inherit the mask of the thread that starts them."""
    mask = {int(c) for c in cores.split(",")}
    for _ in range(2):
        for tid in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(ProcessLookupError, FileNotFoundError):
                os.sched_setaffinity(int(tid), mask)


@dataclass(frozen=True)
class CoreTimes:
    """Seconds one core spent busy (anything but idle and iowait), and stolen by the
    hypervisor, since boot (``/proc/stat``)."""

    busy: float
    steal: float

    def __sub__(self, other: CoreTimes) -> CoreTimes:
        return CoreTimes(self.busy - other.busy, self.steal - other.steal)


def parse_proc_stat(text: str, core: int) -> CoreTimes:
    label = f"cpu{core}"
    for line in text.splitlines():
        fields = line.split()
        if fields and fields[0] == label:
            v = [int(x) for x in fields[1:]]
            # user nice system idle iowait irq softirq steal (guest time is inside user)
            busy = v[0] + v[1] + v[2] + v[5] + v[6]
            steal = v[7] if len(v) > 7 else 0
            return CoreTimes(busy / CLK_TCK, steal / CLK_TCK)
    raise ValueError(f"no {label} line in /proc/stat")


def core_times(core: int) -> CoreTimes:
    return parse_proc_stat(Path("/proc/stat").read_text(), core)


def online_cores() -> int:
    return os.cpu_count() or 1
