"""Tensors through OIP messages with every codec; bad payloads are typed errors."""

from __future__ import annotations

import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb

from tierml.core.errors import InputDataError
from tierml.runtime.wire import add_tensor, read_tensors, set_param


@pytest.mark.parametrize("codec", ["fp32", "fp16", "int8", "int8c", "int8+zstd", "fp16+lz4"])
def test_a_tensor_survives_the_wire_within_its_codec_error(codec):
    x = np.random.default_rng(0).standard_normal((1, 8, 5, 5)).astype(np.float32)
    request = pb.ModelInferRequest(model_name="m")
    sent = add_tensor(request, "act", x, codec)
    # Serialised and parsed as any gRPC peer would.
    received = pb.ModelInferRequest.FromString(request.SerializeToString())
    arrays, wire = read_tensors(received.inputs, received.raw_input_contents)
    y = arrays["act"]
    assert y.dtype == x.dtype and y.shape == x.shape
    tolerance = {"fp32": 0, "fp16": 1e-2, "fp16+lz4": 1e-2}.get(codec, np.ptp(x) / 255)
    assert np.abs(y - x).max() <= tolerance + 1e-7
    assert wire[0].nbytes == sent.nbytes
    if codec.startswith("int8"):
        assert sent.nbytes < x.nbytes / 2.5  # 1 byte per value, plus scales


def test_plain_raw_contents_from_a_stock_client_read_as_fp32():
    x = np.arange(6, dtype=np.int64).reshape(2, 3)
    request = pb.ModelInferRequest(model_name="m")
    t = request.inputs.add(name="ids", datatype="INT64", shape=[2, 3])
    assert t.name == "ids"
    request.raw_input_contents.append(x.tobytes())
    arrays, _ = read_tensors(request.inputs, request.raw_input_contents)
    np.testing.assert_array_equal(arrays["ids"], x)


def test_truncated_payload_and_unknown_codec_are_input_errors():
    x = np.ones((4, 4), np.float32)
    request = pb.ModelInferRequest(model_name="m")
    add_tensor(request, "a", x)
    request.raw_input_contents[0] = request.raw_input_contents[0][:-4]
    with pytest.raises(InputDataError, match="a"):
        read_tensors(request.inputs, request.raw_input_contents)
    request = pb.ModelInferRequest(model_name="m")
    add_tensor(request, "a", x)
    set_param(request.inputs[0].parameters, "tierml.codec", "int3")
    with pytest.raises(InputDataError):
        read_tensors(request.inputs, request.raw_input_contents)
    with pytest.raises(InputDataError, match="raw contents"):
        read_tensors(request.inputs, [])
