"""How noisy a set of timings is: the spread every measurement reports and is checked on."""

from __future__ import annotations

import statistics
from collections.abc import Sequence

# A timing whose interquartile range exceeds this fraction of its median is re-measured,
# and flagged noisy if it stays so. 10 % separates a quiet 2-core host (3–6 % on model
# runs of a few ms and up) from one where another process competes for the cores.
NOISY_SPREAD = 0.10


def relative_spread(values: Sequence[float]) -> float:
    """Interquartile range / median; 0 for fewer than two values or a zero median."""
    if len(values) < 2:
        return 0.0
    median = statistics.median(values)
    if median <= 0:
        return 0.0
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (q3 - q1) / median
