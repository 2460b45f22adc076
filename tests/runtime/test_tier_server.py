"""Tier processes answer a stock OIP v2 client; bad requests are refused, serving goes on."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from tierml.runtime.deployment import Deployment
from tierml.runtime.stage_exec import StageRunner


@pytest.fixture(scope="module")
def deployed(emulated):
    with Deployment(emulated.root) as dep:
        yield dep


def _last_stage(emulated):
    """A cloud partition that returns (the plan's last stage), and the inputs it reads."""
    plan = emulated.bundle.labelled("split-3")
    return plan, plan.stages[-1]


def test_stock_client_health_metadata_and_inference(emulated, deployed):
    plan, stage = _last_stage(emulated)
    client = triton.InferenceServerClient(deployed.addresses["cloud"])
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(stage.model)
    assert not client.is_model_ready("no-such-partition")
    meta = client.get_model_metadata(stage.model)
    assert [i.name for i in meta.inputs] == list(stage.inputs)
    # Feed the partition what the full chain computes there; compare with the chain.
    rng = np.random.default_rng(0)
    x = rng.standard_normal(emulated.bundle.inputs[0].shape).astype(np.float32)
    env = {emulated.bundle.inputs[0].name: x}
    for s in plan.stages[:-1]:
        runner = StageRunner(s, str(emulated.root / s.file), threads=1, slowdown=1.0)
        env.update(runner.run(env).outputs)
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
