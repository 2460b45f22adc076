"""Typed errors: every user error carries a stable code, what was wrong and what to do.

The library raises these; the CLI and server translate them once, at the edge, into one
line (``error[E_INVALID_CUT]: … Hint: …``). Callers match on ``code``, never on text.
"""

from __future__ import annotations


class TiermlError(Exception):
    """Base of every error tierml raises for bad input or an unusable model."""

    code = "E_TIERML"

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        """The message as the CLI prints it: code, what, and what to do."""
        text = f"error[{self.code}]: {self.message}"
        if self.hint:
            text += f" Hint: {self.hint}"
        return " ".join(text.split())

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message, "hint": self.hint}


class ModelLoadError(TiermlError):
    """The file is missing, not ONNX, truncated, or its external data cannot be found."""

    code = "E_MODEL_LOAD"


class UnsupportedModelError(TiermlError):
    """The model is valid ONNX but uses something tierml cannot analyse or split."""

    code = "E_UNSUPPORTED"


class DynamicShapeError(TiermlError):
    """A dynamic dimension is left unresolved for the chosen batch size."""

    code = "E_DYNAMIC_DIM"


class UnknownTensorError(TiermlError):
    """A tensor name given by the user does not exist in the model."""

    code = "E_UNKNOWN_TENSOR"


class InvalidCutError(TiermlError):
    """A user-given cut does not separate the graph into ordered stages."""

    code = "E_INVALID_CUT"


class InputDataError(TiermlError):
    """User-supplied input arrays or shape overrides do not match the model."""

    code = "E_INPUT"


class ModelNotRunnableError(TiermlError):
    """ONNX Runtime refuses to load or run the model (unknown opset, missing kernel …)."""

    code = "E_NOT_RUNNABLE"


class OutputPathError(TiermlError):
    """The output location cannot be written."""

    code = "E_OUTPUT"


class ZooError(TiermlError):
    """An unknown zoo model or exporter, or exporting needs the optional torch extra."""

    code = "E_ZOO"


class CatalogError(TiermlError):
    """A hardware/price catalog file is malformed; the message lists every problem."""

    code = "E_CATALOG"

    def __init__(self, message: str, *, hint: str = "", problems: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems or (message,)


class UnknownProfileError(TiermlError):
    """A tier, link or radio profile name that no loaded catalog defines."""

    code = "E_UNKNOWN_PROFILE"


class CalibrationError(TiermlError):
    """Predictor parameters are missing, unreadable, or from an incompatible version."""

    code = "E_CALIBRATION"


class CodecError(TiermlError):
    """An unknown activation codec, bad codec parameters, or a payload that cannot decode."""

    code = "E_CODEC"


class PlanInputError(TiermlError):
    """A planning problem that does not hold together (built from a bad profile or topology)."""

    code = "E_PLAN_INPUT"


class TopologyError(TiermlError):
    """A topology file is malformed; the message lists every problem with file and key."""

    code = "E_TOPOLOGY"

    def __init__(self, message: str, *, hint: str = "", problems: tuple[str, ...] = ()) -> None:
        super().__init__(message, hint=hint)
        self.problems = problems or (message,)


class LinkSpecError(TiermlError):
    """An emulated link's figures are out of range (bandwidth ≤ 0, loss ≥ 1 …)."""

    code = "E_LINK"


class DeploymentError(TiermlError):
    """A plan bundle is missing, malformed, or its tier processes cannot start."""

    code = "E_DEPLOY"


class TierUnavailableError(TiermlError):
    """A tier did not answer in time or refused the call; the request may fall back."""

    code = "E_TIER_DOWN"

    def __init__(self, tier: str, message: str, *, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.tier = tier


class RegistryError(TiermlError):
    """The model registry cannot do what was asked (its store, database or files)."""

    code = "E_REGISTRY"


class RegistryNotFoundError(RegistryError):
    """A model, version, recipe or variant name that the registry does not hold."""

    code = "E_REGISTRY_NOT_FOUND"


class RegistryDuplicateError(RegistryError):
    """A name or artifact the registry already holds under the same key."""

    code = "E_REGISTRY_DUPLICATE"


class RegistryInputError(RegistryError):
    """A model file, model card or recipe given to the registry is invalid."""

    code = "E_REGISTRY_INPUT"


class EvalDataError(RegistryError):
    """Evaluation data that does not match the model (names, shapes, labels)."""

    code = "E_REGISTRY_EVAL"


class UnknownTransformError(RegistryError):
    """A variant recipe names a transform tierml does not have, or bad parameters."""

    code = "E_REGISTRY_TRANSFORM"


class ArtifactIntegrityError(RegistryError):
    """A stored artifact is missing or its bytes no longer match its sha256."""

    code = "E_REGISTRY_INTEGRITY"


class DeviceDescriptionError(RegistryError):
    """A device description or selection policy file is malformed."""

    code = "E_REGISTRY_DEVICE"


class AdaptError(TiermlError):
    """Model adaptation (exits, codecs, bottleneck, privacy) cannot run as asked."""

    code = "E_ADAPT"


class BadDataError(AdaptError):
    """Training or evaluation data of the wrong shape, dtype or label range."""

    code = "E_BAD_DATA"


class AdaptParameterError(AdaptError):
    """An adaptation parameter out of range (ε ≤ 0, a clipping norm ≤ 0, no thresholds …)."""

    code = "E_ADAPT_PARAM"


class CurvesFileError(AdaptError):
    """A measured-curves JSON file is missing, malformed or of another format version."""

    code = "E_ADAPT_CURVES"
