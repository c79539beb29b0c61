"""Percentiles and the summary every latency figure is reported as."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) of already sorted values, nearest-rank; NaN when empty."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


@dataclass(frozen=True)
class Latency:
    """p50/p99/max of a set of latencies, in milliseconds, and how many samples."""

    p50_ms: float
    p99_ms: float
    max_ms: float
    count: int

    @classmethod
    def of_seconds(cls, values_s: Sequence[float]) -> Latency:
        """Summarise latencies given in seconds."""
        ordered = sorted(values_s)
        return cls(
            p50_ms=percentile(ordered, 50) * 1000,
            p99_ms=percentile(ordered, 99) * 1000,
            max_ms=(ordered[-1] * 1000) if ordered else math.nan,
            count=len(ordered),
        )

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, rounded to 0.01 ms (the clock's useful resolution here)."""
        return {k: (round(v, 2) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    def brief(self) -> str:
        """`p50/p99/max ms` for the table."""
        return f"{self.p50_ms:.1f}/{self.p99_ms:.1f}/{self.max_ms:.1f} ms"
