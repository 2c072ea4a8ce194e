"""Pure statistics for the bench: medians, percentiles, spreads, paired overheads, slopes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def median(values: Sequence[float]) -> float:
    """The median; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    mid = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2.0


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), linear interpolation between closest ranks."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile out of range: {q}")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = math.ceil(pos)
    frac = pos - lo
    return ordered[lo] + (ordered[hi] - ordered[lo]) * frac


@dataclass(frozen=True)
class Spread:
    """Median and range of a figure measured once per round."""

    median: float
    low: float
    high: float
    n: int

    @property
    def rel_range(self) -> float:
        """(high - low) / median: how much the rounds disagree."""
        if not self.median or math.isnan(self.median):
            return math.nan
        return (self.high - self.low) / abs(self.median)


def spread(values: Sequence[float]) -> Spread:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return Spread(math.nan, math.nan, math.nan, 0)
    return Spread(median(vals), min(vals), max(vals), len(vals))


@dataclass(frozen=True)
class Overhead:
    """A variant against the baseline, paired round by round."""

    delta: Spread  # variant - baseline, same unit as the inputs
    ratio: Spread  # variant / baseline - 1


def paired_overhead(baseline: Sequence[float], variant: Sequence[float]) -> Overhead:
    """Per-round differences and ratios (round i of the variant against round i of the
    baseline, measured back to back), summarised by their medians."""
    pairs = [
        (b, v)
        for b, v in zip(baseline, variant, strict=False)
        if not (math.isnan(b) or math.isnan(v))
    ]
    deltas = [v - b for b, v in pairs]
    ratios = [v / b - 1.0 for b, v in pairs if b]
    return Overhead(spread(deltas), spread(ratios))


def slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Least-squares slope of ``ys`` over ``xs``; NaN with fewer than two distinct xs."""
    if len(xs) != len(ys):
        raise ValueError("xs and ys differ in length")
    n = len(xs)
    if n < 2:
        return math.nan
    mx = sum(xs) / n
    my = sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    if sxx == 0:
        return math.nan
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    return sxy / sxx


def rotate(items: Sequence[str], k: int) -> list[str]:
    """``items`` rotated left by ``k``: round k starts with a different variant, so no
    variant is always measured first (or right after the same neighbour)."""
    if not items:
        return []
    k %= len(items)
    return [*items[k:], *items[:k]]
