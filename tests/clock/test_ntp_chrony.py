"""NTPv4 against a real server: Debian's chrony on loopback (see tests/_chrony_server.py)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from schedobs.clock import NtpKey
from schedobs.clock._ntp import query
from schedobs.testing import faketime_env, find_libfaketime

from .._chrony_server import ChronyServer

pytestmark = pytest.mark.integration


def _connected(server: ChronyServer) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect(("127.0.0.1", server.port))
    return sock


def test_offset_and_delay_of_a_skewed_local_clock(chrony_server: ChronyServer) -> None:
    # chrony serves this host's own clock; ours is skewed in-process by +37 ms
    # and 40 ppm, so the measured offset (reference − local) must be −(skew).
    t0 = time.time_ns()

    def skewed() -> int:
        now = time.time_ns()
        return now + 37_000_000 + (now - t0) * 40 // 1_000_000

    with _connected(chrony_server) as sock:
        for _ in range(5):
            t1, t2, t3, t4, reply = query(sock, clock_ns=skewed)
            true_skew = skewed() - time.time_ns()
            offset = ((t2 - t1) + (t3 - t4)) / 2
            delay = (t4 - t1) - (t3 - t2)
            assert 0 <= delay < 50_000_000
            # A two-way exchange is exact to within half its delay (plus the
            # microseconds between reading the skew and the exchange).
            assert abs(offset + true_skew) <= delay / 2 + 100_000, (offset, true_skew, delay)
            assert reply.stratum == 8 and reply.version == 4


@pytest.mark.parametrize("hash_name", ["MD5", "SHA1", "SHA256"])
def test_an_authenticated_exchange_with_the_right_key(
    chrony_server: ChronyServer, hash_name: str
) -> None:
    with _connected(chrony_server) as sock:
        _, t2, t3, _, reply = query(sock, key=chrony_server.keys[hash_name])
    assert t3 >= t2 and reply.stratum == 8


def test_a_wrong_key_gets_no_time(chrony_server: ChronyServer) -> None:
    wrong = NtpKey(3, "SHA256", b"not the secret chrony was given!")
    with _connected(chrony_server) as sock, pytest.raises(TimeoutError):
        query(sock, key=wrong, timeout=0.5)  # chrony drops it; nothing unsigned is believed


def _skewed_clock(skew_ns: int = 37_000_000, ppm: int = 40):  # type: ignore[no-untyped-def]
    """A local clock ``skew_ns`` ahead of this host's and running ``ppm`` fast.

    ``clock.truth(local)`` is the true offset (reference − local) at the local time
    ``local``, computed, not read: two readings would differ by whatever ran between them."""
    t0 = time.time_ns()

    def clock() -> int:
        now = time.time_ns()
        return now + skew_ns + (now - t0) * ppm // 1_000_000

    def truth(local: int) -> int:
        # local − skew − t0 = d·(1 + ppm/1e6) with d = now − t0: solved in the small
        # quantities, where a float is exact to well under a nanosecond.
        elapsed = round((local - skew_ns - t0) * 1_000_000 / (1_000_000 + ppm))
        return t0 + elapsed - local

    clock.truth = truth  # type: ignore[attr-defined]
    return clock


def test_the_prober_measures_through_ntp(chrony_server: ChronyServer) -> None:
    from schedobs.clock import ClockProber, OffsetEstimator

    clock = _skewed_clock()
    estimator = OffsetEstimator()
    prober = ClockProber(f"ntp://{chrony_server.address}", estimator, clock_ns=clock)
    with prober.open_socket() as sock:
        for _ in range(5):
            assert prober.probe_once(sock)
    estimate = estimator.estimate(at_ns=clock())
    assert estimate is not None and prober.samples == 5
    truth = time.time_ns() - clock()  # reference − local
    assert abs(estimate.offset_ns - truth) < 200_000  # loopback: tens of µs


def test_the_estimate_converges_within_its_reported_uncertainty(
    chrony_server: ChronyServer,
) -> None:
    from schedobs.clock import ClockProber, estimator_for

    clock = _skewed_clock()
    reference = f"ntp://{chrony_server.address}"
    estimator = estimator_for(reference)  # as configure() builds it for an NTP reference
    prober = ClockProber(reference, estimator, clock_ns=clock)
    with prober.open_socket() as sock:  # as the prober's thread does: kernel timestamps
        for _ in range(30):
            prober.probe_once(sock)
            time.sleep(0.05)
    at = clock()
    estimate = estimator.estimate(at_ns=at)
    truth = clock.truth(at)
    assert estimate is not None
    assert abs(estimate.offset_ns - truth) <= 3 * estimate.uncertainty_ns
    # The local clock runs 40 ppm fast, so the offset (reference − local) falls at
    # 40 ppm; the 0.x estimator's ridge held this near 0 (xfail until issue #11).
    assert abs(estimate.freq_ppm + 40) < 10, estimate


def test_kernel_timestamps_take_host_delays_out_of_the_path(chrony_server: ChronyServer) -> None:
    """Chrony on loopback serves this host's own clock, so the true offset is 0.

    Python-side t1/t4 put this host's send call and its wake-up on the reply into
    the measured round trip (100-470 µs here after 20 ms of quiet; 20-30 µs on a
    busy machine); the kernel's stamps leave them out, so the round trip is
    shorter with them, and what is left of the offset is chrony's own: its
    transmit timestamp is read before its send (basic mode), about 5 µs here.
    Both are measured, alternating, on the same server.

    (The offsets are not compared with each other: the host's delays on the two
    legs partly cancel, and on a busy machine the Python-side median came out
    nearer 0 than chrony's own lag: -4.4 against -5.3 µs.)
    """
    import statistics

    from schedobs.clock import ClockProber, OffsetEstimator
    from schedobs.clock._ntp import query

    prober = ClockProber(f"ntp://{chrony_server.address}", OffsetEstimator())
    offsets: dict[str, list[float]] = {"kernel": [], "python": []}
    round_trips: dict[str, list[int]] = {"kernel": [], "python": []}
    with prober.open_socket() as stamped, _connected(chrony_server) as plain:
        for _ in range(15):
            for sock, kind in ((stamped, "kernel"), (plain, "python")):
                time.sleep(0.02)  # let the thread go idle, as between real probes
                t1, t2, t3, t4, _ = query(sock)
                offsets[kind].append(((t2 - t1) + (t3 - t4)) / 2)
                round_trips[kind].append((t4 - t1) - (t3 - t2))
    assert abs(statistics.median(offsets["kernel"])) < 9_000, offsets
    delay = {kind: statistics.median(values) for kind, values in round_trips.items()}
    assert delay["kernel"] < delay["python"], (delay, round_trips)


def test_configure_uses_an_ntp_reference(chrony_server: ChronyServer) -> None:
    import schedobs

    from .._prometheus_server import poll

    telemetry = schedobs.configure(
        "ntp-client",
        prometheus=None,
        otlp_endpoint=None,
        set_global=False,
        clock=schedobs.ClockCompensation.create(
            f"ntp://{chrony_server.address}", key=chrony_server.keys["SHA256"], interval=0.05
        ),
    )
    try:
        assert telemetry.clock is not None
        poll(lambda: telemetry.clock.estimator.estimate(), 10.0, "an NTP estimate")  # type: ignore[union-attr]
        assert telemetry.clock.prober.lost == 0
    finally:
        telemetry.shutdown(timeout=5)


def test_the_cli_probes_an_ntp_server_with_a_key_file(
    chrony_server: ChronyServer, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    key = chrony_server.keys["SHA1"]
    key_file = tmp_path / "chrony.keys"
    key_file.write_text(f"# a chrony key file\n{key.key_id} SHA1 HEX:{key.secret.hex()}\n")
    out = subprocess.run(
        [sys.executable, "-m", "schedobs", "clock", "probe", f"ntp://{chrony_server.address}",
         "--count", "3", "--interval", "0.05", "--key-file", str(key_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "offset" in out.stdout and "3 samples" in out.stdout


def test_chrony_rate_limiting_drops_a_fast_prober_and_spares_a_polite_one(
    tmp_path: Path,
) -> None:
    """chrony 4.3 enforces ``ratelimit`` by dropping requests (its ``kod`` option, which
    answers with a RATE kiss, came in a later release: the kiss is tested against our
    own responder in test_ntp_prober.py).  A prober faster than the limit loses most
    probes, counted as lost, with no retry storm; one at the server's pace loses none."""
    from schedobs.clock import ClockProber, OffsetEstimator

    # One response per 2**-1 s per client, bursts of one, at most 1/16 leaked.
    server = ChronyServer(tmp_path, "ratelimit interval -1 burst 1 leak 4\n")
    try:
        fast = ClockProber(f"ntp://{server.address}", OffsetEstimator(), timeout=0.05)
        with fast.open_socket() as sock:
            for _ in range(40):
                fast.probe_once(sock)
        # chrony suspends the limit for a while for clients that poll faster when
        # unanswered (the fast prober looks like one), so not every excess is dropped.
        assert fast.lost >= 10, (fast.samples, fast.lost)
        assert fast.samples + fast.lost == 40

        time.sleep(1.0)  # let the limiter's bucket refill
        polite = ClockProber(f"ntp://{server.address}", OffsetEstimator(), timeout=0.5)
        with polite.open_socket() as sock:
            for _ in range(5):
                polite.probe_once(sock)
                time.sleep(0.6)
        assert polite.lost == 0 and polite.samples == 5
    finally:
        server.stop()


@pytest.mark.skipif(not find_libfaketime(), reason="libfaketime is installed by `make test`")
def test_a_process_whose_clock_libfaketime_shifts_is_measured_on_its_own_clock(
    chrony_server: ChronyServer,
) -> None:
    """libfaketime shifts the clock the process reads, not the kernel's datagram stamps:
    a prober that trusted those stamps would mix two clocks in one sample."""
    import subprocess
    import sys

    script = (
        "import time\n"
        "from schedobs.clock import ClockProber, OffsetEstimator\n"
        "e = OffsetEstimator()\n"
        f"p = ClockProber('ntp://{chrony_server.address}', e)\n"
        "with p.open_socket() as s:\n"
        "    for _ in range(5):\n"
        "        p.probe_once(s)\n"
        "est = e.estimate()\n"
        "print(p.samples, p.invalid, est.offset_ns, est.uncertainty_ns)\n"
    )
    for shift, expected_ns in (("+0.12", -120_000_000), ("-0.08", 80_000_000)):
        env = faketime_env(shift)
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60,
            check=True,
        )  # fmt: skip
        samples, invalid, offset, sigma = map(int, out.stdout.split())
        assert (samples, invalid) == (5, 0), out.stdout
        assert abs(offset - expected_ns) < 1_000_000, (shift, offset)
        assert abs(offset - expected_ns) <= 3 * sigma + 100_000, (shift, offset, sigma)
