"""What CeleryInstrumentation costs a real worker: tasks/s with and without it, side by side.

Run: ``make bench`` (or ``python benchmarks/bench_celery.py [--quick]``).  Starts
Debian's ``redis-server`` on a free loopback port.  A round publishes N tasks
while no worker runs (an instrumented producer for the instrumented worker),
starts ``celery worker`` (prefork) and times how long it takes to start them
all: from the first message it takes off its queue until the queue and its
unacknowledged set are empty (Celery acknowledges a task as it starts), polled
on the broker — a measure that does not depend on the instrumentation.  Two
ways, because on a shared 2-core machine throughput swings by ±15 % from one
moment to the next:

- **at once, one core each**: a plain and an instrumented worker (one pool
  process each) drain their own queues (separate Redis databases) at the same
  time, each pinned to its own core (``taskset``), the cores swapped every
  round.  Whatever the machine does, it does to both: the ratio of the two
  rates within a round is the figure to trust.
- **one after the other, the whole machine**: a worker with two pool
  processes, plain and instrumented rounds alternating, with the CPU the
  worker and its pool spent per task beside.

Also the bytes the publish stamp adds to every message, read from the broker.

Goal (issue #16): on 1 ms tasks, instrumented ≤ 5 % slower; empty tasks stated.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "bench"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Redis:
    """Debian's redis-server on a free loopback port, and a kept connection per database."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (`make test` installs it)")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._clients: dict[int, Any] = {}
        deadline = time.monotonic() + 20
        while True:
            try:
                self.client(0).ping()
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int) -> Any:
        if db not in self._clients:
            import redis

            self._clients[db] = redis.Redis(port=self.port, db=db)
        return self._clients[db]

    def waiting(self, db: int) -> tuple[int, int]:
        """(messages in the queue, delivered but not acknowledged), in one round trip on a
        kept connection: the poller must not take the CPU the workers are measured on."""
        pipe = self.client(db).pipeline(transaction=False)
        pipe.llen(QUEUE)
        pipe.hlen("unacked")
        queued, unacked = pipe.execute()
        return int(queued), int(unacked)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def env(broker: str, instrument: bool) -> dict[str, str]:
    return dict(
        os.environ,
        SCHEDOBS_BENCH_BROKER=broker,
        SCHEDOBS_BENCH_INSTRUMENT="1" if instrument else "0",
        PYTHONPATH=str(ROOT / "benchmarks"),
        PYTHONWARNINGS="ignore",
    )


def publish(broker: str, instrument: bool, task: str, count: int) -> None:
    code = (
        "import time, _celery_app as m\n"
        "if m.os.environ['SCHEDOBS_BENCH_INSTRUMENT'] == '1':\n"
        "    e = m.telemetry.clock.estimator\n"
        "    while e.accepted < 3: time.sleep(0.05)\n"
        f"sig = m.{task}.s()\n"
        f"for _ in range({count}): sig.apply_async()\n"
    )
    subprocess.run([sys.executable, "-c", code], env=env(broker, instrument), check=True,
                   cwd=ROOT / "benchmarks", timeout=300)  # fmt: skip


def start_worker(broker: str, instrument: bool, processes: int, cpu: int | None) -> Any:
    argv = [sys.executable, "-m", "celery", "-A", "_celery_app", "worker", "-Q", QUEUE,
            "-c", str(processes), "-P", "prefork", "--loglevel=ERROR", "--without-gossip",
            "--without-mingle", "--without-heartbeat"]  # fmt: skip
    if cpu is not None:
        argv = ["taskset", "-c", str(cpu), *argv]
    return subprocess.Popen(
        argv, cwd=ROOT / "benchmarks", env=env(broker, instrument),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip


def stop_worker(worker: Any) -> None:
    os.killpg(worker.pid, signal.SIGTERM)
    worker.wait(timeout=60)


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` and its descendants so far (Linux)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue  # it ended meanwhile
    return total


def race(redis: Redis, task: str, count: int, swap: bool) -> tuple[float, float]:
    """A plain and an instrumented worker (one pool process each, one core each) draining
    ``count`` tasks at once: (plain tasks/s, instrumented tasks/s)."""
    dbs = {False: 1, True: 2}
    for instrument, db in dbs.items():
        redis.client(db).flushdb()
        publish(redis.url(db), instrument, task, count)
    cpus = {False: 1, True: 0} if swap else {False: 0, True: 1}
    workers = {i: start_worker(redis.url(dbs[i]), i, 1, cpus[i]) for i in dbs}
    began: dict[bool, float] = {}
    ended: dict[bool, float] = {}
    try:
        deadline = time.monotonic() + 300
        while len(ended) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not drain their queues")
            for instrument, db in dbs.items():
                queued, unacked = redis.waiting(db)
                now = time.perf_counter()
                if instrument not in began and queued < count:
                    began[instrument] = now
                if instrument in began and instrument not in ended and (queued, unacked) == (0, 0):
                    ended[instrument] = now
            time.sleep(0.002)
    finally:
        for worker in workers.values():
            stop_worker(worker)
    return count / (ended[False] - began[False]), count / (ended[True] - began[True])


def drain(redis: Redis, instrument: bool, task: str, count: int) -> tuple[float, float]:
    """A worker with two pool processes draining ``count`` tasks alone: (tasks started per
    second, CPU µs the worker and its pool spent per task meanwhile)."""
    redis.client(0).flushdb()
    publish(redis.url(0), instrument, task, count)
    worker = start_worker(redis.url(0), instrument, 2, None)
    try:
        deadline = time.monotonic() + 120
        while redis.waiting(0)[0] == count:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("the worker took nothing")
            time.sleep(0.001)
        started, cpu = time.perf_counter(), tree_cpu_s(worker.pid)
        while redis.waiting(0) != (0, 0):
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not drain the queue")
            time.sleep(0.005)
        elapsed, cpu = time.perf_counter() - started, tree_cpu_s(worker.pid) - cpu
    finally:
        stop_worker(worker)
    return count / elapsed, cpu / count * 1e6


def stamp_bytes(redis: Redis) -> int:
    """Bytes the publish stamp adds to one message in the broker."""
    sizes = {}
    for instrument in (False, True):
        redis.client(0).flushdb()
        publish(redis.url(0), instrument, "empty", 1)
        sizes[instrument] = len(redis.client(0).lindex(QUEUE, 0))
    return sizes[True] - sizes[False]


def _rounds(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.0f}" for v in values) + "]"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer tasks and rounds")
    args = parser.parse_args()
    rounds = 1 if args.quick else 8
    # --quick shows that it runs (one workload, few tasks: most of a round is a worker starting).
    workloads = {"sleep_1ms": 100} if args.quick else {"sleep_1ms": 2000, "empty": 3000}
    pinned = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    with tempfile.TemporaryDirectory() as tmp:
        redis = Redis(Path(tmp))
        try:
            import celery

            print(f"Celery {celery.__version__}, prefork workers, Redis broker on loopback; "
                  f"{rounds} rounds per figure, medians")  # fmt: skip
            if pinned:
                print("at once, one core each (one pool process each, cores swapped every round):")
                for task, count in workloads.items():
                    pairs = [race(redis, task, count, swap=bool(i % 2)) for i in range(rounds)]
                    ratios = [plain / inst for plain, inst in pairs]
                    each = [round(r, 3) for r in ratios]
                    print(f"  {task:>10} x{count}: ratio plain/instrumented "
                          f"{statistics.median(ratios):.3f} (rounds {each};"
                          f" plain {_rounds([p for p, _ in pairs])} vs instrumented "
                          f"{_rounds([i for _, i in pairs])} tasks/s)")  # fmt: skip
            else:
                print("at once, one core each: skipped (needs taskset and two cores)")
            print("one after the other, the whole machine (two pool processes, alternating):")
            for task, count in workloads.items():
                runs: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
                for _ in range(rounds):
                    for instrument in (False, True):
                        runs[instrument].append(drain(redis, instrument, task, count))
                rate = {i: statistics.median(r for r, _ in runs[i]) for i in runs}
                cpu = {i: statistics.median(c for _, c in runs[i]) for i in runs}
                print(f"  {task:>10} x{count}: plain {rate[False]:.0f} tasks/s, instrumented "
                      f"{rate[True]:.0f} tasks/s: ratio plain/instrumented "
                      f"{rate[False] / rate[True]:.3f} (rounds "
                      f"{_rounds([r for r, _ in runs[False]])} vs "
                      f"{_rounds([r for r, _ in runs[True]])})")  # fmt: skip
                print(
                    f"  {'':>10} CPU per task (worker + pool): plain {cpu[False]:.0f} µs, "
                    f"instrumented {cpu[True]:.0f} µs: {cpu[True] - cpu[False]:+.0f} µs"
                )
            print(f"publish stamp: +{stamp_bytes(redis)} bytes per message in the broker")
            print("goal: sleep_1ms ratio plain/instrumented <= 1.05 (at most 5 % slower)")
        finally:
            redis.stop()


if __name__ == "__main__":
    main()
