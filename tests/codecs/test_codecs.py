"""Activation codecs: round trips, error bounds, and every way a payload can be wrong."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tierml.codecs import (
    KNOWN_CODECS,
    Codec,
    EncodedTensor,
    decode,
    encode,
    encoded_from_parts,
    parse_codec,
)
from tierml.core.errors import CodecError

SETTINGS = settings(max_examples=40, deadline=None)
FLOATS = (np.float32, np.float64)
COMPRESSED = [s for s in KNOWN_CODECS if "+" in s]
QUANTISED = [s for s in KNOWN_CODECS if s.startswith("int8")]


def relu(shape: tuple[int, ...], seed: int = 0) -> np.ndarray[Any, Any]:
    x = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
    return np.maximum(x, 0)


def roundtrip(x: np.ndarray[Any, Any], spec: str) -> np.ndarray[Any, Any]:
    return decode(encode(x, spec))


def with_(encoded: EncodedTensor, **changes: Any) -> EncodedTensor:
    return dataclasses.replace(encoded, **changes)


def channel_scales(x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Per-channel scale along axis 1, computed independently of the codec."""
    axes = tuple(a for a in range(x.ndim) if a != 1)
    lo = np.minimum(x.min(axis=axes, initial=0.0), 0).astype(np.float64)
    hi = np.maximum(x.max(axis=axes, initial=0.0), 0).astype(np.float64)
    return (hi - lo) / 255


def rounding(x: np.ndarray[Any, Any]) -> float:
    """Float rounding allowance: a couple of ulps of the largest magnitude."""
    if x.size == 0:
        return 0.0
    return 2 * float(np.spacing(np.abs(x).max()))


# ---- specs


def test_every_known_spec_parses_and_round_trips_its_name():
    assert len(KNOWN_CODECS) == 12
    for spec in KNOWN_CODECS:
        codec = parse_codec(spec)
        assert codec.spec == spec
        assert parse_codec(codec.spec) == codec
    assert parse_codec("int8+zstd") == Codec("int8", "zstd")
    assert parse_codec("fp16") == Codec("fp16")


@pytest.mark.parametrize(
    "spec", ["int9", "fp32+gzip", "int8+", "+zstd", "", "fp32+zstd+lz4", "INT8", "int8 "]
)
def test_unknown_spec_names_the_value_and_lists_valid_forms(spec: str):
    with pytest.raises(CodecError) as info:
        parse_codec(spec)
    error = info.value
    assert error.code == "E_CODEC"
    assert repr(spec) in error.message
    assert "int8c" in error.message and "+zstd" in error.message
    assert "fp16+lz4" in error.hint
    assert "\n" not in error.one_line()


def test_codec_constructed_directly_is_checked():
    with pytest.raises(CodecError, match="'int4'"):
        Codec("int4")
    with pytest.raises(CodecError, match="'fp32\\+brotli'"):
        Codec("fp32", "brotli")


def test_encode_takes_a_spec_or_a_codec():
    x = relu((1, 2, 3, 3))
    assert encode(x, "int8+lz4") == encode(x, Codec("int8", "lz4"))
    with pytest.raises(CodecError, match="'int16'"):
        encode(x, "int16")


# ---- round trips and error bounds


@SETTINGS
@given(
    x=st.sampled_from(FLOATS).flatmap(
        lambda dtype: hnp.arrays(
            dtype,
            hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=5),
            elements=st.floats(-1e4, 1e4, width=np.dtype(dtype).itemsize * 8),
        )
    ),
    magnitude=st.sampled_from([1e-20, 1e-3, 1.0, 1e3, 1e20]),
)
def test_float_tensors_round_trip_within_each_codecs_bound(x, magnitude):
    x = (x * magnitude).astype(x.dtype)
    for spec in KNOWN_CODECS:
        encoded = encode(x, spec)
        y = decode(encoded)
        assert y.shape == x.shape and y.dtype == x.dtype, spec
        value = parse_codec(spec).value
        if value == "fp32":
            assert y.tobytes() == x.tobytes(), spec
        elif value == "fp16":
            expected = np.clip(x.astype(np.float64), -65504, 65504)
            bound = np.maximum(np.abs(expected) * 2.0**-11, 2.0**-25)
            assert np.all(np.abs(y - expected) <= bound + rounding(x)), spec
        elif value == "int8" or x.ndim < 2:
            scale = encoded.params["scale"]
            assert isinstance(scale, float)
            assert np.all(np.abs(y - x) <= scale * (0.5 + 1e-3) + rounding(x)), spec
        else:
            shape = [1] * x.ndim
            shape[1] = -1
            scales = np.where(channel_scales(x) > 0, channel_scales(x), 1.0).reshape(shape)
            assert np.all(np.abs(y - x) <= scales * (0.5 + 1e-3) + rounding(x)), spec


@SETTINGS
@given(
    x=hnp.arrays(
        st.sampled_from(
            [np.int64, np.int32, np.int8, np.uint8, np.bool_, np.float16, np.complex64]
        ),
        hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
    )
)
def test_non_float32_64_tensors_pass_every_codec_bitwise(x):
    for spec in KNOWN_CODECS:
        encoded = encode(x, spec)
        y = decode(encoded)
        assert y.dtype == x.dtype and y.shape == x.shape, spec
        assert y.tobytes() == x.tobytes(), spec
        assert encoded.params.keys() <= {"raw_nbytes"}, spec


def test_fp32_is_bitwise_including_specials():
    x = np.array([0.0, -0.0, np.nan, np.inf, -np.inf, 1e-45, 3.4e38], dtype=np.float32)
    for spec in ("fp32", "fp32+zstd", "fp32+lz4"):
        assert roundtrip(x, spec).tobytes() == x.tobytes()


def test_fp16_saturates_finite_values_and_keeps_specials():
    x = np.array([1e6, -1e6, 65519.0, np.inf, -np.inf, 1.0], dtype=np.float32)
    y = roundtrip(x, "fp16")
    assert y[:3].tolist() == [65504.0, -65504.0, 65504.0]
    assert y[3] == np.inf and y[4] == -np.inf and y[5] == 1.0
    assert np.isnan(roundtrip(np.array([np.nan], np.float32), "fp16")).all()


def test_fp16_ratio_is_two_for_float32():
    assert encode(relu((1, 4, 8, 8)), "fp16").ratio == 2.0
    assert encode(relu((1, 4, 8, 8)), "fp32").ratio == 1.0
    assert encode(relu((1, 4, 8, 8)), "int8").ratio == 4.0


@pytest.mark.parametrize("spec", QUANTISED)
@pytest.mark.parametrize("seed", range(4))
def test_relu_zeros_stay_exactly_zero(spec, seed):
    x = relu((2, 8, 6, 6), seed)
    y = roundtrip(x, spec)
    assert (x == 0).mean() > 0.3
    assert np.all(y[x == 0] == 0)
    assert np.all(y >= 0)


@pytest.mark.parametrize("spec", QUANTISED)
def test_zeros_of_a_mixed_sign_tensor_stay_exactly_zero(spec):
    x = np.random.default_rng(1).standard_normal((2, 5, 7)).astype(np.float32)
    x[:, :, ::3] = 0.0
    assert np.all(roundtrip(x, spec)[x == 0] == 0)


def test_int8_error_is_at_most_half_a_step():
    x = np.random.default_rng(2).uniform(-3, 5, (4, 16, 9, 9)).astype(np.float32)
    encoded = encode(x, "int8")
    scale = encoded.params["scale"]
    assert isinstance(scale, float)
    assert scale == pytest.approx((float(x.max()) - float(x.min())) / 255)
    err = np.abs(decode(encoded) - x).max()
    assert err <= scale / 2 * (1 + 1e-3)
    assert err > scale / 4  # the grid really is 255 steps, not finer


def test_int8c_quantises_each_channel_on_its_own_range():
    x = np.random.default_rng(3).standard_normal((2, 4, 5, 5)).astype(np.float32)
    x *= np.array([1e-3, 1.0, 10.0, 1e3], np.float32).reshape(1, 4, 1, 1)
    per_tensor = np.abs(roundtrip(x, "int8") - x)
    per_channel = np.abs(roundtrip(x, "int8c") - x)
    # The small channel is lost per tensor but kept per channel.
    assert per_channel[:, 0].max() < per_tensor[:, 0].max() / 100
    scales = channel_scales(x).reshape(1, 4, 1, 1)
    assert np.all(per_channel <= scales * (0.5 + 1e-3))


def test_int8c_of_rank_below_two_is_per_tensor():
    x = np.linspace(-1, 1, 50, dtype=np.float32)
    encoded = encode(x, "int8c")
    assert set(encoded.params) == {"scale", "zero_point"}
    assert np.array_equal(decode(encoded), roundtrip(x, "int8"))


@pytest.mark.parametrize("value", [0.0, 3.5, -2.25, 1e-30, -1e30, 7.1])
@pytest.mark.parametrize("spec", QUANTISED)
def test_constant_tensors_quantise(value, spec):
    x = np.full((2, 3, 4), value, dtype=np.float32)
    encoded = encode(x, spec)
    y = decode(encoded)
    assert np.all(np.isfinite(y))
    assert np.allclose(y, x, rtol=1e-6, atol=0)
    if value == 0.0:
        assert np.all(y == 0)


@pytest.mark.parametrize("spec", QUANTISED)
def test_subnormal_float64_ranges_quantise_without_warnings(spec):
    x = np.array([[0.0, 1e-310, 2e-309, -3e-320]], dtype=np.float64)
    y = roundtrip(x, spec)  # warnings are errors in this suite: no inf * 0, no bad cast
    assert np.all(np.isfinite(y)) and y[0, 0] == 0
    assert np.abs(y - x).max() <= np.finfo(np.float64).tiny


@pytest.mark.parametrize("shape", [(0,), (0, 3), (2, 0, 4, 4), (1, 3, 0, 5), ()])
@pytest.mark.parametrize("spec", KNOWN_CODECS)
def test_empty_and_scalar_tensors(shape, spec):
    x = np.full(shape, 1.5, dtype=np.float32)
    encoded = encode(x, spec)
    y = decode(encoded)
    assert y.shape == shape and y.dtype == np.float32
    assert np.allclose(y, x)
    assert encoded.ratio >= 0


@pytest.mark.parametrize("spec", QUANTISED)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_or_infinity_cannot_be_quantised(spec, bad):
    x = relu((1, 3, 4, 4))
    x[0, 1, 2, 2] = bad
    with pytest.raises(CodecError, match="NaN or infinity"):
        encode(x, spec)


def test_compression_reduces_a_half_zero_tensor():
    x = relu((1, 16, 32, 32))
    for value in ("fp32", "fp16", "int8", "int8c"):
        plain = encode(x, value).nbytes
        for compressor in ("zstd", "lz4"):
            assert encode(x, f"{value}+{compressor}").nbytes < plain * 0.9, (value, compressor)


def test_byte_order_and_layout_of_the_input_do_not_matter():
    x = relu((2, 3, 4, 5))
    big_endian = x.astype(">f4")
    strided = np.asfortranarray(x)[:, ::2]
    for spec in KNOWN_CODECS:
        y = roundtrip(big_endian, spec)
        assert y.dtype == np.float32
        assert np.array_equal(y, roundtrip(x, spec))
        assert np.array_equal(roundtrip(strided, spec), roundtrip(x[:, ::2].copy(), spec))


def test_unencodable_dtypes_are_refused():
    with pytest.raises(CodecError, match="dtype"):
        encode(np.array(["a", "b"]), "fp32")
    with pytest.raises(CodecError, match="dtype"):
        encode(np.array([object()]), "int8")


# ---- receiving: wire parts, and everything that can be wrong with them


def test_rebuilt_from_wire_parts_decodes_the_same():
    x = relu((1, 4, 6, 6))
    for spec in KNOWN_CODECS:
        encoded = encode(x, spec)
        received = encoded_from_parts(
            bytearray(encoded.payload),
            encoded.codec,
            encoded.dtype,
            [np.int64(d) for d in encoded.shape],
            dict(encoded.params),
        )
        assert received == encoded
        assert np.array_equal(decode(received), decode(encoded))


@pytest.mark.parametrize("spec", KNOWN_CODECS)
def test_truncated_or_extended_payload_is_refused(spec):
    encoded = encode(relu((1, 4, 6, 6)), spec)
    for payload in (encoded.payload[:-1], encoded.payload + b"\0", b""):
        with pytest.raises(CodecError):
            decode(with_(encoded, payload=payload))


@pytest.mark.parametrize("spec", [s for s in COMPRESSED if s.endswith("+zstd")])
def test_corrupt_zstd_payload_is_refused_by_its_checksum(spec):
    encoded = encode(relu((1, 4, 16, 16)), spec)
    for at in (0, len(encoded.payload) // 2, len(encoded.payload) - 2):
        damaged = bytearray(encoded.payload)
        damaged[at] ^= 0x5A
        with pytest.raises(CodecError, match="does not decompress"):
            decode(with_(encoded, payload=bytes(damaged)))


@pytest.mark.parametrize("spec", COMPRESSED)
def test_damaged_frame_structure_is_refused(spec):
    encoded = encode(relu((1, 4, 16, 16)), spec)
    damaged = bytearray(encoded.payload)
    damaged[0] ^= 0xFF  # the frame's magic number
    cases = [bytes(damaged), encoded.payload[: len(encoded.payload) // 2], b"garbage"]
    for payload in cases:
        with pytest.raises(CodecError, match="does not decompress"):
            decode(with_(encoded, payload=payload))


def test_corrupt_int8c_header_is_refused():
    encoded = encode(relu((1, 4, 6, 6)), "int8c")
    for scale in (np.nan, -1.0, 0.0):
        payload = np.array([scale], "<f8").tobytes() + encoded.payload[8:]
        with pytest.raises(CodecError, match="header"):
            decode(with_(encoded, payload=payload))


def test_payload_of_another_shape_is_refused():
    encoded = encode(relu((1, 4, 6, 6)), "fp16")
    with pytest.raises(CodecError, match="value bytes, expected"):
        decode(with_(encoded, shape=(1, 4, 6, 5)))


@pytest.mark.parametrize(
    ("spec", "params", "match"),
    [
        ("int8", {"zero_point": 0}, "missing scale"),
        ("int8", {"scale": 0.1}, "missing zero_point"),
        ("int8", {"scale": 0.1, "zero_point": 0, "bits": 8}, "unexpected bits"),
        ("int8", {"scale": -0.1, "zero_point": 0}, "scale=-0.1"),
        ("int8", {"scale": float("nan"), "zero_point": 0}, "scale=nan"),
        ("int8", {"scale": True, "zero_point": 0}, "scale=True"),
        ("int8", {"scale": "0.1", "zero_point": 0}, "scale='0.1'"),
        ("int8", {"scale": 0.1, "zero_point": 256}, "zero_point=256"),
        ("int8", {"scale": 0.1, "zero_point": 1.0}, "zero_point=1.0"),
        ("int8c", {}, "missing axis"),
        ("int8c", {"axis": 0}, "axis=0"),
        ("fp16", {"scale": 0.1}, "unexpected scale"),
        ("fp32+zstd", {}, "missing raw_nbytes"),
        ("fp32+zstd", {"raw_nbytes": 10}, "does not decompress"),
        ("fp32+lz4", {"raw_nbytes": 10}, "does not decompress"),
        ("fp32+lz4", {"raw_nbytes": -1}, "raw_nbytes=-1"),
    ],
)
def test_wrong_params_are_refused(spec, params, match):
    encoded = encode(relu((1, 4, 6, 6)), spec)
    with pytest.raises(CodecError, match=match):
        decode(with_(encoded, params=params))


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("codec", "int3", "Unknown codec 'int3'"),
        ("dtype", "object", "dtype 'object'"),
        ("dtype", "f4", "dtype 'f4'"),
        ("dtype", "float33", "dtype 'float33'"),
        ("shape", (1, -4, 6, 6), "Shape"),
        ("shape", [1, 4, 6, 6], "Shape"),
    ],
)
def test_wrong_metadata_is_refused(field, value, match):
    encoded = encode(relu((1, 4, 6, 6)), "fp32")
    with pytest.raises(CodecError, match=match):
        decode(with_(encoded, **{field: value}))


def test_wire_parts_are_checked_on_arrival():
    encoded = encode(relu((1, 4, 6, 6)), "int8")
    with pytest.raises(CodecError, match="dimension"):
        encoded_from_parts(encoded.payload, "int8", "float32", [1, 4.0, 6, 6], encoded.params)
    with pytest.raises(CodecError, match="not a sequence"):
        encoded_from_parts(encoded.payload, "int8", "float32", 144, encoded.params)  # type: ignore[arg-type]
    with pytest.raises(CodecError, match="missing zero_point"):
        encoded_from_parts(encoded.payload, "int8", "float32", [1, 4, 6, 6], {"scale": 0.1})
