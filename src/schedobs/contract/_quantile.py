"""Quantiles from bucket counts, the way Prometheus' ``histogram_quantile`` estimates them."""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["estimate_quantile"]


def estimate_quantile(q: float, boundaries: Sequence[float], bucket_counts: Sequence[int]) -> float:
    """Estimate the ``q`` quantile (0..1) from explicit-bucket counts.

    Linear interpolation inside the bucket holding the rank, with 0 as the
    lower edge of the first bucket; a rank in the overflow bucket returns the
    last boundary (as Prometheus does).  Returns NaN when there are no counts.

    >>> estimate_quantile(0.5, [1.0, 2.0], [0, 4, 0])
    1.5
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within [0, 1], got {q}")
    if len(bucket_counts) != len(boundaries) + 1:
        raise ValueError("bucket_counts must have one more entry than boundaries")
    total = sum(bucket_counts)
    if total == 0:
        return math.nan
    rank = q * total
    seen = 0
    for i, count in enumerate(bucket_counts):
        if count and seen + count >= rank:
            if i == len(boundaries):
                return float(boundaries[-1])
            lower = 0.0 if i == 0 else float(boundaries[i - 1])
            upper = float(boundaries[i])
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return float(boundaries[-1])
