"""A tier checks every request against its partition's declared inputs before decoding or
running anything: each violation is INVALID_ARGUMENT + ``tierml-code: E_INPUT`` with one
line naming the tensor, and the tier goes on serving."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from tritonclient.grpc import service_pb2 as pb

from tierml.runtime.in_process import InProcessDeployment, call_in_process
from tierml.runtime.stage_exec import StageRunner
from tierml.runtime.wire import add_tensor, set_param


@pytest.fixture(scope="module")
def split(emulated):
    """The three-tier split served in process, and every tensor its stages read."""
    plan = emulated.bundle.labelled("split-3")
    x = np.random.default_rng(0).standard_normal(emulated.bundle.inputs[0].shape)
    env = {emulated.bundle.inputs[0].name: x.astype(np.float32)}
    for s in plan.stages[:-1]:
        runner = StageRunner(s, str(emulated.root / s.file), threads=1, slowdown=1.0)
        env.update(runner.run(env).outputs)
    with InProcessDeployment(emulated.root) as dep:
        yield dep, plan, env


@pytest.fixture(scope="module")
def tail(split):
    """The cloud's partition of the split, its service and a valid request's tensors."""
    dep, plan, env = split
    stage = plan.stages[-1]
    return dep.services["cloud"], stage, {n: env[n] for n in stage.inputs}


def _request(stage, feeds, codec="fp32") -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=stage.model)
    for name, x in feeds.items():
        add_tensor(request, name, x, codec)
    return request


def _mutants(stage, feeds):
    """(what is wrong, the request) for every check the tier makes."""
    name = stage.inputs[0]
    x = feeds[name]
    out = []

    def mutant(label, edit, codec="fp32"):
        request = _request(stage, feeds, codec)
        edit(request)
        out.append((label, request))

    mutant("missing", lambda r: (r.inputs.pop(0), r.raw_input_contents.pop(0)))
    mutant("undeclared", lambda r: add_tensor(r, "intruder", np.zeros(3, np.float32)))
    mutant("duplicated", lambda r: add_tensor(r, name, x))
    mutant("extra raw contents", lambda r: r.raw_input_contents.append(b"\0" * 8))
    mutant("fewer raw contents", lambda r: r.raw_input_contents.pop())
    mutant("datatype", lambda r: setattr(r.inputs[0], "datatype", "FP64"))
    mutant("BYTES", lambda r: setattr(r.inputs[0], "datatype", "BYTES"))
    mutant("BF16", lambda r: setattr(r.inputs[0], "datatype", "BF16"))

    def shape(dims):
        def edit(r):
            del r.inputs[0].shape[:]
            r.inputs[0].shape.extend(dims)

        return edit

    mutant("rank", shape([1, int(np.prod(x.shape))]))
    mutant("dimension", shape([*x.shape[:-1], x.shape[-1] + 1]))
    mutant("negative", shape([-1, *x.shape[1:]]))
    mutant("huge", shape([1 << 40, *x.shape[1:]]))
    mutant("truncated", lambda r: r.raw_input_contents.__setitem__(0, x.tobytes()[:-4]))
    mutant("extended", lambda r: r.raw_input_contents.__setitem__(0, x.tobytes() + b"\0" * 4))
    mutant(
        "typed contents",
        lambda r: (r.inputs[0].contents.fp32_contents.extend([1.0]), None),
    )
    mutant("codec is a number", lambda r: set_param(r.inputs[0].parameters, "tierml.codec", 5))
    mutant("unknown codec", lambda r: set_param(r.inputs[0].parameters, "tierml.codec", "lzma"))
    mutant(
        "garbage payload",
        lambda r: r.raw_input_contents.__setitem__(0, b"\x28\xb5\x2f\xfd" + b"\x01" * 40),
        codec="int8+zstd",
    )
    mutant(
        "codec scale missing",
        lambda r: r.inputs[0].parameters.pop("tierml.scale"),
        codec="int8",
    )

    def flood(r):
        for k in range(30_000):  # listed in full, the refusal would outgrow gRPC's trailers
            r.inputs[0].parameters[f"tierml.p{k}"].int64_param = k

    mutant("unknown tierml parameter", lambda r: set_param(r.inputs[0].parameters, "tierml.x", 1))
    mutant("tierml parameter flood", flood)
    mutant("valueless codec", lambda r: r.inputs[0].parameters["tierml.codec"].Clear())
    return out


def test_every_malformed_request_is_an_input_error_naming_the_tensor(tail):
    service, stage, feeds = tail
    for label, request in _mutants(stage, feeds):
        got = call_in_process(service, "ModelInfer", request)
        assert got.code is grpc.StatusCode.INVALID_ARGUMENT, (label, got)
        assert got.metadata["tierml-code"] == "E_INPUT", (label, got)
        assert len(got.details.splitlines()) == 1 and len(got.details) < 600, (label, got)
        assert got.details.startswith("error[E_INPUT]"), (label, got)
    ok = call_in_process(service, "ModelInfer", _request(stage, feeds))
    assert ok.code is grpc.StatusCode.OK and ok.response.outputs


def test_an_undeclared_tensor_cannot_reach_a_later_stage(split):
    """Tensors the partition does not declare are refused, not carried along: a request
    for the edge's stage may not smuggle in what the cloud's stage reads."""
    dep, plan, env = split
    edge, cloud = plan.stages[1], plan.stages[2]
    smuggled = next(n for n in cloud.inputs if n not in edge.inputs)
    request = _request(edge, {n: env[n] for n in edge.inputs})
    assert call_in_process(dep.services["edge"], "ModelInfer", request).code is grpc.StatusCode.OK
    add_tensor(request, smuggled, env[smuggled])
    got = call_in_process(dep.services["edge"], "ModelInfer", request)
    assert got.code is grpc.StatusCode.INVALID_ARGUMENT and got.metadata["tierml-code"] == "E_INPUT"
    assert f"has no input '{smuggled}'" in got.details
