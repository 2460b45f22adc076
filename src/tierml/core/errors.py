"""Typed errors: every user error carries a stable code, what was wrong and what to do.

The library raises these in its own words: a message, a hint that names no command-line
option, and structured ``details`` (the tensor, the candidates, the value, the limit) that
a caller can read without parsing text. A :class:`Remedy` says what kind of fix applies;
the CLI phrases it with the options of the command that failed, and the HTTP edge returns
it as data. Edges translate errors once (``error[E_INVALID_CUT]: … Hint: …``). Callers
match on ``code``, never on text. ``docs/errors.md`` is generated from these classes
(``python -m tierml.cli.error_reference --write``).
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar

# A detail is plain data, so an error can cross a process or HTTP boundary as JSON.
Detail = str | int | float | bool | None | tuple[str, ...] | tuple[int, ...]


class Remedy(StrEnum):
    """The kinds of fix a user can apply; each edge phrases them in its own terms."""

    FIX_SHAPE = "fix_shape"  # details: input, example
    SET_BATCH = "set_batch"  # details: value
    REAL_INPUTS = "real_inputs"
    INSPECT_MODEL = "inspect_model"
    LIST_CUTS = "list_cuts"
    CUT_SYNTAX = "cut_syntax"
    ADD_CUT_TENSOR = "add_cut_tensor"  # details: tensors (the cut with the missing one)
    OVERWRITE = "overwrite"
    CALIBRATE = "calibrate"  # details: threads
    CALIBRATION_FILE = "calibration_file"
    RESPLIT = "resplit"
    REBUILD_BUNDLE = "rebuild_bundle"
    DEPLOY_FIRST = "deploy_first"  # details: bundle
    LIST_CATALOG = "list_catalog"
    ADD_CATALOG = "add_catalog"
    NAME_TIER = "name_tier"
    REGISTER_MODEL = "register_model"  # details: model, file (optional)
    SHOW_MODEL = "show_model"  # details: model
    SHOW_VARIANTS = "show_variants"  # details: model, version
    ADD_RECIPE = "add_recipe"  # details: model, recipe
    REGISTER_EVAL = "register_eval"
    TRANSFORM_PARAM = "transform_param"  # details: key, example
    REGISTRY_URL = "registry_url"
    WRITABLE_HOME = "writable_home"
    WRITABLE_OUT = "writable_out"
    DATASET = "dataset"
    EPSILON = "epsilon"
    DEFENCE = "defence"
    DEFENCE_WEIGHT = "defence_weight"
    EXIT_TAP = "exit_tap"
    ADAPT_EXITS_AGAIN = "adapt_exits_again"
    ADAPT_CURVES = "adapt_curves"
    LOCAL_DEPLOY = "local_deploy"
    SPLIT_ARGS = "split_args"
    DATA_SHAPE = "data_shape"  # details: input, example (the data's sample shape as the input's)
    ENROLL_TOKEN = "enroll_token"  # a device that is not enrolled yet needs a one-time token


class TiermlError(Exception):
    """Base of every error tierml raises for bad input or an unusable model."""

    code: ClassVar[str] = "E_TIERML"
    # What to do about this kind of error in general (docs/errors.md); a raise gives the
    # specific hint.
    action: ClassVar[str] = "Read the message: it names the value that was wrong."

    def __init__(
        self,
        message: str,
        *,
        hint: str = "",
        remedy: Remedy | None = None,
        problems: tuple[str, ...] = (),
        **details: Detail,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.remedy = remedy
        self.details: dict[str, Detail] = details
        # Every problem found, when a file was checked whole (a catalog, a topology).
        self.problems = problems or (message,)

    def one_line(self, hint: str | None = None) -> str:
        """The message as an edge prints it: code, what, and what to do (``hint``: the
        edge's own phrasing of the remedy, in place of the library's)."""
        said = self.hint if hint is None else hint
        text = f"error[{self.code}]: {self.message}"
        if said:
            text += f" Hint: {said}"
        return " ".join(text.split())

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.remedy is not None:
            out["remedy"] = self.remedy.value
        if self.details:
            out["details"] = {
                k: list(v) if isinstance(v, tuple) else v for k, v in self.details.items()
            }
        return out


class WorkspaceError(TiermlError):
    """The workspace settings (home, registry URL, time floors) are malformed."""

    code = "E_WORKSPACE"
    action = "Fix the setting the message names (an argument or its environment variable)."


class ModelLoadError(TiermlError):
    """The file is missing, not ONNX, truncated, or its external data cannot be found."""

    code = "E_MODEL_LOAD"
    action = "Check the path; re-export the model; keep external-data files beside it."


class UnsupportedModelError(TiermlError):
    """The model is valid ONNX but uses something tierml cannot analyse or split."""

    code = "E_UNSUPPORTED"
    action = "Re-export the model (a newer opset, no training-only ops) or report the construct."


class DynamicShapeError(TiermlError):
    """A dynamic dimension is left unresolved for the chosen batch size."""

    code = "E_DYNAMIC_DIM"
    action = "Fix the input's dynamic dimensions (a shape per input) or give real input arrays."


class UnknownTensorError(TiermlError):
    """A tensor name given by the user does not exist in the model."""

    code = "E_UNKNOWN_TENSOR"
    action = "Use a tensor name the model has; the inspection lists them."


class InvalidCutError(TiermlError):
    """A user-given cut does not separate the graph into ordered stages."""

    code = "E_INVALID_CUT"
    action = "Pick a cut from the list of valid cuts, or add the tensor the message names."


class InputDataError(TiermlError):
    """User-supplied input arrays or shape overrides do not match the model."""

    code = "E_INPUT"
    action = "Give arrays with the model's input names, dtypes and shapes."


class ModelNotRunnableError(TiermlError):
    """ONNX Runtime refuses to load or run the model (unknown opset, missing kernel …)."""

    code = "E_NOT_RUNNABLE"
    action = (
        "Check the model runs in ONNX Runtime alone; give real inputs if it needs valid values."
    )


class OutputPathError(TiermlError):
    """The output location cannot be written."""

    code = "E_OUTPUT"
    action = "Choose a writable, new (or empty) location, or allow overwriting it."


class ZooError(TiermlError):
    """An unknown zoo model or exporter, or exporting needs the optional torch extra."""

    code = "E_ZOO"
    action = "Use a name from the zoo list; install the torch extra to export."


class CatalogError(TiermlError):
    """A hardware/price catalog file is malformed; the message lists every problem."""

    code = "E_CATALOG"
    action = "Fix every listed field; the catalog reference gives each field's type and unit."


class UnknownProfileError(TiermlError):
    """A tier, link or radio profile name that no loaded catalog defines."""

    code = "E_UNKNOWN_PROFILE"
    action = "Use a profile name the catalog lists, or add the profile in a catalog file."


class CalibrationError(TiermlError):
    """Predictor parameters are missing, unreadable, or from an incompatible version."""

    code = "E_CALIBRATION"
    action = "Calibrate the latency predictor on this host again."


class CodecError(TiermlError):
    """An unknown activation codec, bad codec parameters, or a payload that cannot decode."""

    code = "E_CODEC"
    action = "Use a codec tierml lists (fp32, fp16, int8, with zstd or lz4)."


class PlanInputError(TiermlError):
    """A planning problem that does not hold together (built from a bad profile or topology)."""

    code = "E_PLAN_INPUT"
    action = "Fix the topology or the measured curves the message names."


class TopologyError(TiermlError):
    """A topology file is malformed; the message lists every problem with file and key."""

    code = "E_TOPOLOGY"
    action = "Fix every listed key; the topology reference gives each key's type and unit."


class LinkSpecError(TiermlError):
    """An emulated link's figures are out of range (bandwidth ≤ 0, loss ≥ 1 …)."""

    code = "E_LINK"
    action = "Give bandwidth > 0, RTT ≥ 0, jitter ≥ 0 and 0 ≤ loss < 1."


class DeploymentError(TiermlError):
    """A plan bundle is missing, malformed, or its tier processes cannot start."""

    code = "E_DEPLOY"
    action = "Rebuild the bundle from a plan; check the tier processes' output."


class TierUnavailableError(TiermlError):
    """A tier did not answer in time or refused the call; the request may fall back."""

    code = "E_TIER_DOWN"
    action = "Check the tier process; the client falls back to a plan without it meanwhile."

    def __init__(
        self,
        tier: str,
        message: str,
        *,
        hint: str = "",
        remedy: Remedy | None = None,
        problems: tuple[str, ...] = (),
        **details: Detail,
    ) -> None:
        super().__init__(message, hint=hint, remedy=remedy, problems=problems, tier=tier, **details)
        self.tier = tier


class RemoteError(TiermlError):
    """A tier refused a request (bad input, unknown partition): not a fault to route around."""

    code = "E_REMOTE"
    action = "Read the tier's message; the request itself must change."


class RegistryError(TiermlError):
    """The model registry cannot do what was asked (its store, database or files)."""

    code = "E_REGISTRY"
    action = "Check the registry database URL and that its server is up."


class RegistryNotFoundError(RegistryError):
    """A model, version, recipe or variant name that the registry does not hold."""

    code = "E_REGISTRY_NOT_FOUND"
    action = "List what the registry holds and use one of those names."


class RegistryDuplicateError(RegistryError):
    """A name or artifact the registry already holds under the same key."""

    code = "E_REGISTRY_DUPLICATE"
    action = "Use the existing entry, or choose another name."


class RegistryInputError(RegistryError):
    """A model file, model card or recipe given to the registry is invalid."""

    code = "E_REGISTRY_INPUT"
    action = "Fix the file or recipe the message names."


class EvalDataError(RegistryError):
    """Evaluation data that does not match the model (names, shapes, labels)."""

    code = "E_REGISTRY_EVAL"
    action = "Give an .npz with the model's inputs (or x) and integer labels."


class UnknownTransformError(RegistryError):
    """A variant recipe names a transform tierml does not have, or bad parameters."""

    code = "E_REGISTRY_TRANSFORM"
    action = "Use a listed transform with parameters in range."


class ArtifactIntegrityError(RegistryError):
    """A stored artifact is missing or its bytes no longer match its sha256."""

    code = "E_REGISTRY_INTEGRITY"
    action = "Check the registry's artifacts; rebuild or re-register what is corrupt."


class DeviceDescriptionError(RegistryError):
    """A device description or selection policy file is malformed."""

    code = "E_REGISTRY_DEVICE"
    action = "Fix the device or policy file; examples/devices/ has working ones."


class AdaptError(TiermlError):
    """Model adaptation (exits, codecs, bottleneck, privacy) cannot run as asked."""

    code = "E_ADAPT"
    action = "Adapt an image classifier at a single-tensor cut."


class BadDataError(AdaptError):
    """Training or evaluation data of the wrong shape, dtype or label range."""

    code = "E_BAD_DATA"
    action = "Use mnist5k, digits, or an .npz with arrays x and labels."


class AdaptParameterError(AdaptError):
    """An adaptation parameter out of range (ε ≤ 0, a clipping norm ≤ 0, no thresholds …)."""

    code = "E_ADAPT_PARAM"
    action = "Give the parameter the message names a value in range."


class CurvesFileError(AdaptError):
    """A measured-curves JSON file is missing, malformed or of another format version."""

    code = "E_ADAPT_CURVES"
    action = "Measure the curves again with the adaptation commands."


class AuthFailure(StrEnum):
    """Which check refused a signed request, a signed message or an enrolment token.

    One code (``E_AUTH``, or ``E_ENROLL`` for tokens) carries every reason: a verifier answers
    each of them the same way (refuse, log), so callers match on the code and read the reason
    from ``details["reason"]`` for logs, metrics and tests.
    """

    MISSING = "missing"  # a header, parameter or property the signature needs is absent
    MALFORMED = "malformed"  # a header or field is not the structured value it must be
    UNSUPPORTED = "unsupported"  # an algorithm, parameter or component this verifier refuses
    NOT_COVERED = "not_covered"  # the signature leaves out a component that must be covered
    UNKNOWN_KEY = "unknown_key"  # no key is enrolled under the key id
    BAD_SIGNATURE = "bad_signature"  # the signature does not verify with the key id's key
    STALE = "stale"  # created outside the accepted window around now, or expired
    REPLAYED = "replayed"  # the key id's nonce was seen before
    REPLAY_CACHE_FULL = "replay_cache_full"  # too many live nonces to remember another
    DIGEST_MISMATCH = "digest_mismatch"  # the body is not the one Content-Digest names
    TOKEN_UNKNOWN = "token_unknown"
    TOKEN_EXPIRED = "token_expired"
    TOKEN_USED = "token_used"
    ADMIN_TOKEN = "admin_token"  # an administrator's request without the right bearer token


class AuthenticationError(TiermlError):
    """A signed request or message was refused: a missing or malformed signature, an unknown
    key, a signature that does not verify, a stale ``created``, a replayed nonce or a body
    that does not match its Content-Digest (``details["reason"]`` says which)."""

    code = "E_AUTH"
    action = (
        "Sign every request with the enrolled device key; check the device clock for a stale "
        "signature; send each signature once."
    )

    def __init__(
        self,
        reason: AuthFailure,
        message: str,
        *,
        hint: str = "",
        remedy: Remedy | None = None,
        problems: tuple[str, ...] = (),
        **details: Detail,
    ) -> None:
        super().__init__(
            message, hint=hint, remedy=remedy, problems=problems, reason=reason.value, **details
        )
        self.reason = reason


class EnrollmentError(AuthenticationError):
    """An enrolment token that is unknown, expired or already used (the token is never
    repeated in the message)."""

    code = "E_ENROLL"
    action = "Ask the control plane's operator for a new enrolment token; each enrols once."


class ArtifactFailure(StrEnum):
    """Which check refused a downloaded model artifact (an ArtifactVerificationError's reason)."""

    SIGNATURE = "signature"  # the manifest's signature does not verify with the pinned key
    MALFORMED = "malformed"  # the manifest is not a well-formed artifact manifest
    DEVICE = "device"  # the manifest is for another device
    MISSING = "missing"  # the file is absent or unreadable
    SIZE = "size"  # the file is shorter or longer than the manifest says (truncated …)
    BYTES = "bytes"  # the file's sha256 is not the manifest's


class ArtifactVerificationError(TiermlError):
    """A downloaded model artifact failed verification on the device: its manifest's signature,
    its size or its bytes (``details["reason"]``); ``details["file"]`` names the file."""

    code = "E_ARTIFACT"
    action = (
        "Do not load the file: delete it and download it again; if it keeps failing, the "
        "control plane's key or the artifact store has changed."
    )

    def __init__(
        self,
        reason: ArtifactFailure,
        file: str,
        message: str,
        *,
        hint: str = "",
        remedy: Remedy | None = None,
        problems: tuple[str, ...] = (),
        **details: Detail,
    ) -> None:
        super().__init__(
            message,
            hint=hint,
            remedy=remedy,
            problems=problems,
            reason=reason.value,
            file=file,
            **details,
        )
        self.reason = reason
        self.file = file


class KeyMaterialError(TiermlError):
    """A key file or an encoded key is unreadable, not an Ed25519 key, or (a private key file)
    readable by other users."""

    code = "E_KEY"
    action = (
        "Restore the key file with mode 0600, or generate a new key and enrol again; a public "
        "key is the base64 of its 32 raw bytes."
    )


class FleetNotFoundError(TiermlError):
    """A rollout, device or endpoint the control plane does not have."""

    code = "E_FLEET_NOT_FOUND"
    action = "List the fleet's rollouts, devices or events and use an id from there."


class ForbiddenError(TiermlError):
    """An authenticated device asked for something that is not its own: an artifact that is
    neither assigned to it nor the one it ran before."""

    code = "E_FORBIDDEN"
    action = "Download only the artifact the device's last check-in assigned (or its previous)."


class RequestTooLargeError(TiermlError):
    """A request body larger than the control plane accepts (refused before it is read
    whole); ``details["limit"]`` is the limit in bytes."""

    code = "E_TOO_LARGE"
    action = "Send smaller requests: upload telemetry in several batches of fewer records."


class ControlPlaneUnavailableError(TiermlError):
    """The control plane could not be reached, did not answer in time, or failed (a 5xx or
    an unreadable answer); a device keeps serving and buffering, and tries again later."""

    code = "E_CONTROL_PLANE_DOWN"
    action = (
        "Check the control plane's URL and that it is up; a running device agent retries by "
        "itself with backoff."
    )


class ControlPlaneRefusalError(TiermlError):
    """The control plane refused a device's request (a 4xx): ``details["remote_code"]`` is
    its error code (E_ENROLL, E_AUTH, E_INPUT …) and the message its own."""

    code = "E_CONTROL_PLANE_REFUSED"
    action = (
        "Read the control plane's code in the message: E_ENROLL needs a new enrolment token, "
        "E_AUTH the device's key and clock checked."
    )


def error_classes() -> list[type[TiermlError]]:
    """Every error class, depth first from the base: the codes a caller can meet."""
    found: list[type[TiermlError]] = []

    def walk(cls: type[TiermlError]) -> None:
        found.append(cls)
        for sub in cls.__subclasses__():
            walk(sub)

    walk(TiermlError)
    return found
