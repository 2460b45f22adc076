"""Profile a model (measured and predicted latency), calibrate the predictor, time codecs."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tierml.api.model_input import ModelInput
from tierml.core.errors import InputDataError, Remedy, UnknownProfileError
from tierml.core.workspace import Workspace
from tierml.profile.codec_timing import CodecTimings, host_codec_timings
from tierml.profile.model_profile import ModelProfile, Validation, profile_model, validate
from tierml.profile.predict_from import PredictFrom
from tierml.zoo.calibration_set import CalibrationRun, run_calibration

__all__ = [
    "CalibrateOptions",
    "CalibrationRun",
    "CodecTimings",
    "ModelProfile",
    "PredictFrom",
    "ProfileOptions",
    "ProfileReport",
    "Validation",
    "calibrate",
    "codecs",
    "profile",
]


@dataclass(frozen=True)
class ProfileOptions:
    tier: str | None = None  # predict for this catalog tier profile
    link: str | None = None  # with ``tier``: energy if the tier sends each cut over it
    segments: int = 8
    threads: int = 1
    nodes: bool = False  # include the per-node table
    validate: bool = False  # report predicted vs measured error on this host instead
    params: Path | None = None  # a latency-model file from a calibration
    use_cache: bool = True
    predictor: str = PredictFrom.KERNELS.value  # or "features": as for a model never run here
    codecs: bool = False  # also cost every codec at every cut (this host's timings)
    catalog_files: tuple[Path, ...] = ()


@dataclass(frozen=True)
class ProfileReport:
    profile: ModelProfile
    validation: Validation | None = None  # with ``validate``
    cut_codecs: list[dict[str, Any]] | None = None  # with ``codecs``: per cut and codec
    nodes: bool = False

    def to_dict(self) -> dict[str, Any]:
        if self.validation is not None:
            v = self.validation
            return {
                "model": v.model,
                "segments": v.segments,
                "median_ape": v.median_ape,
                "p90_ape": v.p90_ape,
            }
        data = self.profile.to_dict()
        if not self.nodes:
            data.pop("nodes")
        if self.cut_codecs is not None:
            data["cuts"] = self.cut_codecs
        return data


def profile(
    workspace: Workspace, model: ModelInput, options: ProfileOptions | None = None
) -> ProfileReport:
    """Latency per segment: measured on this host (cached), predicted by the latency model,
    and on a catalog tier when one is named (with energy over a link)."""
    o = options or ProfileOptions()
    tier_profile = link_profile = radio_profile = None
    if o.link is not None and o.tier is None:
        raise UnknownProfileError(
            f'Link "{o.link}" needs the tier that sends over it.',
            hint="Name the tier as well.",
            remedy=Remedy.NAME_TIER,
            link=o.link,
        )
    if o.tier is not None:
        from tierml.catalog import load_catalog

        found = load_catalog(list(o.catalog_files), home=workspace.home)
        tier_profile = found.tier(o.tier)
        if o.link is not None:
            link_profile = found.link(o.link)
            if link_profile.radio is not None:
                radio_profile = found.radio(link_profile.radio)
    try:
        predict_from = PredictFrom(o.predictor)
    except ValueError:
        raise InputDataError(
            f"Unknown predictor {o.predictor!r}.",
            hint=f"Use one of: {', '.join(p.value for p in PredictFrom)}.",
            value=o.predictor,
            candidates=tuple(p.value for p in PredictFrom),
        ) from None
    analysed = model.analyse()
    result = profile_model(
        analysed,
        workspace=workspace,
        segments=o.segments,
        threads=o.threads,
        tier=tier_profile,
        link=link_profile,
        radio=radio_profile,
        params=str(o.params) if o.params is not None else None,
        use_cache=o.use_cache,
        predict_from=predict_from,
    )
    if o.validate:
        return ProfileReport(result, validation=validate(result))
    cut_codecs = _cut_codec_costs(workspace, result) if o.codecs else None
    return ProfileReport(result, cut_codecs=cut_codecs, nodes=o.nodes)


def _cut_codec_costs(workspace: Workspace, result: ModelProfile) -> list[dict[str, Any]]:
    """Per cut and codec: bytes on the wire and encode/decode time, from this host's fits."""
    timings = host_codec_timings(workspace)
    return [
        {
            "after_segment": r.index,
            "bytes": r.bytes_out,
            "codecs": {
                m.codec: {
                    "bytes": m.encoded_bytes(r.bytes_out),
                    "encode_ms": m.encode_ms(r.bytes_out),
                    "decode_ms": m.decode_ms(r.bytes_out),
                }
                for m in timings.models
            },
        }
        for r in result.segments
        if r.bytes_out > 0
    ]


@dataclass(frozen=True)
class CalibrateOptions:
    threads: int = 1
    models: tuple[Path, ...] = ()  # extra ONNX files to calibrate on
    zoo: bool = True
    onnx_models: bool = True  # the onnx wheel's real topologies
    op_sweeps: bool = True
    out: Path | None = None  # also write the parameters here
    progress: Callable[[str], None] | None = field(default=None, compare=False)


def calibrate(workspace: Workspace, options: CalibrateOptions | None = None) -> CalibrationRun:
    """Fit the latency predictor on this host; the leave-one-model-out error per family."""
    o = options or CalibrateOptions()
    return run_calibration(
        workspace=workspace,
        threads=o.threads,
        extra_models=[str(m) for m in o.models],
        zoo=o.zoo,
        onnx_models=o.onnx_models,
        op_sweeps=o.op_sweeps,
        out=o.out,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        progress=o.progress,
    )


def codecs(workspace: Workspace, *, refresh: bool = False) -> CodecTimings:
    """Encode/decode cost and size ratio of every activation codec on this host (cached)."""
    return host_codec_timings(workspace, refresh=refresh)
