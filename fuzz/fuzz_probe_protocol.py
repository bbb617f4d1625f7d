"""Coverage-guided fuzzing of the clock-probe parser with atheris (``make fuzz``).

Any exception other than ``ProtocolError`` is a finding; atheris stops and
prints the input.  The hypothesis tests in ``tests/clock/test_protocol.py`` run in
``make test``; this goes further when atheris is installable.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from schedobs.clock._protocol import ProtocolError, decode

KEY = b"k" * 32


def one_input(data: bytes) -> None:
    for key in (None, KEY):
        try:
            decode(data, key)
        except ProtocolError:
            pass


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
