"""Cross-AZ clock-offset compensation.

Convention: ``offset = reference − local``; a local timestamp ``t`` is
corrected as ``t + offset(t)``.  :class:`OffsetEstimator` tracks offset and
frequency from NTP-style four-timestamp samples; :func:`solve_network` makes
many pairwise estimates consistent; the probe protocol (``schedobs clock
serve`` and :class:`ClockProber`), any NTP server (NTPv4 client mode,
:class:`NtpKey` for symmetric keys) or a Redis server's ``TIME`` (a task
queue's broker) measures; :class:`ClockCorrector` rewrites
span and metric timestamps before export.
"""

from ._adjuster import SpanPairAdjuster, host_of_span
from ._correction import ClockCorrector, shift_span
from ._estimator import ClockEstimate, OffsetEstimator, Sample
from ._network import AsymmetryFit, Edge, NetworkSolution, learn_path_asymmetry, solve_network
from ._ntp import KissOfDeathError, NtpError, NtpKey, UnsynchronisedError
from ._prober import ClockProber, estimator_for, parse_reference
from ._protocol import ProtocolError
from ._redis import RedisError
from ._server import ClockServer

__all__ = [
    "AsymmetryFit",
    "ClockCorrector",
    "ClockEstimate",
    "ClockProber",
    "ClockServer",
    "Edge",
    "KissOfDeathError",
    "NetworkSolution",
    "NtpError",
    "NtpKey",
    "OffsetEstimator",
    "ProtocolError",
    "RedisError",
    "Sample",
    "SpanPairAdjuster",
    "UnsynchronisedError",
    "estimator_for",
    "host_of_span",
    "learn_path_asymmetry",
    "parse_reference",
    "shift_span",
    "solve_network",
]
