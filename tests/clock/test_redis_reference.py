"""A Redis server's TIME as the reference clock, against a real Debian redis-server."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from schedobs.clock import ClockProber, OffsetEstimator, estimator_for
from schedobs.clock._exchange import RedisExchange
from schedobs.clock._prober import parse_reference
from schedobs.clock._redis import RedisReference, connect, parse_redis_url, query_time

from .._prometheus_server import poll
from .._redis_server import RedisServer

pytestmark = pytest.mark.integration

SKEW_NS = 120_000_000  # this process's stand-in clock runs 120 ms ahead, and 40 ppm fast


def _skewed_clock():  # type: ignore[no-untyped-def]
    """A local clock 120 ms ahead and 40 ppm fast; ``clock(real)`` reads it at a given real time."""
    t0 = time.time_ns()

    def clock(real: int | None = None) -> int:
        now = time.time_ns() if real is None else real
        return now + SKEW_NS + (now - t0) * 40 // 1_000_000

    return clock


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://broker", RedisReference("broker", 6379)),
        ("redis://127.0.0.1:6390/0", RedisReference("127.0.0.1", 6390)),
        ("redis://:s%40cret@h:1", RedisReference("h", 1, None, "s@cret")),
        ("redis://user:pw@h:1/2", RedisReference("h", 1, "user", "pw")),
        ("redis://[::1]:7000", RedisReference("::1", 7000)),
    ],
)
def test_redis_urls_parse(url: str, expected: RedisReference) -> None:
    parsed = parse_redis_url(url)
    assert parsed == expected
    assert (parsed.username, parsed.password) == (expected.username, expected.password)
    assert parse_reference(url) == ("redis", expected.host, expected.port)
    assert "pw" not in repr(parsed) and "s@cret" not in str(parsed)


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("redis://", "looks like 'redis://host:6379'"),
        ("redis://h:99999", "looks like"),
        ("redis://h:6379/db", "looks like"),
        ("redis://h:6379?x=1", "looks like"),
        ("rediss://h:6379", "TLS Redis"),
    ],
)
def test_bad_redis_urls_are_refused_with_the_form_they_should_have(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_redis_url(url)
    with pytest.raises(ValueError, match=message):
        ClockProber(url, OffsetEstimator())


def test_a_redis_reference_takes_no_key() -> None:
    with pytest.raises(ValueError, match="takes no key: put the password in the URL"):
        ClockProber("redis://h:1", OffsetEstimator(), key=b"k" * 16)


def test_one_time_exchange_brackets_the_servers_clock(redis_server: RedisServer) -> None:
    # The server runs on this host's clock: its TIME lies between t1 and t4.
    with connect(parse_redis_url(redis_server.url), 1.0) as sock:
        for _ in range(5):
            t1, t2, t3, t4 = query_time(sock)
            assert t2 == t3
            assert t1 - 1_000 <= t2 <= t4 + 1_000  # TIME has whole microseconds
            assert 0 < t4 - t1 < 50_000_000


def test_the_prober_measures_a_skewed_clock_against_redis(redis_server: RedisServer) -> None:
    clock = _skewed_clock()
    estimator = estimator_for(redis_server.url)  # user-space timing: a wider host prior
    prober = ClockProber(redis_server.url, estimator, clock_ns=clock)
    with prober.open_socket() as sock:
        for _ in range(20):
            assert prober.probe_once(sock)
            time.sleep(0.05)
    real = time.time_ns()
    local = clock(real)
    estimate = estimator.estimate(at_ns=local)
    truth = real - local  # reference − local: about −120 ms
    assert estimate is not None and prober.samples == 20 and prober.last_rtt_ns > 0
    assert abs(estimate.offset_ns - truth) <= 3 * estimate.uncertainty_ns, (estimate, truth)
    assert abs(estimate.offset_ns - truth) < 200_000  # loopback: tens of µs
    assert prober.outcomes() == {
        "sample": 20, "lost": 0, "kiss": 0, "unsynchronised": 0, "invalid": 0,
    }  # fmt: skip


def test_a_probe_after_an_idle_pause_is_not_skewed_by_waking_the_server(
    redis_server: RedisServer,
) -> None:
    # Both readings are taken in user space. After a pause, the request's leg
    # includes waking the idle server (and its CPU), the reply's leg does not: on
    # this kind of VM a lone TIME exchange then read the server ~110 µs late, with
    # round trips of 0.1-1 ms, and every probe of a 5 s schedule is such a probe.
    exchange = RedisExchange(parse_redis_url(redis_server.url), time.time_ns)
    errors = []
    with exchange.open(1.0) as sock:
        for _ in range(30):
            time.sleep(0.05)
            outcome = exchange.exchange(sock, 1.0)
            assert outcome.kind == "sample" and outcome.times is not None
            t1, t2, _, t4 = outcome.times
            errors.append(t2 - (t1 + t4) / 2)  # the server reads this host's clock: truth 0
    errors.sort()
    assert abs(errors[len(errors) // 2]) < 20_000, [round(e / 1000, 1) for e in errors]


def test_a_password_protected_server(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer(tmp_path, password="hunter22")
    try:
        good = ClockProber(server.url, OffsetEstimator())
        with good.open_socket() as sock:
            assert good.probe_once(sock)
        wrong = ClockProber(f"redis://:nope@127.0.0.1:{server.port}", OffsetEstimator())
        with caplog.at_level(logging.WARNING, logger="schedobs"):
            for _ in range(2):
                with pytest.raises(OSError, match=r"WRONGPASS|invalid"):
                    wrong.open_socket()
        assert [r.getMessage() for r in caplog.records if "refused the login" in r.getMessage()]
        assert len([r for r in caplog.records if "refused the login" in r.getMessage()]) == 1
        anonymous = ClockProber(f"redis://127.0.0.1:{server.port}", OffsetEstimator())
        with anonymous.open_socket() as sock:
            assert not anonymous.probe_once(sock)  # -NOAUTH: an error reply, not a time
        assert anonymous.outcomes()["invalid"] == 1 and anonymous.samples == 0
    finally:
        server.stop()


def test_a_stopped_server_is_lost_not_a_crash(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)
    prober = ClockProber(server.url, OffsetEstimator(), timeout=0.5, interval=0.05)
    prober.start()
    try:
        poll(lambda: prober.samples >= 3 or None, 10.0, "samples from redis")
        server.stop()
        poll(lambda: prober.lost >= 2 or None, 10.0, "lost probes once redis is gone")
        assert prober._thread.is_alive()
    finally:
        prober.close()


def test_configure_uses_a_redis_reference(redis_server: RedisServer) -> None:
    import schedobs

    telemetry = schedobs.configure(
        "redis-client",
        prometheus=None,
        otlp_endpoint=None,
        set_global=False,
        clock=schedobs.ClockCompensation.create(redis_server.url, interval=0.05),
    )
    try:
        assert telemetry.clock is not None
        estimate = poll(
            lambda: telemetry.clock.estimator.estimate(),
            10.0,
            "an estimate from redis",  # type: ignore[union-attr]
        )
        # Same host: the truth is 0, within the estimate's uncertainty (a first estimate
        # may rest on one sample, whose round trip a busy machine can stretch to ms).
        assert abs(estimate.offset_ns) <= 3 * estimate.uncertainty_ns, estimate
        assert telemetry.clock.prober.protocol == "redis"
    finally:
        telemetry.shutdown(timeout=5)


def test_the_cli_probes_redis(redis_server: RedisServer) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "schedobs", "clock", "probe", redis_server.url, "--count", "4"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "offset" in out.stdout and "4 samples" in out.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "schedobs", "clock", "probe", "redis://127.0.0.1:1"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert refused.returncode == 1
    assert "cannot reach redis://127.0.0.1:1" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_a_redis_reference_gets_a_wider_host_prior_than_a_kernel_stamped_one() -> None:
    samples = [(1_000_000 * i, 1_000_000 * i + 50_000, 1_000_000 * i + 50_000,
                1_000_000 * i + 100_000) for i in range(1, 30)]  # fmt: skip
    sigmas = {}
    for reference in ("redis://h:1", "ntp://h"):
        estimator = estimator_for(reference)
        for sample in samples:
            estimator.add_sample(*sample)
        estimate = estimator.estimate(at_ns=30_000_000)
        assert estimate is not None
        sigmas[reference] = estimate.uncertainty_ns
    assert sigmas["redis://h:1"] >= 10_000 > sigmas["ntp://h"]
