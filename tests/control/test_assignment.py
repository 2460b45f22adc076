"""A device's assignment follows the state it reports: the registry's policies choose among
a version's variants, a rollout's variant is withheld from devices not in it yet."""

from __future__ import annotations

import pytest

from quick_workspace import quick_workspace
from registry_models import mlp, write_eval, write_model
from tierml import api
from tierml.control.assignment import Assignment, assign, device_from_report
from tierml.core.errors import DeviceDescriptionError
from tierml.registry import Registry
from tierml.registry.selection import version_candidates

TIERS = ("raspberry-pi-4",)
PLUGGED = {"profile": "raspberry-pi-4", "battery": 0.9, "charging": True, "network": "wifi",
           "precisions": ["fp32", "fp16", "int8"], "bandwidth_mbps": 40.0}  # fmt: skip
UNPLUGGED = {**PLUGGED, "battery": 0.1, "charging": False, "network": "lte"}


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("assign")
    ws = quick_workspace(root / "home")
    model = write_model(mlp(0), root / "m.onnx")
    data = write_eval(mlp(0), root / "eval.npz", (16,))
    api.registry.add_model(ws, "m", api.ModelInput(model),
                           api.registry.AddModelOptions(eval_data=data, tiers=TIERS))  # fmt: skip
    for name, transform in (("half", "fp16"), ("small", "int8-dynamic")):
        api.registry.add_recipe(ws, "m", name, api.registry.RecipeOptions(transform))
    api.registry.build_variants(ws, "m", tiers=TIERS)
    with Registry.open(ws) as registry:
        return version_candidates(registry, "m")


def test_unplugging_moves_the_device_to_the_smallest_variant_and_says_why(registered) -> None:
    version, candidates = registered
    plugged, _ = assign("m", version, device_from_report("cam-1", PLUGGED), candidates)
    unplugged, _ = assign("m", version, device_from_report("cam-1", UNPLUGGED), candidates)
    assert plugged is not None and unplugged is not None
    by_name = {c.name: c.metrics for c in candidates}
    smallest = min(by_name, key=lambda n: by_name[n]["size_bytes"])
    assert unplugged.variant == smallest != "base"
    assert plugged.variant != unplugged.variant
    assert by_name[plugged.variant]["accuracy"] == max(m["accuracy"] for m in by_name.values())
    assert "on charger" in plugged.reason
    assert "battery" in unplugged.reason and "smallest" in unplugged.reason
    assert Assignment.from_dict(unplugged.to_dict()) == unplugged


def test_a_variant_being_rolled_out_is_withheld_from_devices_not_in_it(registered) -> None:
    version, candidates = registered
    device = device_from_report("cam-2", UNPLUGGED)
    free, _ = assign("m", version, device, candidates)
    assert free is not None
    held, _ = assign("m", version, device, candidates, withheld={free.variant}, note="not in it")
    assert held is not None and held.variant != free.variant and held.reason.startswith("not in")


def test_a_report_that_is_not_a_device_description_is_refused_by_name() -> None:
    with pytest.raises(DeviceDescriptionError, match="battery"):
        device_from_report("cam-3", {"battery": 7})
    with pytest.raises(DeviceDescriptionError, match="cam-4"):
        device_from_report("cam-4", {"ops": 5})
