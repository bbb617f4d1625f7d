"""A step of this host's own wall clock, measured against CLOCK_MONOTONIC, moves the
estimator's window with it (as chrony moves its samples) instead of discarding it."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from schedobs.clock import ClockServer, OffsetEstimator
from schedobs.testing import faketime_env, find_libfaketime

REF0 = 1_700_000_000_000_000_000
OFFSET = 3_000_000  # ns: reference − local before the step
STEP = 40_000_000  # ns: the local clock jumps forward by 40 ms


def _exchange(rng: random.Random, ref: int, offset: int) -> tuple[int, int, int, int]:
    """A clean exchange (100 ± 5 µs each way) of a host whose clock reads ref − offset."""
    fwd, back = 100_000 + rng.randrange(5_000), 100_000 + rng.randrange(5_000)
    t1 = ref - offset
    t2 = ref + fwd
    t3 = t2 + 20_000
    t4 = t3 + back - offset
    return t1, t2, t3, t4


def _fed(samples: int, rng: random.Random) -> tuple[OffsetEstimator, int]:
    est = OffsetEstimator()
    ref = REF0
    for _ in range(samples):
        est.add_sample(*_exchange(rng, ref, OFFSET))
        ref += 1_000_000_000
    return est, ref


def test_a_known_local_step_keeps_what_was_learnt() -> None:
    rng = random.Random(7)
    est, ref = _fed(40, rng)
    before = est.estimate(at_ns=ref - OFFSET)
    assert before is not None and abs(before.offset_ns - OFFSET) < 5_000
    est.shift(STEP)  # the local clock now reads STEP more: offsets are STEP smaller
    after = est.estimate(at_ns=ref - OFFSET + STEP)
    assert after is not None
    assert after.samples == 40  # the window was moved, not thrown away
    assert abs(after.offset_ns - (OFFSET - STEP)) < 5_000
    assert after.uncertainty_ns <= 2 * before.uncertainty_ns
    assert est.reruns["shift"] == 1
    # The next samples, on the new scale, are folded in: no step to detect, none held.
    for _ in range(5):
        est.add_sample(*_exchange(rng, ref, OFFSET - STEP))
        ref += 1_000_000_000
    assert est.steps == 0 and len(est) == 45
    final = est.estimate(at_ns=ref - OFFSET + STEP)
    assert final is not None and abs(final.offset_ns - (OFFSET - STEP)) < 5_000


def test_without_the_shift_the_same_step_is_learnt_from_samples() -> None:
    """What the shift saves: the estimator alone needs three samples at the new level
    (a step) and restarts from them."""
    rng = random.Random(7)
    est, ref = _fed(40, rng)
    for _ in range(3):
        est.add_sample(*_exchange(rng, ref, OFFSET - STEP))
        ref += 1_000_000_000
    assert est.steps == 1 and len(est) == 3


def test_shift_checks_its_argument_and_is_harmless_before_any_sample() -> None:
    est = OffsetEstimator()
    est.shift(STEP)  # nothing learnt yet: nothing to move
    assert est.estimate() is None
    with pytest.raises(TypeError, match="step_ns must be an int"):
        est.shift(0.5)  # type: ignore[arg-type]


_PROBING = """
import json, sys, time
from schedobs.clock import ClockProber, OffsetEstimator
est = OffsetEstimator()
prober = ClockProber(sys.argv[1], est, interval=0.05).start()
for line in sys.stdin:  # one report per line the test writes
    time.sleep(1.0)
    e = est.estimate()
    print(json.dumps({"offset": e.offset_ns, "sigma": e.uncertainty_ns, "n": e.samples,
                      "local_steps": prober.local_steps, "steps": est.steps,
                      "shifts": est.reruns["shift"]}), flush=True)
prober.close()
"""


@pytest.mark.skipif(not find_libfaketime(), reason="libfaketime is installed by `make test`")
def test_a_prober_whose_wall_clock_steps_shifts_its_estimate(tmp_path: Path) -> None:
    """A real process whose wall clock libfaketime steps by +40 ms while it probes a
    reference on the true clock: its estimate follows at once, samples kept."""
    step_file = str(tmp_path / "offset")
    env = faketime_env("+0", step_file=step_file)
    with ClockServer(port=0) as server:
        reference = f"{server.address[0]}:{server.address[1]}"
        child = subprocess.Popen(
            [sys.executable, "-c", _PROBING, reference], env=env, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert child.stdin is not None and child.stdout is not None
        try:
            child.stdin.write("\n")
            child.stdin.flush()
            before = json.loads(child.stdout.readline())
            Path(step_file).write_text("+0.04\n")
            child.stdin.write("\n")
            child.stdin.flush()
            after = json.loads(child.stdout.readline())
        finally:
            child.stdin.close()
            child.wait(timeout=30)
            child.stdout.close()
    assert abs(before["offset"]) < 2_000_000 and before["local_steps"] == 0
    assert after["local_steps"] == 1 and after["shifts"] == 1
    assert after["steps"] == 0  # not rediscovered from the samples: moved with them
    assert abs(after["offset"] - (before["offset"] - STEP)) < 2_000_000
