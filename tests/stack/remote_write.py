"""A minimal Prometheus remote-write 1.0 client (protobuf + snappy framing), enough for tests to
push a sample with an exemplar to a real Prometheus: no extra dependency."""

from __future__ import annotations

import struct


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num: int, payload: bytes) -> bytes:  # length-delimited field
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def _labels(labels: dict[str, str]) -> bytes:
    return b"".join(
        _field(1, _field(1, k.encode()) + _field(2, v.encode())) for k, v in sorted(labels.items())
    )


def _value_ts(value: float, ts_ms: int) -> bytes:
    return _varint(1 << 3 | 1) + struct.pack("<d", value) + _varint(2 << 3) + _varint(ts_ms)


def write_request(
    labels: dict[str, str], value: float, ts_ms: int, exemplar: dict[str, str] | None = None
) -> bytes:
    series = _labels(labels) + _field(2, _value_ts(value, ts_ms))
    if exemplar is not None:
        body = _labels(exemplar) + _varint(2 << 3 | 1) + struct.pack("<d", value)
        series += _field(3, body + _varint(3 << 3) + _varint(ts_ms))
    return _field(1, series)


def snappy_block(data: bytes) -> bytes:
    """Snappy block format with one literal (valid, uncompressed)."""
    n = len(data) - 1
    if n < 60:
        tag = bytes([n << 2])
    elif n < 1 << 8:
        tag = bytes([60 << 2, n])
    elif n < 1 << 16:
        tag = bytes([61 << 2]) + struct.pack("<H", n)
    else:
        raise ValueError("payload too large for this test helper")
    return _varint(len(data)) + tag + data


HEADERS = {
    "Content-Encoding": "snappy",
    "Content-Type": "application/x-protobuf",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}
