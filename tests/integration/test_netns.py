"""The drills' network-namespace hosts (tests/drill/netns.py), for real: an HTTP server inside
a namespace is reached over the link, a 300 ms delay shows up in a request's time, a cut link
fails the connect, and restoring it brings the server back. The seconds asserted are the
fault's own effect (300 ms held back per packet), not the machine's speed."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.drill import netns
from tests.support.wait import eventually_blocking

PORT = 8080


def _require_netns() -> None:
    if netns.netns_available():
        return
    reason = "network namespaces need root and iproute2 (ip netns)"
    if os.environ.get("TRAWL_REQUIRE_TOOLS") == "1":
        pytest.fail(f"TRAWL_REQUIRE_TOOLS=1 but {reason}")
    pytest.skip(reason)


def _links() -> list[str]:
    links: list[str] = ["tun"]
    if netns.netem_available():  # kernels with sch_netem (not every CI microVM has it)
        links.append("veth")
    return links


def _get(url: str, timeout: float = 5.0) -> float:
    """Seconds one GET took (connect included)."""
    start = time.monotonic()
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        assert resp.status == 200
        resp.read()
    return time.monotonic() - start


@pytest.fixture(params=_links())
def host(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[netns.NetnsHost]:
    _require_netns()
    index = 200 + os.getpid() % 50
    name = f"test{os.getpid()}-{request.param}"
    with netns.NetnsHost(name, index, link=request.param, clean_stale=True) as h:
        (tmp_path / "index.html").write_text("hello from the namespace\n")
        h.popen(
            [sys.executable, "-m", "http.server", "--bind", h.ns_ip, str(PORT)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        yield h
    assert h.name not in netns.namespaces(h.name), "namespace left behind"


def test_server_in_namespace_delay_cut_and_restore(host: netns.NetnsHost) -> None:
    url = f"http://{host.ns_ip}:{PORT}/index.html"
    eventually_blocking(
        lambda: _get(url, 2) >= 0, 20, what="the server inside the namespace", retry_on=(OSError,)
    )
    baseline = min(_get(url) for _ in range(3))

    host.netem(delay_ms=300)
    delayed = min(_get(url) for _ in range(2))
    # every packet out of the namespace waits 300 ms: the SYN-ACK and the response at least
    assert delayed - baseline > 0.25, (baseline, delayed)

    host.clear()
    assert min(_get(url) for _ in range(3)) - baseline < 0.25

    host.link_down()
    with pytest.raises(OSError), socket.create_connection((host.ns_ip, PORT), timeout=2):
        pass

    host.link_up()
    eventually_blocking(
        lambda: _get(url, 2) >= 0, 20, what="the server after link_up", retry_on=(OSError,)
    )


def test_loss_drops_packets(host: netns.NetnsHost) -> None:
    """100 % loss out of the namespace: the server never answers the SYN."""
    url = f"http://{host.ns_ip}:{PORT}/index.html"
    eventually_blocking(
        lambda: _get(url, 2) >= 0, 20, what="the server inside the namespace", retry_on=(OSError,)
    )
    host.netem(loss_pct=100.0)
    with pytest.raises(OSError), socket.create_connection((host.ns_ip, PORT), timeout=2):
        pass
    host.clear()
    assert _get(url) >= 0


def test_close_is_idempotent_and_kills_its_processes(tmp_path: Path) -> None:
    _require_netns()
    h = netns.NetnsHost(f"close{os.getpid()}", 199, link="tun")
    proc = h.popen(["sleep", "600"])
    h.close()
    assert proc.poll() is not None, "the process inside was not killed"
    h.close()
    assert h.name not in netns.namespaces(h.name)


def test_clean_stale_removes_a_crashed_runs_namespace() -> None:
    _require_netns()
    name = f"{netns.PREFIX}stale{os.getpid()}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", name, "sleep", "600"])
    try:
        eventually_blocking(
            lambda: subprocess.run(
                ["ip", "netns", "pids", name], capture_output=True, text=True
            ).stdout.strip(),
            10,
            what="the sleeper inside the namespace",
        )
        assert netns.clean_stale(name) == [name]
        assert sleeper.wait(timeout=10) != 0
        assert name not in netns.namespaces(name)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_only_the_projects_namespaces_may_be_cleaned() -> None:
    with pytest.raises(ValueError):
        netns.clean_stale("other-")


def test_a_failed_creation_leaves_the_other_hosts_link_alone() -> None:
    _require_netns()
    with netns.NetnsHost(f"first{os.getpid()}", 198, link="tun") as first:
        with pytest.raises(OSError):  # the same index: its TUN device name is taken
            netns.NetnsHost(f"second{os.getpid()}", 198, link="tun")
        assert f"{netns.PREFIX}second{os.getpid()}" not in netns.namespaces()
        out = subprocess.run(["ip", "link", "show", first.host_dev], capture_output=True)
        assert out.returncode == 0, "the first host's link was deleted"
