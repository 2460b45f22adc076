"""Tier processes answer a stock OIP v2 client; bad requests are refused, serving goes on.
Over real gRPC, the device client's hops give what the in-process transport gives."""

from __future__ import annotations

import dataclasses
import os
import tempfile

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2 as pb
from tritonclient.utils import InferenceServerException

from tierml.core.errors import InputDataError, RemoteError, TierUnavailableError
from tierml.runtime.client import DeviceClient
from tierml.runtime.deployment import Deployment, free_port
from tierml.runtime.forward import call_stage
from tierml.runtime.in_process import InProcessDeployment
from tierml.runtime.stage_exec import StageRunner
from tierml.runtime.transport import GrpcTransport
from tierml.runtime.wire import add_tensor


@pytest.fixture(scope="module")
def deployed(emulated):
    with Deployment(emulated.root) as dep:
        yield dep


def _last_stage(emulated):
    """A cloud partition that returns (the plan's last stage), and the inputs it reads."""
    plan = emulated.bundle.labelled("split-3")
    return plan, plan.stages[-1]


def _tail_env(emulated, plan, seed=0):
    """What the stages before the plan's last compute for a random input, run here."""
    x = np.random.default_rng(seed).standard_normal(emulated.bundle.inputs[0].shape)
    env = {emulated.bundle.inputs[0].name: x.astype(np.float32)}
    for s in plan.stages[:-1]:
        runner = StageRunner(s, str(emulated.root / s.file), threads=1, slowdown=1.0)
        env.update(runner.run(env).outputs)
    return env


def test_stock_client_health_metadata_and_inference(emulated, deployed):
    plan, stage = _last_stage(emulated)
    client = triton.InferenceServerClient(deployed.addresses["cloud"])
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(stage.model)
    assert not client.is_model_ready("no-such-partition")
    meta = client.get_model_metadata(stage.model)
    assert [i.name for i in meta.inputs] == list(stage.inputs)
    assert client.get_model_config(stage.model).config.max_batch_size == 0  # no batching
    # Feed the partition what the full chain computes there; compare with the chain.
    env = _tail_env(emulated, plan)
    x = env[emulated.bundle.inputs[0].name]
    inputs = []
    for name in stage.inputs:
        t = triton.InferInput(name, list(env[name].shape), "FP32")
        t.set_data_from_numpy(env[name])
        inputs.append(t)
    result = client.infer(stage.model, inputs)
    out = result.as_numpy(emulated.bundle.outputs[0])
    ref = ort.InferenceSession(str(emulated.model)).run(None, {emulated.bundle.inputs[0].name: x})
    np.testing.assert_allclose(out, ref[0], rtol=1e-4, atol=1e-4)


def test_bad_shape_unknown_partition_and_oversized_are_refused_then_serving_goes_on(
    emulated, deployed
):
    _, stage = _last_stage(emulated)
    client = triton.InferenceServerClient(deployed.addresses["cloud"])
    name = stage.inputs[0]
    wrong = triton.InferInput(name, [1, 3], "FP32")
    wrong.set_data_from_numpy(np.zeros((1, 3), np.float32))
    with pytest.raises(InferenceServerException) as info:
        client.infer(stage.model, [wrong])
    assert "INVALID_ARGUMENT" in str(info.value.status()) and name in info.value.message()
    with pytest.raises(InferenceServerException) as info:
        client.infer("nope", [wrong])
    assert "NOT_FOUND" in str(info.value.status())
    huge = triton.InferInput(name, [1, 17 << 20], "FP32")  # 68 MB > the 64 MB limit
    huge.set_data_from_numpy(np.zeros((1, 17 << 20), np.float32))
    with pytest.raises(InferenceServerException) as info:
        client.infer(stage.model, [huge])
    assert "RESOURCE_EXHAUSTED" in str(info.value.status())
    assert client.is_server_ready() and client.is_model_ready(stage.model)


def test_tiers_are_pinned_off_the_clients_cores(deployed):
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        pytest.skip("one core: nothing to pin apart")
    for tier, proc in deployed.procs.items():
        assert os.sched_getaffinity(proc.pid) == {cores[-1]}, tier


def test_a_stopped_deployment_leaves_no_files_behind(emulated):
    before = set(os.listdir(tempfile.gettempdir()))
    with Deployment(emulated.root):
        during = set(os.listdir(tempfile.gettempdir())) - before
        assert during, "the tiers' configs, ready files and logs live in a work directory"
    assert not set(os.listdir(tempfile.gettempdir())) - before


def test_wrong_shape_and_extra_contents_are_refused_as_input_errors_on_the_wire(emulated, deployed):
    """A cut tensor's rank is unknown to its partition's ONNX declaration: the tier checks
    it against the bundle's recorded shape (not ONNX Runtime, which would fail INTERNAL)."""
    plan, stage = _last_stage(emulated)
    env = _tail_env(emulated, plan)
    stub = GrpcTransport("cloud", deployed.addresses["cloud"]).stub
    name = stage.inputs[0]

    def refused(request: pb.ModelInferRequest) -> tuple[grpc.StatusCode, dict, str]:
        with pytest.raises(grpc.RpcError) as info:
            stub.ModelInfer(request, timeout=10.0)
        return info.value.code(), dict(info.value.trailing_metadata()), info.value.details()

    flat = pb.ModelInferRequest(model_name=stage.model)
    for n in stage.inputs:
        add_tensor(flat, n, env[n].reshape(1, -1) if n == name else env[n])
    code, meta, details = refused(flat)
    assert code is grpc.StatusCode.INVALID_ARGUMENT and meta["tierml-code"] == "E_INPUT"
    assert name in details and str(list(env[name].shape)) in details
    extra = pb.ModelInferRequest(model_name=stage.model)
    for n in stage.inputs:
        add_tensor(extra, n, env[n])
    extra.raw_input_contents.append(b"\0" * 16)
    code, meta, details = refused(extra)
    assert code is grpc.StatusCode.INVALID_ARGUMENT and meta["tierml-code"] == "E_INPUT"
    assert "raw contents" in details and len(details.splitlines()) == 1
    # A valid request is still answered.
    good = pb.ModelInferRequest(model_name=stage.model)
    for n in stage.inputs:
        add_tensor(good, n, env[n])
    assert stub.ModelInfer(good, timeout=10.0).outputs


def test_grpc_and_in_process_transports_agree(emulated, deployed):
    """The same plans through tier processes and through in-process tiers: the same
    outputs, paths and hop record fields; the same typed errors for the same refusals."""
    spec = emulated.bundle.inputs[0]
    feeds = {spec.name: np.random.default_rng(3).standard_normal(spec.shape).astype(np.float32)}
    over_grpc = DeviceClient(emulated.root, deployed.addresses, connect=deployed.connect)
    with InProcessDeployment(emulated.root) as local:
        here = DeviceClient(emulated.root, local.addresses, connect=local.connect)
        for label in ("split-3", "split-3-int8", "cloud-only"):
            plan = emulated.bundle.labelled(label).id
            a, b = over_grpc.infer(feeds, plan=plan), here.infer(feeds, plan=plan)
            assert a.path == b.path and a.bytes_up == b.bytes_up and a.bytes_down == b.bytes_down
            assert [list(h.to_dict()) for h in a.hops] == [list(h.to_dict()) for h in b.hops]
            assert sorted(a.to_dict()) == sorted(b.to_dict())
            for name, value in a.outputs.items():
                np.testing.assert_array_equal(value, b.outputs[name])
        plan, stage = _last_stage(emulated)
        env = _tail_env(emulated, plan)
        wrong = {**env, stage.inputs[0]: env[stage.inputs[0]].reshape(1, -1)}
        unknown = dataclasses.replace(stage, model="no-such-partition")
        for transport in (over_grpc.transports["cloud"], here.transports["cloud"]):
            with pytest.raises(InputDataError):
                call_stage(transport, stage, wrong, [], timeout_s=10.0)
            with pytest.raises(RemoteError, match="no-such-partition"):
                call_stage(transport, unknown, env, [], timeout_s=10.0)
        local.kill("cloud")
        dead = GrpcTransport("cloud", f"127.0.0.1:{free_port()}")
        for transport in (dead, here.transports["cloud"]):
            with pytest.raises(TierUnavailableError) as info:
                call_stage(transport, stage, env, [], timeout_s=2.0)
            assert info.value.tier == "cloud"
        dead.close()
    over_grpc.close()


def test_unreadable_bytes_unknown_methods_and_long_refusals_keep_their_code(emulated, deployed):
    """gRPC's own answers carry no tierml code: unreadable bytes (INTERNAL), methods a tier
    does not serve (UNIMPLEMENTED), trailers past 16 KB (dropped, code and all)."""
    plan, stage = _last_stage(emulated)
    env = _tail_env(emulated, plan)
    channel = grpc.insecure_channel(deployed.addresses["cloud"])

    def answer(method: str, payload: bytes) -> tuple[grpc.StatusCode, dict]:
        with pytest.raises(grpc.RpcError) as info:
            channel.unary_unary(method)(payload, timeout=10.0)
        return info.value.code(), dict(info.value.trailing_metadata() or ())

    infer = "/inference.GRPCInferenceService/ModelInfer"
    code, meta = answer(infer, b"\xff\xff\xff\xff garbage")
    assert code is grpc.StatusCode.INVALID_ARGUMENT and meta["tierml-code"] == "E_INPUT"
    for method in ("/inference.GRPCInferenceService/RepositoryIndex", "/no.Such/Method"):
        code, meta = answer(method, b"")
        assert code is grpc.StatusCode.UNIMPLEMENTED and meta["tierml-code"] == "E_REMOTE"
    flood = pb.ModelInferRequest(model_name=stage.model)
    for name in stage.inputs:
        add_tensor(flood, name, env[name])
    for k in range(30_000):  # listed in full, the refusal would be ~200 KB
        flood.inputs[0].parameters[f"tierml.p{k}"].int64_param = k
    code, meta = answer(infer, flood.SerializeToString())
    assert code is grpc.StatusCode.INVALID_ARGUMENT and meta["tierml-code"] == "E_INPUT"
    channel.close()
