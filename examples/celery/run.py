"""Celery across two "zones" with skewed clocks, on one machine — or each part on its own.

    python run.py local [--tasks 400]          # everything here, then a summary
    python run.py worker --zone zone-a [--skew +0.12] [--prometheus 127.0.0.1:9465]
    python run.py producer [--tasks 400] [--skew +0.035]

``local`` starts Debian's ``redis-server`` on a free port (or uses ``--broker``),
two workers whose wall clocks libfaketime sets 120 ms ahead and 80 ms behind,
and a producer 35 ms ahead; the broker's ``TIME`` is the reference they all
correct to.  It prints, per worker, what the raw clocks say the tasks waited
against what schedobs says after correction, p50/p99 per queue from each
worker's scrape endpoint, and checks those endpoints against the contract.
Without libfaketime (``apt-get install libfaketime``) the clocks are not
skewed, and it says so.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ZONES = {"zone-a": "+0.12", "zone-b": "-0.08"}
PRODUCER_SKEW = "+0.035"


def _env(broker: str, skew: str | None, **extra: str) -> dict[str, str]:
    env = dict(os.environ, SCHEDOBS_BROKER=broker, **extra)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE), env.get("PYTHONPATH")]))
    if skew:
        from schedobs.testing import faketime_env, find_libfaketime

        if find_libfaketime():
            env = faketime_env(skew, env)
    return env


def worker(args: argparse.Namespace) -> int:
    """Run one worker (this process becomes ``celery worker``)."""
    env = _env(args.broker, args.skew, SCHEDOBS_ZONE=args.zone,
               SCHEDOBS_PROMETHEUS=args.prometheus or "",
               SCHEDOBS_TIMINGS=args.timings or "")  # fmt: skip
    argv = [sys.executable, "-m", "celery", "-A", "tasks", "worker", "-n", f"{args.zone}@%h",
            "-Q", "emails,reports", "-c", "2", "--loglevel=INFO", "--without-gossip",
            "--without-mingle", "--without-heartbeat"]  # fmt: skip
    os.chdir(HERE)
    os.execve(sys.executable, argv, env)


def producer(args: argparse.Namespace) -> int:
    """Publish ``--tasks`` tasks to both queues (a process of its own, with its own clock)."""
    if args.skew and "FAKETIME" not in os.environ:
        env = _env(args.broker, args.skew)
        argv = [sys.executable, __file__, "producer", "--broker", args.broker, "--tasks",
                str(args.tasks)]  # fmt: skip
        return subprocess.run(argv, env=env, check=False).returncode
    os.environ.setdefault("SCHEDOBS_BROKER", args.broker)
    sys.path.insert(0, str(HERE))
    import tasks

    estimator = tasks.telemetry.clock.estimator  # type: ignore[union-attr]
    if not _wait_for(lambda: _settled(estimator.estimate()), _SETTLE_S):
        estimate = estimator.estimate()
        if estimate is None:
            print(f"no clock estimate from the broker in {_SETTLE_S:.0f} s", file=sys.stderr)
            return 1
        print(f"producer: clock estimate ±{estimate.uncertainty_ns / 1e3:.0f} µs after "
              f"{_SETTLE_S:.0f} s, wider than the example waits for; going on with it",
              file=sys.stderr)  # fmt: skip
    for i in range(args.tasks):
        if i % 4:
            tasks.send_email.apply_async((f"user{i}@example.com",), priority=i % 10)
        else:
            tasks.render_report.apply_async((20_000,), countdown=0.5 if i % 8 == 0 else None)
        time.sleep(0.002)
    print(f"published {args.tasks} tasks")
    tasks.telemetry.shutdown(timeout=5)
    return 0


# A fresh clock estimate is honest but wide (a lone sample is only bounded by half its
# round trip); the example waits for each process to settle below this before it runs,
# so that its numbers show the steady state.  On a busy machine it may take longer than
# the example waits (_SETTLE_S): it then goes on, and every latency carries its wider bound.
_SETTLED_NS = 200_000
_SETTLE_S = 20.0


def _settled(estimate: Any) -> bool:
    return estimate is not None and estimate.samples >= 5 and estimate.uncertainty_ns < _SETTLED_NS


def _uncertainty_ns(text: str) -> float:
    for line in text.splitlines():
        if line.startswith("clock_offset_uncertainty_nanoseconds"):
            return float(line.rsplit(" ", 1)[1])
    return float("inf")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def _histograms(text: str) -> dict[str, list[tuple[float, float]]]:
    """``{queue: [(le, cumulative count), ...]}`` of scheduler_schedule_latency per queue."""
    from prometheus_client.parser import text_string_to_metric_families

    found: dict[str, list[tuple[float, float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "scheduler_schedule_latency_milliseconds_bucket":
                queue = s.labels.get("messaging_destination_name", "")
                found.setdefault(queue, []).append((float(s.labels["le"]), s.value))
    return found


def _quantile(buckets: list[tuple[float, float]], q: float) -> float:
    from schedobs.contract import LATENCY_BOUNDARIES_MS, estimate_quantile

    cumulative = [count for _, count in sorted(buckets)]
    counts = [int(b - a) for a, b in zip([0.0, *cumulative[:-1]], cumulative, strict=True)]
    return float(estimate_quantile(q, LATENCY_BOUNDARIES_MS, counts))


def local(args: argparse.Namespace) -> int:
    """Everything on this machine: broker, two skewed workers, a skewed producer, a summary."""
    from schedobs.testing import find_libfaketime

    skewed = find_libfaketime() is not None
    if not skewed:
        print("libfaketime is not installed: the clocks are not skewed (apt-get install "
              "libfaketime)")  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        parts: list[_Part] = []
        try:
            broker = args.broker
            if broker is None:
                redis = _start_redis(Path(tmp))
                parts.append(redis)
                broker = redis.url
            workers: dict[str, tuple[_Part, int, Path]] = {}
            for zone, skew in ZONES.items():
                port = _free_port()
                timings = Path(tmp) / f"{zone}.jsonl"
                part = _Part.start(
                    zone,
                    [sys.executable, __file__, "worker", "--broker", broker, "--zone", zone,
                     "--skew", skew, "--prometheus", f"127.0.0.1:{port}",
                     "--timings", str(timings)],
                    Path(tmp), new_session=True,
                )  # fmt: skip
                parts.append(part)
                workers[zone] = (part, port, timings)
            ports = {zone: port for zone, (_, port, _) in workers.items()}
            _wait(lambda: all(_uncertainty_ns(_scrape(p)) < float("inf") for p in ports.values()),
                  60, "the workers' scrape endpoints and first clock samples", parts)  # fmt: skip
            if not _wait_for(
                lambda: all(_uncertainty_ns(_scrape(p)) < _SETTLED_NS for p in ports.values()),
                _SETTLE_S,
                parts,
            ):
                for zone, port in ports.items():
                    wide = _uncertainty_ns(_scrape(port)) / 1e3
                    print(f"{zone}: clock estimate ±{wide:.0f} µs after {_SETTLE_S:.0f} s; "
                          "going on with it", file=sys.stderr)  # fmt: skip
            print(f"broker and reference clock: {broker}; workers: "
                  + ", ".join(f"{z} ({ZONES[z]} s)" for z in ZONES)
                  + f"; producer ({PRODUCER_SKEW} s)")  # fmt: skip
            code = producer(argparse.Namespace(broker=broker, tasks=args.tasks, skew=PRODUCER_SKEW))
            if code:
                raise SystemExit(f"the producer failed (exit {code})")
            _wait(lambda: sum(len(_lines(t)) for _, _, t in workers.values()) >= args.tasks,
                  60, "every task to start", parts)  # fmt: skip
            time.sleep(0.5)
            if os.environ.get("SCHEDOBS_EXAMPLE_KEEP"):
                shutil.copytree(tmp, os.environ["SCHEDOBS_EXAMPLE_KEEP"], dirs_exist_ok=True)
            return _summary(workers)
        finally:
            for part in reversed(parts):
                part.stop()


class _Part:
    """One process of the example, its output in a log file that failures quote."""

    def __init__(
        self, name: str, proc: subprocess.Popen[bytes], log: Path, group: bool = False
    ) -> None:
        self.name, self.proc, self.log = name, proc, log
        self.group = group  # its own session: stopping it stops its children too
        self.url = ""

    @classmethod
    def start(cls, name: str, argv: list[str], tmp: Path, new_session: bool = False) -> _Part:
        log = tmp / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=new_session,
            )  # fmt: skip
        return cls(name, proc, log, group=new_session)

    def tail(self, lines: int = 15) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(f"  {self.name}| {line}" for line in text[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            if self.group:  # a worker: its whole session (celery's pool children)
                os.killpg(self.proc.pid, signal.SIGTERM)
            else:
                self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                print(f"{self.name} did not stop in 30 s after SIGTERM; killed", file=sys.stderr)
                self.proc.kill()
                self.proc.wait()


def _start_redis(tmp: Path) -> _Part:
    """``redis-server`` on a free port, answering PING; a port taken in between is retried."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed; give --broker redis://…")
    for _ in range(3):
        port = _free_port()
        part = _Part.start(
            "redis",
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp)],
            tmp,
        )  # fmt: skip
        part.url = f"redis://127.0.0.1:{port}/0"
        if _wait_for(lambda p=port: _pings(p), 20, [part], tolerate_exit=True):
            return part
        part.stop()
    raise SystemExit(f"redis-server did not start on a free port:\n{part.tail()}")


def _pings(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")


def _lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def _wait_for(
    condition: Any, timeout: float, parts: Sequence[_Part] = (), tolerate_exit: bool = False
) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` passes (False).

    A part that exits meanwhile ends the wait at once, quoting its log, unless
    ``tolerate_exit`` (then the wait is simply lost)."""
    deadline = time.monotonic() + timeout
    while True:
        for part in parts:
            if part.proc.poll() is not None:
                if tolerate_exit:
                    return False
                raise SystemExit(
                    f"{part.name} exited with {part.proc.returncode}; its log ends:\n{part.tail()}"
                )
        try:
            if condition():
                return True
        except OSError:
            pass
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)


def _wait(condition: Any, timeout: float, what: str, parts: Sequence[_Part]) -> None:
    if not _wait_for(condition, timeout, parts):
        logs = "\n".join(part.tail() for part in parts)
        raise SystemExit(
            f"timed out after {timeout:.0f} s waiting for {what}; the logs end:\n{logs}"
        )


def _summary(workers: dict[str, tuple[_Part, int, Path]]) -> int:
    from schedobs.check import check_prometheus_text

    print(f"\n{'worker':8} {'tasks':>5} {'raw clocks: median':>19} {'corrected: median':>18} "
          f"{'± (99.7 %)':>10} {'unresolved':>10}")  # fmt: skip
    failed = False
    for zone, (_, port, path) in workers.items():
        timings = [t for t in _lines(path) if not t["eta"]]
        raw = statistics.median(t["uncorrected_ms"] for t in timings)
        corrected = statistics.median(t["latency_ms"] for t in timings)
        bound = statistics.median(t["uncertainty_ms"] for t in timings)
        unresolved = sum(1 for t in _lines(path) if t["unresolved"])
        print(f"{zone:8} {len(timings):5} {raw:16.3f} ms {corrected:15.3f} ms {bound:7.3f} ms "
              f"{unresolved:10}")  # fmt: skip
        text = _scrape(port)
        for queue, buckets in sorted(_histograms(text).items()):
            print(
                f"  {queue:8} p50 {_quantile(buckets, 0.5):8.3f} ms   "
                f"p99 {_quantile(buckets, 0.99):8.3f} ms   (from its scrape endpoint)"
            )
        report = check_prometheus_text(text, source=f"{zone} :{port}")
        print(f"  contract check: {'conforms' if report.ok else 'VIOLATIONS'}")
        failed = failed or not report.ok
    print(
        "\nraw = what the two wall clocks say (as tools without correction report it); "
        "ETA tasks left out of the medians"
    )
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("local", "worker", "producer"):
        p = sub.add_parser(name)
        p.add_argument("--broker", default=None if name == "local" else
                       os.environ.get("SCHEDOBS_BROKER", "redis://127.0.0.1:6379/0"))  # fmt: skip
        if name in ("local", "producer"):
            p.add_argument("--tasks", type=int, default=400)
        if name in ("worker", "producer"):
            p.add_argument("--skew", default=None, help="wall-clock offset, e.g. +0.12 (s)")
        if name == "worker":
            p.add_argument("--zone", required=True)
            p.add_argument("--prometheus", default=None, help="host:port of the scrape endpoint")
            p.add_argument("--timings", default=None, help="file for one JSON line per task")
    args = parser.parse_args()
    if getattr(args, "tasks", 1) < 1:
        parser.error("--tasks must be at least 1")
    return int({"local": local, "worker": worker, "producer": producer}[args.command](args) or 0)


if __name__ == "__main__":
    sys.exit(main())
