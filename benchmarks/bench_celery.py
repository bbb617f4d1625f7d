"""What CeleryInstrumentation costs a real worker: tasks/s with and without it, side by side.

Run: ``make bench`` (or ``python benchmarks/bench_celery.py [--quick]``).  Starts
Debian's ``redis-server`` on a free loopback port.  Each round publishes N tasks
while no worker runs (instrumented or plain producer to match), then starts a
``celery worker`` (prefork, 2 processes) and times how long it takes to start
them all, from the first message it takes off the queue until the queue and
the unacknowledged set are empty (Celery acknowledges a task as it starts), by
polling the broker — a measure that does not depend on the instrumentation.
Rounds alternate plain and instrumented; medians and their ratio are printed.

The CPU the worker and its pool spent per task is printed beside: throughput on
a shared 2-core machine swings by ±15 % from round to round, CPU time much less.

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
    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server is not installed (`make test` installs it)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._client: Any = None
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while True:
            try:
                self.cli("PING")
                return
            except subprocess.CalledProcessError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def cli(self, *words: str) -> str:
        return subprocess.run(
            ["redis-cli", "-p", str(self.port), "--raw", *words],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip

    def waiting(self) -> tuple[int, int]:
        """(messages in the queue, messages delivered but not acknowledged).

        One round trip on a kept connection: the poller must not take the CPU the
        worker is being measured on (a redis-cli process per poll would).
        """
        if self._client is None:
            import redis

            self._client = redis.Redis(port=self.port)
        pipe = self._client.pipeline(transaction=False)
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


def drain(redis: Redis, instrument: bool, task: str, count: int) -> tuple[float, float]:
    """A fresh prefork worker (2 processes) draining ``count`` tasks: (tasks started per
    second, CPU µs the worker and its pool spent per task meanwhile)."""
    redis.cli("FLUSHDB")
    publish(redis.url, instrument, task, count)
    assert redis.waiting() == (count, 0)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "_celery_app", "worker", "-Q", QUEUE,
         "-c", "2", "-P", "prefork", "--loglevel=ERROR", "--without-gossip",
         "--without-mingle", "--without-heartbeat"],
        cwd=ROOT / "benchmarks", env=env(redis.url, instrument),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while redis.waiting()[0] == count:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError("the worker took nothing")
            time.sleep(0.001)
        started, cpu = time.perf_counter(), tree_cpu_s(worker.pid)
        while redis.waiting() != (0, 0):
            if time.monotonic() > deadline:
                raise RuntimeError("the worker did not drain the queue")
            time.sleep(0.005)
        elapsed, cpu = time.perf_counter() - started, tree_cpu_s(worker.pid) - cpu
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
    return count / elapsed, cpu / count * 1e6


def stamp_bytes(redis: Redis) -> int:
    """Bytes the publish stamp adds to one message in the broker."""
    sizes = {}
    for instrument in (False, True):
        redis.cli("FLUSHDB")
        publish(redis.url, instrument, "empty", 1)
        sizes[instrument] = int(redis.cli("EVAL", "return string.len(redis.call('LINDEX', "
                                          "KEYS[1], 0))", "1", QUEUE))  # fmt: skip
    return sizes[True] - sizes[False]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer tasks and rounds")
    args = parser.parse_args()
    rounds = 1 if args.quick else 9
    workloads = {"sleep_1ms": 200 if args.quick else 3000, "empty": 300 if args.quick else 5000}
    with tempfile.TemporaryDirectory() as tmp:
        redis = Redis(Path(tmp))
        try:
            print(f"Celery {_version()}, prefork worker with 2 processes, Redis broker; "
                  f"{rounds} alternating rounds, medians")  # fmt: skip
            for task, count in workloads.items():
                rates: dict[bool, list[float]] = {False: [], True: []}
                cpus: dict[bool, list[float]] = {False: [], True: []}
                for _ in range(rounds):
                    for instrument in (False, True):
                        rate, cpu = drain(redis, instrument, task, count)
                        rates[instrument].append(rate)
                        cpus[instrument].append(cpu)
                plain, inst = statistics.median(rates[False]), statistics.median(rates[True])
                paired = statistics.median(
                    a / b for a, b in zip(rates[False], rates[True], strict=True)
                )
                cpu_plain, cpu_inst = statistics.median(cpus[False]), statistics.median(cpus[True])
                print(f"{task:>10} x{count}: plain {plain:5.0f} tasks/s, instrumented {inst:5.0f} "
                      f"tasks/s: ratio plain/instrumented {plain / inst:.3f} (median of the "
                      f"rounds' own ratios {paired:.3f}; rounds {[round(r) for r in rates[False]]}"
                      f" vs {[round(r) for r in rates[True]]})")  # fmt: skip
                print(f"{'':>10} CPU per task (worker + pool): plain {cpu_plain:.0f} µs, "
                      f"instrumented {cpu_inst:.0f} µs: +{cpu_inst - cpu_plain:.0f} µs, ratio "
                      f"{cpu_inst / cpu_plain:.3f}")  # fmt: skip
            print(f"publish stamp: +{stamp_bytes(redis)} bytes per message in the broker")
            print("goal: sleep_1ms ratio <= 1.05 (instrumented at most 5 % slower)")
        finally:
            redis.stop()


def _version() -> str:
    import celery

    return str(celery.__version__)


if __name__ == "__main__":
    main()
