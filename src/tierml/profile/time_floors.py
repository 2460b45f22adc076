"""How long every measurement warms up and repeats at least, whatever counts it asks for.

A round of a small model takes microseconds: a fixed count of warm-up runs leaves code,
caches and clocks cold (a standalone LayerNorm on [1, 128, 256] averaged 92 µs over its
first 550 runs in a process, 26 µs after), and ten runs are a few timer ticks. So every
measurement warms up for at least WARMUP_S and repeats for at least MEASURE_S; large
models keep the counts given, since each of their rounds is long already.
"""

from __future__ import annotations

import os

from tierml.core.errors import CalibrationError

WARMUP_S = 0.2
MEASURE_S = 0.3
# "warmup,measure" in seconds overrides both floors for every measurement in the process
# (and its children): "0,0" keeps only the counts, for quick runs where precision does not
# matter, such as a test suite.
FLOORS_ENV = "TIERML_TIME_FLOORS"


def time_floors() -> tuple[float, float]:
    """(warm-up, measuring) floors in seconds: the defaults or ``$TIERML_TIME_FLOORS``."""
    given = os.environ.get(FLOORS_ENV)
    if not given:
        return WARMUP_S, MEASURE_S
    try:
        warmup_s, measure_s = (float(v) for v in given.split(","))
    except ValueError:
        raise CalibrationError(
            f"{FLOORS_ENV}={given!r} is not two numbers of seconds.",
            hint=f'Set it like "{WARMUP_S},{MEASURE_S}", or unset it for those defaults.',
        ) from None
    return max(warmup_s, 0.0), max(measure_s, 0.0)
