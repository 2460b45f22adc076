"""Dynamic batching at a tier: concurrent requests for one partition run as one batch, and
each still gets exactly what it would have got alone — its own rows, its own exit, its
own error. The tiers are served in this process: batching is the runtime's, not the wire's."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from tritonclient.grpc import service_pb2 as pb

from tierml.core.errors import DeploymentError, InputDataError
from tierml.runtime.batching import PartitionBatcher, make_batchers, run_batched_on_tier
from tierml.runtime.bundle import ExitSpec
from tierml.runtime.deployment import Deployment
from tierml.runtime.forward import call_stage
from tierml.runtime.in_process import InProcessDeployment, call_in_process
from tierml.runtime.stage_exec import StageRunner, confident_exit
from tierml.runtime.tier_server import TierConfig

CLIENTS = 8
MAX_BATCH = 4
WINDOW_MS = 30.0  # generous: threads released together on a busy 2-core host still meet


@pytest.fixture(scope="module")
def batched(emulated):
    with InProcessDeployment(emulated.root, max_batch=MAX_BATCH, batch_window_ms=WINDOW_MS) as dep:
        yield dep


def _images(emulated, n: int, seed: int = 0) -> list[np.ndarray]:
    spec = emulated.bundle.inputs[0]
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(spec.shape).astype(np.float32) for _ in range(n)]


def _reference(emulated, images: list[np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(emulated.model))
    name = emulated.bundle.inputs[0].name
    refs = [session.run(None, {name: x})[0] for x in images]
    # Distinct inputs, distinct answers: a request handed another's rows cannot pass.
    for i in range(len(refs)):
        for j in range(i):
            assert not np.allclose(refs[i], refs[j], atol=1e-3)
    return refs


def _tail_env(emulated, plan, x: np.ndarray) -> dict[str, np.ndarray]:
    """What the stages before the plan's last compute for ``x``, run here."""
    env = {emulated.bundle.inputs[0].name: x}
    for s in plan.stages[:-1]:
        runner = StageRunner(s, str(emulated.root / s.file), threads=1, slowdown=1.0)
        env.update(runner.run(env).outputs)
    return env


def _concurrently(n: int, rounds: int, send: Callable[[int], Any]) -> list[list[Any]]:
    """``n`` threads, released together each round, each calling send(i); results or
    exceptions per thread."""
    barrier = threading.Barrier(n)
    results: list[list[Any]] = [[] for _ in range(n)]

    def worker(i: int) -> None:
        for _ in range(rounds):
            barrier.wait()
            try:
                results[i].append(send(i))
            except Exception as exc:  # collected: the test inspects which failed
                results[i].append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_concurrent_requests_batch_and_each_gets_its_own_rows_a_bad_one_fails_alone(
    emulated, batched
):
    # The tail of a three-tier split: its inputs' rank is unknown to its ONNX declaration
    # (cut tensors); the tier checks them against the bundle's shapes and refuses the bad
    # one before it joins a batch.
    plan = emulated.bundle.labelled("split-3")
    tail = plan.stages[-1]
    images = _images(emulated, CLIENTS, seed=1)
    refs = _reference(emulated, images)
    envs = [_tail_env(emulated, plan, x) for x in images]
    bad = CLIENTS // 2
    name = tail.inbound.tensors[0]
    envs[bad] = {**envs[bad], name: envs[bad][name].reshape(1, -1)}
    transports = [batched.connect("cloud", batched.addresses["cloud"]) for _ in range(CLIENTS)]

    def send(i: int):
        return call_stage(transports[i], tail, envs[i], [], timeout_s=30.0, request_id=str(i))

    results = _concurrently(CLIENTS, 3, send)
    out = emulated.bundle.outputs[0]
    for i, per_round in enumerate(results):
        for hop in per_round:
            if i == bad:  # refused before it ran, naming the tensor and the shape expected
                assert isinstance(hop, InputDataError), hop
                assert name in str(hop) and "expected" in str(hop), hop
                continue
            assert not isinstance(hop, Exception), hop
            np.testing.assert_allclose(hop.outputs[out], refs[i], rtol=1e-4, atol=1e-4)
            (record,) = hop.hops
            assert 1 <= record.batch <= record.batch_rows <= MAX_BATCH
    batches = [h.hops[0].batch for i, r in enumerate(results) if i != bad for h in r]
    assert max(batches) > 1
    # The server survives it all and still answers alone.
    assert not isinstance(send(0), Exception)


def test_model_config_says_which_partitions_batch(emulated, batched):
    for tier in ("edge", "cloud"):
        service = batched.services[tier]
        for plan in emulated.bundle.plans:
            for stage in plan.stages:
                if stage.tier != tier:
                    continue
                request = pb.ModelConfigRequest(name=stage.model)
                config = call_in_process(service, "ModelConfig", request).response.config
                # Every partition of the zoo's ResNet keeps its dynamic batch dimension.
                assert config.max_batch_size == MAX_BATCH
                assert config.dynamic_batching.max_queue_delay_microseconds == WINDOW_MS * 1e3
                assert f"partition '{stage.model}' batches up to" in batched.log(tier)


def test_a_split_plan_through_a_batching_tier_computes_the_models_answer(emulated, batched):
    from tierml.runtime.client import DeviceClient

    plan = emulated.bundle.labelled("split-3")
    images = _images(emulated, CLIENTS, seed=2)
    refs = _reference(emulated, images)
    name = emulated.bundle.inputs[0].name
    clients = [
        DeviceClient(emulated.root, batched.addresses, plan=plan.id, connect=batched.connect)
        for _ in images
    ]
    try:
        results = _concurrently(CLIENTS, 1, lambda i: clients[i].infer({name: images[i]}))
    finally:
        for c in clients:
            c.close()
    for (record,), ref in zip(results, refs, strict=True):
        assert not isinstance(record, Exception), record
        np.testing.assert_allclose(record.outputs[emulated.bundle.outputs[0]], ref, atol=1e-4)
        assert [h.tier for h in record.hops] == list(plan.tiers)
        assert all(1 <= h.batch <= MAX_BATCH for h in record.hops[1:])


def test_exits_are_decided_per_request_and_a_slower_tier_waits_once_per_batch(emulated):
    stage = emulated.bundle.labelled("cloud-only").stages[-1]
    path = str(emulated.root / stage.file)
    images = _images(emulated, CLIENTS, seed=3)
    name = emulated.bundle.inputs[0].name
    alone = StageRunner(stage, path, threads=1, slowdown=1.0)
    logits = [alone.run({name: x}).outputs[stage.outputs[0]] for x in images]
    # A threshold in the widest gap between two requests' confidences, clear of the last
    # bits a batched kernel may change: some requests leave, the others go on.
    conf = sorted(float(np.exp(z - z.max()).max() / np.exp(z - z.max()).sum()) for z in logits)
    gap = max(range(1, CLIENTS - 2), key=lambda j: conf[j + 1] - conf[j])
    threshold = (conf[gap] + conf[gap + 1]) / 2
    exits = (ExitSpec("half", stage.outputs[0], threshold),)
    spec = dataclasses.replace(stage, exits=exits)
    expected = [confident_exit(exits, {stage.outputs[0]: z}) is not None for z in logits]
    assert 0 < sum(expected) < CLIENTS
    runner = StageRunner(spec, path, threads=1, slowdown=3.0)
    runners = {spec.model: runner}
    batcher = PartitionBatcher(runner, max_batch=CLIENTS, window_ms=WINDOW_MS)
    results = _concurrently(
        CLIENTS,
        2,
        lambda i: run_batched_on_tier(batcher, runners, (spec,), 0, {name: images[i]}),
    )
    batcher.close()
    waits: dict[int, set[float]] = {}
    for i, per_round in enumerate(results):
        for local, part in per_round:
            assert (local.exit is not None) == expected[i]
            np.testing.assert_allclose(part.outputs[stage.outputs[0]], logits[i], atol=1e-4)
            waits.setdefault(part.rows, set()).add(part.emulated_ms)
    assert max(waits) > 1
    # One wait per run: (slowdown − 1) × the steady state of a batch of that many rows,
    # calibrated once per size, so every request of every run of a size reports the same.
    assert all(len(w) == 1 and min(w) > 0 for w in waits.values())


def test_max_batch_one_runs_every_request_alone(emulated):
    stage = emulated.bundle.labelled("cloud-only").stages[-1]
    images = _images(emulated, 4, seed=4)
    refs = _reference(emulated, images)
    env_name = emulated.bundle.inputs[0].name
    with InProcessDeployment(emulated.root, max_batch=1) as dep:
        transports = [dep.connect("cloud", dep.addresses["cloud"]) for _ in images]
        results = _concurrently(
            len(images),
            2,
            lambda i: call_stage(transports[i], stage, {env_name: images[i]}, [], timeout_s=30.0),
        )
        request = pb.ModelConfigRequest(name=stage.model)
        config = call_in_process(dep.services["cloud"], "ModelConfig", request).response
        assert config.config.max_batch_size == 0
        assert "batch" not in dep.log("cloud")  # no batcher said anything
    for per_round, ref in zip(results, refs, strict=True):
        for hop in per_round:
            assert hop.hops[0].batch == 1 and "batch_rows" not in hop.hops[0].to_dict()
            np.testing.assert_allclose(hop.outputs[emulated.bundle.outputs[0]], ref, atol=1e-4)


def test_bad_batching_settings_are_one_line_errors(emulated):
    for kwargs in ({"max_batch": 0}, {"batch_window_ms": -1.0}, {"batch_window_ms": float("nan")}):
        with pytest.raises(DeploymentError):
            Deployment(emulated.root, **kwargs)
    with pytest.raises(DeploymentError, match="max_batch"):
        TierConfig(bundle=str(emulated.root), tier="cloud", peers={}, max_batch=0)
    result = subprocess.run(
        [sys.executable, "-m", "tierml", "deploy", str(emulated.root), "--local",
         "--max-batch", "0"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert result.returncode == 2 and result.stderr.startswith("error[E_DEPLOY]")
    assert len(result.stderr.strip().splitlines()) == 1


def test_partitions_without_a_dynamic_leading_dimension_run_unbatched(emulated, tmp_path):
    stage = emulated.bundle.labelled("cloud-only").stages[-1]
    runners = {
        name: StageRunner(
            dataclasses.replace(stage, model=name),
            _tiny_model(tmp_path / f"{name}.onnx", shape),
            threads=1,
            slowdown=1.0,
        )
        for name, shape in (("fixed", [1, 4]), ("unknown", None), ("dynamic", ["n", 4]))
    }
    said: list[str] = []
    batchers, unbatched = make_batchers(runners, max_batch=4, window_ms=1.0, log=said.append)
    assert set(batchers) == {"dynamic"}
    assert unbatched == {
        "fixed": "input 'x' has a fixed leading dimension 1",
        "unknown": "no input or output declares a dynamic leading dimension",
    }
    assert len(said) == 3 and "partition 'fixed' runs unbatched" in said[1]
    out = batchers["dynamic"].submit({"x": np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)})
    np.testing.assert_array_equal(out.outputs["y"], [[0.0, 2.0, 0.0, 4.0]])
    batchers["dynamic"].close()
    assert make_batchers(runners, max_batch=1, window_ms=1.0, log=said.append) == ({}, {})


def test_a_batch_that_fails_reruns_alone_and_a_partition_that_cannot_batch_stops(
    emulated, tmp_path
):
    stage = emulated.bundle.labelled("cloud-only").stages[-1]

    def batcher(name: str, node, inputs, output_shape) -> PartitionBatcher:
        from onnx import TensorProto, helper, save

        graph = helper.make_graph(
            [node],
            name,
            [helper.make_tensor_value_info(n, t, ["n", 4 if n == "x" else 1]) for n, t in inputs],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)],
        )
        path = tmp_path / f"{name}.onnx"
        save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
        spec = dataclasses.replace(stage, model=name)
        runner = StageRunner(spec, str(path), threads=1, slowdown=1.0)
        return PartitionBatcher(runner, max_batch=4, window_ms=WINDOW_MS, log=said.append)

    from onnx import TensorProto, helper

    said: list[str] = []
    x = [np.arange(4, dtype=np.float32)[None] * (i + 1) for i in range(4)]
    # Picks a column per row: an index out of range fails the whole batched run in ONNX
    # Runtime, with inputs that pass every check and concatenate with the others.
    pick = batcher(
        "pick",
        helper.make_node("GatherElements", ["x", "i"], ["y"], axis=1),
        [("x", TensorProto.FLOAT), ("i", TensorProto.INT64)],
        ["n", 1],
    )
    index = [np.array([[k]], np.int64) for k in (0, 1, 9, 3)]
    results = _concurrently(4, 1, lambda k: pick.submit({"x": x[k], "i": index[k]}))
    for k, (got,) in enumerate(results):
        if k == 2:
            assert "E_" in getattr(got, "code", ""), got
        else:
            assert got.requests == 1 and got.outputs["y"].tolist() == [[x[k][0, index[k][0, 0]]]]
    assert pick.enabled  # one bad request, not a partition that cannot batch
    # The column-wise max over rows: one row back whatever the rows in, so not batch-major.
    peak = batcher(
        "peak",
        helper.make_node("ReduceMax", ["x"], ["y"], axes=[0], keepdims=1),
        [("x", TensorProto.FLOAT)],
        None,
    )
    results = _concurrently(4, 1, lambda k: peak.submit({"x": x[k]}))
    for k, (got,) in enumerate(results):
        np.testing.assert_array_equal(got.outputs["y"], x[k])
    assert not peak.enabled
    assert said == [
        "partition 'peak' stops batching: output 'y' does not have one row per input row"
    ]
    pick.close()
    peak.close()


def _tiny_model(path, shape) -> str:
    """y = relu(x), x and y of ``shape`` (None: rank unknown)."""
    from onnx import TensorProto, helper, save

    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
    )
    save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)
