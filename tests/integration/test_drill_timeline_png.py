"""The drill's timeline written to disk: SVG always, and a PNG beside it when ``rsvg-convert``
(Debian ``librsvg2-bin``) is installed: a real raster with the picture's size."""

from __future__ import annotations

import shutil
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.drill import timeline

REPORT = {
    "started_at": 1_790_000_000.0,
    "scenarios": [
        {
            "name": "workers-stopped",
            "ok": True,
            "injected_at": 1_790_000_000.0,
            "removed_at": 1_790_000_150.0,
            "alerts_firing": [{"alertname": "TrawlNoLiveWorkers", "severity": "critical",
                               "firing_at": 1_790_000_060.0}],
            "notifications": [{"receiver": "pagerduty", "alertname": "TrawlNoLiveWorkers",
                               "status": "firing", "severity": "critical",
                               "received_at": 1_790_000_075.0}],
        }
    ],
}  # fmt: skip


def test_svg_written_and_png_beside_it_when_rsvg_convert_is_there(tmp_path: Path) -> None:
    out = tmp_path / "report" / "timeline.svg"
    timeline.render_svg(REPORT, out)
    root = ET.parse(out).getroot()
    png = out.with_suffix(".png")
    if shutil.which("rsvg-convert") is None:
        assert not png.exists()
        pytest.skip("rsvg-convert not installed (Debian librsvg2-bin): SVG only")
    head = png.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", head[16:24])
    assert (width, height) == (int(root.get("width", 0)), int(root.get("height", 0)))
