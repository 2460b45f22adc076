"""The active model as a runtime bundle of one stage, so a tier server can serve it.

The device's local endpoint is the runtime's own tier server (OIP v2 over gRPC, requests
checked before they run), not a second server: the model becomes a one-plan, one-stage
bundle whose stage runs on the ``device`` tier and is called by the application. The
stage's file is the artifact itself (a relative path), so nothing is copied.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from tierml.core.errors import ModelNotRunnableError
from tierml.runtime.bundle import Bundle, Inbound, PlanSpec, StageSpec, TierSpec, write_bundle

DEVICE_TIER = "device"
APPLICATION = "application"  # the bundle's origin: the program on the device calling it
PLAN_ID = "p0"
CODEC = "fp32"  # requests arrive as plain tensors, as stock OIP clients send them


def write_serving_bundle(artifact: Path, model_name: str, folder: Path) -> Path:
    """Write a bundle serving ``artifact`` whole as partition ``model_name`` into
    ``folder`` (replaced); ModelNotRunnableError when the file is not an ONNX model."""
    try:
        # Names only: the weights stay on disk for ONNX Runtime to read.
        model = onnx.load(str(artifact), load_external_data=False)
    except (OSError, DecodeError, ValueError, RuntimeError) as error:
        raise ModelNotRunnableError(
            f"The model {artifact.name} cannot be read as ONNX: {_reason(error)}.",
            hint="The control plane assigned a file that is not a model this device can load.",
            file=str(artifact),
        ) from None
    weights = {init.name for init in model.graph.initializer}
    inputs = tuple(i.name for i in model.graph.input if i.name not in weights)
    outputs = tuple(o.name for o in model.graph.output)
    if not outputs:
        raise ModelNotRunnableError(
            f"The model {artifact.name} declares no outputs.", file=str(artifact)
        )
    stage = StageSpec(
        tier=DEVICE_TIER,
        model=model_name,
        file=os.path.relpath(artifact, folder),
        inputs=inputs,
        outputs=outputs,
        returns=outputs,
        # Called from outside the tier: the tier server hosts only stages with an inbound.
        inbound=Inbound(links=(), codec=CODEC, tensors=inputs),
    )
    plan = PlanSpec(
        id=PLAN_ID,
        labels=(DEVICE_TIER,),
        stages=(stage,),
        tiers=(DEVICE_TIER,),
        stage_of=(),
        layout=(DEVICE_TIER,),
        knobs={},
        predicted_ms=0.0,
    )
    bundle = Bundle(
        model=model_name,
        origin=APPLICATION,
        inputs=(),
        outputs=outputs,
        tiers=(TierSpec(DEVICE_TIER, slowdown=1.0),),  # the device itself: no emulation
        links={},
        plans=(plan,),
        default_plan=PLAN_ID,
        notes=(f"served on the device from artifact {artifact.name}",),
    )
    return write_bundle(bundle, {}, folder, overwrite=True)


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text[:200] if text else type(error).__name__
