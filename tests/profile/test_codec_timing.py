"""Codec timings: consistent with the codecs, fitted sensibly, stored losslessly, and honest
about noise. Real clock, small sizes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tierml.codecs import KNOWN_CODECS, encode
from tierml.core.errors import CalibrationError, CodecError
from tierml.profile.codec_timing import (
    MAX_ROUNDS,
    CodecPoint,
    CodecTimings,
    fit_cost_model,
    measure_codec_timings,
    relu_activation,
)

SIZES = (4 * 1024, 16 * 1024, 64 * 1024)


@pytest.fixture(scope="module")
def timings() -> CodecTimings:
    return measure_codec_timings(sizes=SIZES, repeats=3, seed=5, host="test-host")


def test_points_match_a_direct_encode(timings: CodecTimings):
    assert [(p.codec, p.raw_bytes) for p in timings.points] == [
        (c, s) for s in SIZES for c in KNOWN_CODECS
    ]
    rng = np.random.default_rng(5)  # the measurement's tensors, rebuilt in the same order
    for size in SIZES:
        x = relu_activation(size, rng)
        for point in (p for p in timings.points if p.raw_bytes == size):
            assert point.encoded_bytes == encode(x, point.codec).nbytes
            assert point.encode_ms > 0 and point.decode_ms > 0
            assert point.encode_spread >= 0 and point.decode_spread >= 0
            assert 1 <= point.rounds <= MAX_ROUNDS


def test_models_are_non_negative_fits(timings: CodecTimings):
    assert [m.codec for m in timings.models] == list(KNOWN_CODECS)
    for m in timings.models:
        coefs = (m.encode_ms_fixed, m.encode_ms_per_mb, m.decode_ms_fixed, m.decode_ms_per_mb)
        assert all(c >= 0 and math.isfinite(c) for c in coefs), m
        assert m.encode_ms(SIZES[-1]) > 0 and m.decode_ms(SIZES[-1]) > 0
        assert m.encode_ms(2 * SIZES[-1]) >= m.encode_ms(SIZES[-1])
    assert timings.model("fp32").ratio == 1.0
    assert timings.model("fp16").ratio == 2.0
    assert timings.model("int8").ratio == 4.0
    assert timings.model("int8+zstd").ratio > 4.0  # half zeros compress
    assert timings.model("fp32").encoded_bytes(1000) == 1000
    assert timings.model("int8").encoded_bytes(1000) == 250
    with pytest.raises(KeyError):
        timings.model("int4")


def test_to_dict_round_trips_through_json(timings: CodecTimings):
    data = json.loads(json.dumps(timings.to_dict()))
    assert CodecTimings.from_dict(data) == timings
    assert data["host"] == "test-host"


def test_from_dict_refuses_other_formats_and_broken_data(timings: CodecTimings):
    data = timings.to_dict()
    with pytest.raises(CalibrationError, match="format"):
        CodecTimings.from_dict({**data, "format": "something/2"})
    broken = json.loads(json.dumps(data))
    del broken["points"][0]["encode_ms"]
    with pytest.raises(CalibrationError, match="encode_ms"):
        CodecTimings.from_dict(broken)


def test_noisy_figures_are_measured_again_then_flagged():
    # A bound of 0 makes every spread too wide: every figure takes all rounds and is flagged.
    strict = measure_codec_timings(("fp32", "int8"), SIZES[:2], repeats=3, noise_bound=0.0)
    assert all(p.rounds == MAX_ROUNDS and p.noisy for p in strict.points)
    # An unbounded one accepts the first round.
    lax = measure_codec_timings(("fp32", "int8"), SIZES[:2], repeats=3, noise_bound=math.inf)
    assert all(p.rounds == 1 and not p.noisy for p in lax.points)


def test_a_caller_supplied_sampler_is_measured():
    calls: list[int] = []

    def tokens(nbytes: int, rng: np.random.Generator) -> np.ndarray:
        calls.append(nbytes)
        return rng.integers(0, 30_000, size=(1, nbytes // 8), dtype=np.int64)

    result = measure_codec_timings(("int8", "int8+lz4"), (800, 8000), repeats=3, sample=tokens)
    assert calls == [800, 8000]
    # int64 token ids pass through int8 unquantised.
    assert [p.encoded_bytes for p in result.points if p.codec == "int8"] == [800, 8000]


def test_relu_activation_is_half_zeros_of_the_asked_size():
    x = relu_activation(1024 * 1024, np.random.default_rng(0))
    assert x.dtype == np.float32 and x.nbytes == 1024 * 1024
    assert x.ndim == 4 and x.shape[:2] == (1, 64)
    assert 0.45 < (x == 0).mean() < 0.55
    assert relu_activation(4 * 7, np.random.default_rng(0)).shape == (1, 1, 1, 7)


def test_fit_recovers_a_line_and_never_goes_negative():
    def point(raw: int, enc_ms: float, dec_ms: float) -> CodecPoint:
        return CodecPoint("fp16", raw, raw // 2, enc_ms, dec_ms, 0.0, 0.0, False)

    line = [point(n, 0.1 + 2.0 * n / 1e6, 0.5 * n / 1e6) for n in (10**4, 10**5, 10**6, 10**7)]
    model = fit_cost_model("fp16", line)
    assert model.encode_ms_fixed == pytest.approx(0.1)
    assert model.encode_ms_per_mb == pytest.approx(2.0)
    assert model.decode_ms_fixed == pytest.approx(0.0, abs=1e-9)
    assert model.decode_ms_per_mb == pytest.approx(0.5)
    assert model.ratio == 2.0
    # Times that fall with size would fit a negative slope: clamped to a constant instead.
    falling = [point(10**4, 3.0, 1.0), point(10**6, 2.0, 1.0), point(10**7, 1.0, 1.0)]
    model = fit_cost_model("fp16", falling)
    assert model.encode_ms_per_mb == 0.0 and model.encode_ms_fixed > 0
    # One size: a pure rate through it.
    model = fit_cost_model("fp16", [point(2 * 10**6, 4.0, 2.0)])
    assert (model.encode_ms_fixed, model.encode_ms_per_mb) == (0.0, pytest.approx(2.0))


def test_bad_arguments_fail_before_measuring():
    with pytest.raises(CodecError, match="'int4'"):
        measure_codec_timings(("fp32", "int4"), SIZES)
    with pytest.raises(ValueError, match="repeats"):
        measure_codec_timings(repeats=2)
    with pytest.raises(ValueError, match="4 bytes"):
        measure_codec_timings(("fp32",), (2,), repeats=3)
