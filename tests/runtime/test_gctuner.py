"""The opt-in GC tuner: its decision rule, bounds, export and restore."""

from __future__ import annotations

import gc
from dataclasses import replace

import pytest

from schedobs.contract import Registry
from schedobs.runtime import GCTuner, Runtime
from schedobs.runtime._stats import LatencyCounts


def _with_latency(rt: Runtime, counts: list[int]) -> None:
    base = rt.stats()
    bounds = base.latency["global"].bounds_ns
    assert bounds is not None
    fake = replace(base, latency={"global": LatencyCounts(bounds, tuple(counts), 0, 0, 0)})
    rt.stats = lambda: fake  # type: ignore[method-assign]


def test_threshold_follows_the_latency_spread_and_is_restored() -> None:
    registry = Registry()
    rt = Runtime(procs=1, instrument=True, registry=registry, name="gc")
    original = gc.get_threshold()
    tuner = GCTuner(rt, target_spread=10, maximum=5_000)
    try:
        n = len(rt.stats().latency["global"].bounds_ns) + 1
        tight = [0] * n
        tight[3] = 1000  # everything in one bucket: spread ~1
        wide = [0] * n
        wide[3], wide[12] = 980, 20  # a 100 ms tail against a 0.1 ms median
        counts = [0] * n
        _with_latency(rt, counts)
        tuner.step()  # baseline
        for _ in range(5):
            counts = [a + b for a, b in zip(counts, wide, strict=True)]
            _with_latency(rt, counts)
            tuner.step()
        assert tuner.threshold == 5_000  # doubled up to the maximum
        assert gc.get_threshold()[0] == 5_000
        exported = [
            p.value  # type: ignore[union-attr]
            for s in registry.collect()
            for p in s.points
            if s.spec.name == "scheduler.gc.threshold"
        ]
        assert exported == [5_000]
        for _ in range(10):
            counts = [a + b for a, b in zip(counts, tight, strict=True)]
            _with_latency(rt, counts)
            tuner.step()
        assert tuner.threshold == original[0]  # back down, never below where it started
    finally:
        tuner.close()
        rt.shutdown()
    assert gc.get_threshold() == original


def test_needs_an_instrumented_runtime() -> None:
    rt = Runtime(procs=1)
    try:
        with pytest.raises(ValueError, match="instrumented runtime"):
            GCTuner(rt)
    finally:
        rt.shutdown()
