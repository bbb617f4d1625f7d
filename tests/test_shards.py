"""Per-thread rows: exact totals under concurrency, bounded memory under thread churn."""

from __future__ import annotations

import itertools
import threading

from schedobs._shards import Shards


def _sum(into: list[float], row: list[float]) -> None:
    for i, v in enumerate(row):
        into[i] += v


def _bump(shards: Shards, n: int) -> None:
    for _ in range(n):
        try:
            row = shards.local.row
        except AttributeError:
            row = shards.new_row()
        row[0] += 1
        row[1] += 2


def test_concurrent_increments_are_exact() -> None:
    shards = Shards([0, 0], _sum)
    threads = [threading.Thread(target=_bump, args=(shards, 20_000)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert shards.merged() == [160_000, 320_000]


def test_rows_of_finished_threads_are_folded_and_released() -> None:
    shards = Shards([0, 0], _sum)
    for _ in range(50):
        t = threading.Thread(target=_bump, args=(shards, 10))
        t.start()
        t.join()
    assert shards.merged() == [500, 1000]
    # Every row belonged to a finished thread: all folded into the base.
    assert shards.row_count() == 0
    assert shards.merged() == [500, 1000]


def test_merge_while_recording_never_loses_counts() -> None:
    shards = Shards([0, 0], _sum)
    stop = threading.Event()
    seen: list[float] = []

    def collector() -> None:
        while not stop.is_set():
            seen.append(shards.merged()[0])

    c = threading.Thread(target=collector)
    c.start()
    workers = [threading.Thread(target=_bump, args=(shards, 30_000)) for _ in range(4)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    stop.set()
    c.join()
    assert shards.merged()[0] == 120_000
    # Cumulative: what a collector sees never goes backwards.
    assert all(a <= b for a, b in itertools.pairwise(seen))
