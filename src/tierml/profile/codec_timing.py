"""How long each activation codec takes to encode and decode on this host.

On a 100 Mbps link (12.5 MB/s) a 16 MiB activation needs 1.3 s on the wire, and encoding
it can take tens of milliseconds: codec time is part of the link's cost, not a rounding
error. This module measures it per codec over tensor sizes and fits a line per codec
(fixed ms + ms per MB) that the planner can evaluate at any size.

The default tensor is ReLU(N(0, 1)) in float32, shaped [1, C, H, W]: about half zeros, as
activations after a ReLU are. Compression ratios depend on that assumption (they are the
ratios of this synthetic tensor); the adaptation stage measures ratios on real activations
of a model. Encode and decode times depend on values far less than ratios do.

Method: for each size, one warm-up call per codec; then repetitions in which every codec
is timed once (encode, then decode of its result), the codecs' order rotating between
repetitions, so that drift of the host (frequency, other load) hits all codecs alike. A
timed sample repeats a fast call until it spans at least ``MIN_SAMPLE_NS``, which keeps
the clock's resolution out of microsecond figures. The figure is the median; its spread is
IQR / median. A codec whose encode or decode spread exceeds the noise bound is measured
again, with 2× then 3× the repetitions, ``MAX_ROUNDS`` rounds at most; a figure still
noisy then is reported with ``noisy=True``. The defaults take 5-8 s on a 2-core host.
"""

from __future__ import annotations

import gc
import json
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from tierml.codecs import KNOWN_CODECS, Codec, decode, encode, parse_codec
from tierml.core.errors import CalibrationError
from tierml.core.workspace import Workspace

FORMAT = "tierml.codec-timings/1"
DEFAULT_CODECS: tuple[str, ...] = KNOWN_CODECS
# Bytes of float32 activation, ×4 apart: 16 KiB (a small feature map) … 16 MiB (an early
# high-resolution one); 1 MiB and 16 MiB among them for reporting.
DEFAULT_SIZES: tuple[int, ...] = tuple(16 * 1024 * 4**k for k in range(6))
QUICK_SIZES = DEFAULT_SIZES[:3]  # up to 256 KiB: the fits' fixed costs, roughly their slopes
NOISE_BOUND = 0.25  # IQR / median above this: the figure is not trustworthy as it is
MAX_ROUNDS = 3  # the first measurement and two more before a figure is left noisy
MIN_SAMPLE_NS = 200_000  # 0.2 ms: perf_counter jitter (~µs) stays below 1 % of a sample
MAX_INNER_CALLS = 1000
BYTES_PER_MB = 1_000_000  # decimal, as link speeds are
DEFAULT_CHANNELS = 64  # a typical early CNN width; it sets int8c's per-channel header

Sampler = Callable[[int, np.random.Generator], npt.NDArray[Any]]


@dataclass(frozen=True)
class CodecPoint:
    """One codec at one size: median times, their spread, and whether to trust them."""

    codec: str
    raw_bytes: int
    encoded_bytes: int
    encode_ms: float
    decode_ms: float
    encode_spread: float  # IQR / median
    decode_spread: float
    noisy: bool  # a spread stayed above the noise bound after every round
    rounds: int = 1  # measurement rounds taken (1: the first was quiet enough)

    @property
    def ratio(self) -> float:
        return self.raw_bytes / self.encoded_bytes if self.encoded_bytes else 1.0


@dataclass(frozen=True)
class CodecCostModel:
    """A codec's cost at any size: time = fixed + per-MB · MB; bytes = raw / ratio."""

    codec: str
    encode_ms_fixed: float
    encode_ms_per_mb: float
    decode_ms_fixed: float
    decode_ms_per_mb: float
    ratio: float  # median raw / encoded bytes over the measured sizes

    def encode_ms(self, nbytes: int) -> float:
        """Time to encode a tensor of ``nbytes`` raw bytes."""
        return self.encode_ms_fixed + self.encode_ms_per_mb * nbytes / BYTES_PER_MB

    def decode_ms(self, nbytes: int) -> float:
        """Time to decode a tensor of ``nbytes`` raw (not encoded) bytes."""
        return self.decode_ms_fixed + self.decode_ms_per_mb * nbytes / BYTES_PER_MB

    def encoded_bytes(self, nbytes: int) -> int:
        """Payload bytes of a tensor of ``nbytes`` raw bytes."""
        return math.ceil(nbytes / self.ratio)


@dataclass(frozen=True)
class CodecTimings:
    """Measured points and fitted cost models of the codecs on one host."""

    points: tuple[CodecPoint, ...]
    models: tuple[CodecCostModel, ...]
    host: str = ""

    def model(self, codec: str) -> CodecCostModel:
        for m in self.models:
            if m.codec == codec:
                return m
        raise KeyError(codec)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "host": self.host,
            "points": [asdict(p) for p in self.points],
            "models": [asdict(m) for m in self.models],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "codec timings") -> CodecTimings:
        if data.get("format") != FORMAT:
            raise CalibrationError(
                f"{source} has format {data.get('format')!r}; this tierml reads {FORMAT!r}.",
                hint="Measure the codecs again with this version.",
            )
        try:
            points = tuple(
                CodecPoint(
                    codec=str(p["codec"]),
                    raw_bytes=int(p["raw_bytes"]),
                    encoded_bytes=int(p["encoded_bytes"]),
                    encode_ms=float(p["encode_ms"]),
                    decode_ms=float(p["decode_ms"]),
                    encode_spread=float(p["encode_spread"]),
                    decode_spread=float(p["decode_spread"]),
                    noisy=bool(p["noisy"]),
                    rounds=int(p.get("rounds", 1)),
                )
                for p in data["points"]
            )
            models = tuple(
                CodecCostModel(
                    codec=str(m["codec"]),
                    **{f: float(m[f]) for f in _MODEL_FLOATS},
                )
                for m in data["models"]
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise CalibrationError(
                f"{source} is not valid codec timings: {exc!r}",
                hint="Measure the codecs again, or pass the file the measurement wrote.",
            ) from exc
        return cls(points, models, str(data.get("host", "")))


_MODEL_FLOATS = (
    "encode_ms_fixed",
    "encode_ms_per_mb",
    "decode_ms_fixed",
    "decode_ms_per_mb",
    "ratio",
)


def relu_activation(nbytes: int, rng: np.random.Generator) -> npt.NDArray[np.float32]:
    """ReLU(N(0, 1)) float32 of shape [1, C, H, W] with ``nbytes // 4`` values."""
    n = nbytes // 4
    if n < 1:
        raise ValueError(f"an activation needs at least 4 bytes, got {nbytes}")
    channels = math.gcd(n, DEFAULT_CHANNELS)
    spatial = n // channels
    height = max(h for h in range(1, math.isqrt(spatial) + 1) if spatial % h == 0)
    values = rng.standard_normal((1, channels, height, spatial // height), dtype=np.float32)
    return np.maximum(values, 0.0, out=values)


def measure_codec_timings(
    codecs: Sequence[str] = DEFAULT_CODECS,
    sizes: Sequence[int] = DEFAULT_SIZES,
    *,
    repeats: int = 7,
    seed: int = 0,
    sample: Sampler | None = None,
    noise_bound: float = NOISE_BOUND,
    host: str = "",
) -> CodecTimings:
    """Encode and decode times of ``codecs`` on tensors of ``sizes`` bytes, and a fit each.

    ``sample(nbytes, rng)`` builds the tensor of a size (default :func:`relu_activation`);
    its actual ``nbytes`` is what the points record. ``noise_bound`` is the largest
    acceptable IQR / median; ``host`` is stored with the result as given.
    """
    if repeats < 3:
        raise ValueError(f"repeats must be at least 3 for a median and a spread, got {repeats}")
    if not sizes:
        raise ValueError("no sizes to measure")
    parsed = [parse_codec(c) for c in codecs]  # a bad spec fails before any measuring
    if not parsed:
        raise ValueError("no codecs to measure")
    rng = np.random.default_rng(seed)
    sampler = sample or relu_activation
    points: list[CodecPoint] = []
    for size in sizes:
        points += _measure_size(sampler(size, rng), parsed, repeats, noise_bound)
    models = tuple(fit_cost_model(c.spec, [p for p in points if p.codec == c.spec]) for c in parsed)
    return CodecTimings(tuple(points), models, host)


def fit_cost_model(codec: str, points: Sequence[CodecPoint]) -> CodecCostModel:
    """Non-negative lines through a codec's points, fitted in relative error.

    Relative, because the sizes span three decades: in absolute terms the largest tensor
    alone would decide the fixed cost that dominates small ones.
    """
    if not points:
        raise ValueError(f"no points to fit for codec {codec!r}")
    mb = np.array([p.raw_bytes / BYTES_PER_MB for p in points])
    enc_fixed, enc_per_mb = _fit_line(mb, np.array([p.encode_ms for p in points]))
    dec_fixed, dec_per_mb = _fit_line(mb, np.array([p.decode_ms for p in points]))
    ratio = float(np.median([p.ratio for p in points]))
    return CodecCostModel(codec, enc_fixed, enc_per_mb, dec_fixed, dec_per_mb, ratio)


def _measure_size(
    array: npt.NDArray[Any], codecs: Sequence[Codec], repeats: int, noise_bound: float
) -> list[CodecPoint]:
    """Points of all codecs on one tensor, re-measuring noisy figures in further rounds."""
    encoded_bytes: dict[Codec, int] = {}
    inner: dict[Codec, tuple[int, int]] = {}
    for codec in codecs:  # warm-up; it also sizes each timed sample
        start = time.perf_counter_ns()
        encoded = encode(array, codec)
        middle = time.perf_counter_ns()
        decode(encoded)
        end = time.perf_counter_ns()
        encoded_bytes[codec] = encoded.nbytes
        inner[codec] = (_inner_calls(middle - start), _inner_calls(end - middle))
    result: dict[Codec, CodecPoint] = {}
    pending = list(codecs)
    for round_ in range(1, MAX_ROUNDS + 1):
        samples = _time_interleaved(array, pending, inner, repeats * round_)
        for codec in pending:
            (enc_ms, enc_spread), (dec_ms, dec_spread) = (_summary(s) for s in samples[codec])
            result[codec] = CodecPoint(
                codec=codec.spec,
                raw_bytes=int(array.nbytes),
                encoded_bytes=encoded_bytes[codec],
                encode_ms=enc_ms,
                decode_ms=dec_ms,
                encode_spread=enc_spread,
                decode_spread=dec_spread,
                noisy=max(enc_spread, dec_spread) > noise_bound,
                rounds=round_,
            )
        pending = [c for c in pending if result[c].noisy]
        if not pending:
            break
    return [result[c] for c in codecs]


def _time_interleaved(
    array: npt.NDArray[Any],
    codecs: Sequence[Codec],
    inner: Mapping[Codec, tuple[int, int]],
    repeats: int,
) -> dict[Codec, tuple[list[float], list[float]]]:
    """Per codec, ``repeats`` encode and decode times in ms, codecs taking turns."""
    samples: dict[Codec, tuple[list[float], list[float]]] = {c: ([], []) for c in codecs}
    collecting = gc.isenabled()
    gc.disable()  # a collection inside one sample would be charged to that codec
    try:
        for rep in range(repeats):
            shift = rep % len(codecs)
            for codec in [*codecs[shift:], *codecs[:shift]]:
                n_enc, n_dec = inner[codec]
                start = time.perf_counter_ns()
                for _ in range(n_enc):
                    encoded = encode(array, codec)
                middle = time.perf_counter_ns()
                for _ in range(n_dec):
                    decode(encoded)
                end = time.perf_counter_ns()
                samples[codec][0].append((middle - start) / n_enc / 1e6)
                samples[codec][1].append((end - middle) / n_dec / 1e6)
    finally:
        if collecting:
            gc.enable()
    return samples


def _inner_calls(warm_ns: int) -> int:
    return max(1, min(MAX_INNER_CALLS, math.ceil(MIN_SAMPLE_NS / max(warm_ns, 1))))


def _summary(ms: Sequence[float]) -> tuple[float, float]:
    """Median and spread (IQR / median) of a list of times."""
    q1, median, q3 = (float(v) for v in np.percentile(ms, [25, 50, 75]))
    return median, (q3 - q1) / median if median > 0 else 0.0


def _fit_line(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> tuple[float, float]:
    """(a, b) ≥ 0 minimising Σ ((a + b·x − y) / y)²: the best over the active sets."""
    weight = 1.0 / np.maximum(y, 1e-9)  # a 0 ms median would otherwise weigh infinitely
    design = np.column_stack([np.ones_like(x), x]) * weight[:, None]
    target = y * weight
    best: tuple[float, float, float] | None = None
    # Simplest first, replaced only by a strictly better fit: one size gives a pure rate.
    for cols in ((1,), (0,), (0, 1)):
        sol, *_ = np.linalg.lstsq(design[:, cols], target, rcond=None)
        if np.any(sol < 0):
            continue
        coef = np.zeros(2)
        coef[list(cols)] = sol
        err = float(np.sum((design @ coef - target) ** 2))
        if best is None or err < best[0] - 1e-12:
            best = (err, float(coef[0]), float(coef[1]))
    if best is None:  # only when every time is 0: no cost at all
        return 0.0, 0.0
    return best[1], best[2]


def host_codec_timings(workspace: Workspace, *, refresh: bool = False) -> CodecTimings:
    """This host's codec timings: measured once (~10 s), then read from the workspace's
    home. A workspace without time floors (quick runs, where precision does not matter)
    measures the three smallest sizes three times each (~0.1 s)."""
    host = workspace.host.fingerprint
    path = workspace.home / "codecs" / f"{host}.json"
    if not refresh:
        try:
            return CodecTimings.from_dict(json.loads(path.read_text()))
        except (OSError, ValueError, CalibrationError):
            pass  # absent or unreadable: measure again
    if workspace.time_floors.quick:
        timings = measure_codec_timings(sizes=QUICK_SIZES, repeats=3, host=host)
    else:
        timings = measure_codec_timings(host=host)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(timings.to_dict()))
    tmp.replace(path)
    return timings
