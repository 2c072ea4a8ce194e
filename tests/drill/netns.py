"""Test hosts of the project's own, in network namespaces, for realistic network faults.

A :class:`NetnsHost` is a namespace ``trawl-<name>`` joined to this host by a point-to-point
link: host side ``10.231.<index>.1/24``, namespace side ``10.231.<index>.2/24``. A drill runs a
target site, proxy or webhook receiver inside it (:meth:`NetnsHost.popen`) and reaches it at
``ns_ip``; then it slows the link down, makes it lossy (:meth:`NetnsHost.netem`) or cuts it
(:meth:`NetnsHost.link_down`). Only loopback and these namespaces are ever a fault's target.

The link is one of two kinds (``link=``):

* ``"veth"``: a veth pair, faults by ``tc qdisc replace … netem`` on the namespace side. Needs
  the kernel's ``sch_netem``;
* ``"tun"``: two TUN devices, one in each namespace, joined by a relay thread of this process
  that forwards every IP packet, holding it back ``delay_ms`` and dropping ``loss_pct`` percent
  of them on the way out of the namespace (what netem on the namespace side does). Kernels
  built without ``sch_netem`` (this CI's microVM kernel: ``Specified qdisc kind is unknown``)
  still get real packet delay and loss: TCP sees them and retransmits as on a bad link.

``"auto"`` (the default) picks ``veth`` when netem works and ``tun`` otherwise. ``link_down``
sets the namespace side down either way: packets are lost, connects time out, as with a pulled
cable. An ``unreachable`` route of low priority for the subnet makes sure nothing sent to a
namespace ever leaves through the default route.

Needs root and ``ip`` (iproute2); :func:`netns_available` says whether they work here.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import heapq
import itertools
import os
import random
import select
import shutil
import signal
import struct
import subprocess
import threading
import time
from collections.abc import Sequence
from typing import Any, Literal

PREFIX = "trawl-"
_FENCE_METRIC = 4231
SUBNET = "10.231"
_TUNSETIFF = 0x400454CA
_IFF_TUN, _IFF_NO_PI = 0x0001, 0x1000

Link = Literal["auto", "veth", "tun"]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True, timeout=30)


def _run_ok(argv: Sequence[str]) -> bool:
    try:
        return subprocess.run(list(argv), capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def netns_available() -> bool:
    """Root, iproute2, and a namespace can really be created and deleted here."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = f"{PREFIX}probe-{os.getpid()}"
    if not _run_ok(["ip", "netns", "add", probe]):
        return False
    return _run_ok(["ip", "netns", "del", probe])


@functools.cache
def netem_available() -> bool:
    """Whether the kernel has ``sch_netem`` (tried once, on a throwaway veth pair)."""
    if not netns_available() or shutil.which("tc") is None:
        return False
    dev = f"trawlq{os.getpid() % 100000}"
    if not _run_ok(["ip", "link", "add", dev, "type", "veth", "peer", "name", dev + "p"]):
        return False
    try:
        return _run_ok(["tc", "qdisc", "replace", "dev", dev, "root", "netem", "delay", "1ms"])
    finally:
        _run_ok(["ip", "link", "del", dev])


def namespaces(prefix: str = PREFIX) -> list[str]:
    """The namespaces whose name starts with ``prefix`` (a drill's are ``trawl-*``)."""
    out = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.startswith(prefix)]


def clean_stale(prefix: str = PREFIX, *, exact: bool = False) -> list[str]:
    """Delete the namespaces a crashed earlier run left (``prefix*``, or the one named
    ``prefix`` when ``exact``; never anything outside ``trawl-*``): kill every process still
    inside, then delete the namespace (its veth pair goes with it; a TUN link died with the
    process that held it). Returns the names deleted."""
    if not prefix.startswith(PREFIX):
        raise ValueError(f"only the project's own namespaces ({PREFIX}*) may be cleaned")
    gone = []
    for ns in namespaces(prefix):
        if exact and ns != prefix:
            continue
        for pid in _ip("netns", "pids", ns, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        if _ip("netns", "del", ns, check=False).returncode == 0:
            gone.append(ns)
    return gone


_clean_stale = clean_stale  # NetnsHost's keyword argument of the same name hides it


def _open_tun(dev: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, _TUNSETIFF, struct.pack("16sH", dev.encode(), _IFF_TUN | _IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


class _Relay(threading.Thread):
    """The wire between two TUN devices: every packet read on one is written to the other;
    packets leaving the namespace wait ``delay_s`` and are dropped with probability ``loss``."""

    def __init__(self, host_fd: int, ns_fd: int) -> None:
        super().__init__(name="netns-relay", daemon=True)
        self.host_fd, self.ns_fd = host_fd, ns_fd
        self.delay_s = 0.0
        self.loss = 0.0
        self.forwarded = 0
        self.dropped = 0
        self._halt = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        self._queue: list[tuple[float, int, int, bytes]] = []
        self._seq = itertools.count()
        self._random = random.Random()

    def shape(self, delay_s: float, loss: float) -> None:
        self.delay_s, self.loss = delay_s, loss
        os.write(self._wake_w, b"x")

    def stop(self) -> None:
        self._halt.set()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        self.join(timeout=5)
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _write(self, fd: int, packet: bytes) -> None:
        try:
            os.write(fd, packet)
            self.forwarded += 1
        except OSError as exc:  # the interface is down: the packet is lost, as on a wire
            if exc.errno not in (errno.EIO, errno.EAGAIN, errno.EINVAL):
                raise
            self.dropped += 1

    def _flush_due(self) -> int | None:
        """Write every held-back packet that is due; the poll timeout until the next one."""
        now = time.monotonic()
        while self._queue and self._queue[0][0] <= now:
            _, _, fd, packet = heapq.heappop(self._queue)
            self._write(fd, packet)
        if not self._queue:
            return None
        return max(0, int((self._queue[0][0] - now) * 1000) + 1)

    def _outbound(self, packet: bytes) -> None:
        """A packet leaving the namespace: lost, held back or passed on."""
        if self.loss and self._random.random() < self.loss:
            self.dropped += 1
        elif self.delay_s <= 0:
            self._write(self.host_fd, packet)
        else:
            due = time.monotonic() + self.delay_s
            heapq.heappush(self._queue, (due, next(self._seq), self.host_fd, packet))

    def run(self) -> None:
        poller = select.poll()
        for fd in (self.host_fd, self.ns_fd, self._wake_r):
            poller.register(fd, select.POLLIN)
        while not self._halt.is_set():
            for fd, _ in poller.poll(self._flush_due()):
                if fd == self._wake_r:
                    os.read(fd, 512)
                    continue
                try:
                    packet = os.read(fd, 65535)
                except BlockingIOError:
                    continue
                except OSError:
                    if self._halt.is_set():
                        return
                    raise
                if fd == self.host_fd:  # into the namespace: unshaped
                    self._write(self.ns_fd, packet)
                else:
                    self._outbound(packet)


class NetnsHost:
    """A test host in namespace ``trawl-<name>``, reachable at ``ns_ip`` from this host (which
    is ``host_ip`` from inside). Use as a context manager; :meth:`close` is idempotent."""

    def __init__(
        self, name: str, index: int, *, link: Link = "auto", clean_stale: bool = False
    ) -> None:
        if not 1 <= index <= 254:
            raise ValueError("index must be 1..254 (10.231.<index>.0/24)")
        self.name = PREFIX + name
        self.index = index
        self.host_ip = f"{SUBNET}.{index}.1"
        self.ns_ip = f"{SUBNET}.{index}.2"
        self._subnet = f"{SUBNET}.{index}.0/24"
        self.host_dev = f"trawl{index}-h"
        self.ns_dev = f"trawl{index}-n"
        self.link: Literal["veth", "tun"] = (
            link if link != "auto" else ("veth" if netem_available() else "tun")
        )
        self._procs: list[subprocess.Popen[Any]] = []
        self._tun_fds: list[int] = []
        self._relay: _Relay | None = None
        self._closed = False
        self._made: set[str] = set()  # what close() may remove: only what this host created
        if clean_stale:
            _clean_stale(self.name, exact=True)
        try:
            self._create()
        except BaseException:
            self.close()
            raise

    # --- set-up and tear-down -------------------------------------------------------------
    def _create(self) -> None:
        _ip("netns", "add", self.name)
        self._made.add("netns")
        if self.link == "veth":
            _ip("link", "add", self.host_dev, "type", "veth", "peer", "name", self.ns_dev)
        else:
            self._tun_fds.append(_open_tun(self.host_dev))
            self._tun_fds.append(_open_tun(self.ns_dev))
        self._made.add("link")
        _ip("link", "set", self.ns_dev, "netns", self.name)
        _ip("addr", "add", f"{self.host_ip}/24", "dev", self.host_dev)
        _ip("link", "set", self.host_dev, "up")
        # never leak to the default route: with the link gone, the subnet is unreachable
        _ip("route", "replace", "unreachable", self._subnet, "metric", str(_FENCE_METRIC))
        self._made.add("route")
        self.exec("ip", "addr", "add", f"{self.ns_ip}/24", "dev", self.ns_dev)
        self.exec("ip", "link", "set", self.ns_dev, "up")
        self.exec("ip", "link", "set", "lo", "up")
        if self.link == "tun":
            self._relay = _Relay(*self._tun_fds)
            self._relay.start()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            for proc in self._procs:
                if proc.poll() is None:
                    proc.kill()
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            if self._relay is not None:
                self._relay.stop()
        finally:
            for fd in self._tun_fds:
                with contextlib.suppress(OSError):
                    os.close(fd)
            if "netns" in self._made:  # anything left inside (a grandchild) dies too
                clean_stale(self.name, exact=True)
            if "link" in self._made:  # normally gone with its peer already
                _ip("link", "del", self.host_dev, check=False)
            if "route" in self._made:
                _ip("route", "del", "unreachable", self._subnet, "metric", str(_FENCE_METRIC),
                    check=False)  # fmt: skip

    def __enter__(self) -> NetnsHost:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- running things inside ------------------------------------------------------------
    def exec(self, *argv: str) -> subprocess.CompletedProcess[str]:
        """Run a short command inside the namespace; raise if it fails."""
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *argv],
            check=True,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def popen(self, argv: Sequence[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside the namespace (``ip netns exec``: the process is the command
        itself); :meth:`close` kills it."""
        proc: subprocess.Popen[Any] = subprocess.Popen(
            ["ip", "netns", "exec", self.name, *argv], **kw
        )
        self._procs.append(proc)
        return proc

    # --- faults ---------------------------------------------------------------------------
    def netem(self, delay_ms: int = 0, loss_pct: float = 0.0) -> None:
        """Delay every packet leaving the namespace by ``delay_ms`` and drop ``loss_pct`` % of
        them (replaces any earlier setting)."""
        if delay_ms < 0 or not 0.0 <= loss_pct <= 100.0:
            raise ValueError("delay_ms >= 0 and 0 <= loss_pct <= 100")
        if self._relay is not None:
            self._relay.shape(delay_ms / 1000.0, loss_pct / 100.0)
            return
        self.exec(
            "tc", "qdisc", "replace", "dev", self.ns_dev, "root", "netem",
            "delay", f"{delay_ms}ms", "loss", f"{loss_pct}%",
        )  # fmt: skip

    def clear(self) -> None:
        """Remove the delay and loss."""
        if self._relay is not None:
            self._relay.shape(0.0, 0.0)
            return
        subprocess.run(
            ["ip", "netns", "exec", self.name, "tc", "qdisc", "del", "dev", self.ns_dev, "root"],
            capture_output=True,
            timeout=30,
        )  # no qdisc of ours there: nothing to remove

    def link_down(self) -> None:
        """Cut the link as a pulled cable would: the namespace side goes down, packets sent to
        it are lost and connects time out (nothing answers, not even a refusal)."""
        self.exec("ip", "link", "set", self.ns_dev, "down")

    def link_up(self) -> None:
        """Restore the link (address and route come back with the interface)."""
        self.exec("ip", "link", "set", self.ns_dev, "up")
