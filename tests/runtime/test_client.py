"""Every deployed plan computes the model's answer; responses say where they went.

The tiers are served in this process (the same tier services and messages, no gRPC):
what is tested here is the runtime, not the wire (tests/runtime/test_tier_server.py)."""

from __future__ import annotations

import threading

import numpy as np
import onnxruntime as ort
import pytest

from tierml.core.errors import InputDataError
from tierml.runtime.client import DeviceClient
from tierml.runtime.deployment import free_port
from tierml.runtime.in_process import InProcessDeployment
from tierml.runtime.link_shaping import UNLIMITED
from tierml.runtime.transport import MAX_HOLD_MS


@pytest.fixture(scope="module")
def deployed(emulated):
    with InProcessDeployment(emulated.root) as dep:
        client = DeviceClient(emulated.root, dep.addresses, connect=dep.connect)
        yield dep, client
        client.close()


def _input(emulated, seed=0):
    spec = emulated.bundle.inputs[0]
    x = np.random.default_rng(seed).standard_normal(spec.shape).astype(np.float32)
    return {spec.name: x}


def test_every_plan_returns_the_full_models_output(emulated, deployed):
    _, client = deployed
    feeds = _input(emulated)
    ref = ort.InferenceSession(str(emulated.model)).run(None, feeds)[0]
    out_name = emulated.bundle.outputs[0]
    for plan in emulated.bundle.plans:
        record = client.infer(feeds, plan=plan.id)
        lossy = any(s.inbound and s.inbound.codec != "fp32" for s in plan.stages)
        tol = 0.05 * np.abs(ref).max() if lossy else 1e-4
        np.testing.assert_allclose(record.outputs[out_name], ref, atol=tol, err_msg=plan.id)
        assert record.path == list(plan.tiers)
        assert [h.tier for h in record.hops] == list(plan.tiers)
        crosses = plan.stages[-1].inbound is not None
        assert (record.bytes_up > 0) == crosses
        if crosses:
            first = next(s for s in plan.stages if s.inbound is not None)
            # The emulated wire time covers at least the serialisation of what was sent.
            shape = emulated.bundle.links[first.inbound.links[0]]
            assert record.wire_ms >= record.bytes_up * 8 / (shape.uplink_mbps * 1e3)


def test_three_tier_split_forwards_edge_to_cloud_with_codecs(emulated, deployed):
    _, client = deployed
    plan = emulated.bundle.labelled("split-3-int8")
    record = client.infer(_input(emulated), plan=plan.id)
    edge, cloud = record.hops[1], record.hops[2]
    assert (edge.tier, cloud.tier) == ("edge", "cloud")
    assert edge.bytes_out == cloud.bytes_in > 0
    # fp16 on edge → cloud: half the fp32 bytes of the cut.
    assert edge.call_ms >= cloud.total_ms


def test_wrong_inputs_are_refused_before_any_traffic(emulated):
    dead = {t.name: f"127.0.0.1:{free_port()}" for t in emulated.bundle.tiers[1:]}
    client = DeviceClient(emulated.root, dead, plan=emulated.bundle.labelled("cloud-only").id)
    spec = emulated.bundle.inputs[0]
    with pytest.raises(InputDataError, match="shape"):
        client.infer({spec.name: np.zeros((1, 3, 8, 8), np.float32)})
    with pytest.raises(InputDataError, match="dtype"):
        client.infer({spec.name: np.zeros(spec.shape, np.float64)})
    with pytest.raises(InputDataError, match="needs inputs"):
        client.infer({"other": np.zeros(spec.shape, np.float32)})
    good = np.zeros(spec.shape, np.float32)
    with pytest.raises(InputDataError, match="has no input 'other'"):
        client.infer({spec.name: good, "other": good})
    with pytest.raises(InputDataError, match="numpy array"):
        client.infer({spec.name: good.tolist()})


def test_many_concurrent_clients_share_one_cloud_tier(emulated, deployed):
    dep, _ = deployed
    plan = emulated.bundle.labelled("cloud-only").id
    feeds = _input(emulated, seed=1)
    ref = ort.InferenceSession(str(emulated.model)).run(None, feeds)[0]
    errors: list[BaseException] = []
    results: list[np.ndarray] = []

    def one_client() -> None:
        client = DeviceClient(emulated.root, dep.addresses, plan=plan, connect=dep.connect)
        try:
            for _ in range(4):
                results.append(client.infer(feeds).outputs[emulated.bundle.outputs[0]])
        except BaseException as exc:  # collected: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=one_client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(results) == 32
    for r in results:
        np.testing.assert_allclose(r, ref, atol=1e-4)


def test_a_held_probe_takes_at_least_its_hold_and_an_absurd_hold_is_ignored(deployed):
    _, client = deployed
    tier = next(iter(client.addresses))
    shapes = {name: link.shape for name, link in client.links.items()}
    for link in client.links.values():
        link.set_shape(UNLIMITED)
    try:
        assert client.probe_bandwidth(tier, 1024, hold_ms=30.0) >= 30.0
        # Beyond the cap the tier answers at once rather than spin for a minute.
        assert client.probe_bandwidth(tier, 1024, hold_ms=60_000.0) < MAX_HOLD_MS
    finally:
        for name, link in client.links.items():
            link.set_shape(shapes[name])
