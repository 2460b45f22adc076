"""A built-in application for emulation and demos: requests to the device's own endpoint.

It calls the local endpoint exactly as an application on the device would, with a stock OIP
client (tritonclient's gRPC client), at a steady rate: the arrays of an ``.npz`` keyed by
the model's input names (one unnamed array, ``arr_0``, feeds a model with one input), sent
one row at a time in turn (the whole array when the model's batch dimension is fixed to
its length). A request that fails is counted, not retried: telemetry records it as the
endpoint saw it.
"""

from __future__ import annotations

import threading
import time
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import tritonclient.grpc as triton
from tritonclient.utils import InferenceServerException

from tierml.core.errors import InputDataError
from tierml.runtime.wire import numpy_dtype, oip_datatype

Array = np.ndarray[Any, Any]
TIMEOUT_S = 10.0
MAX_RPS = 1000.0


def load_inputs(path: Path) -> dict[str, Array]:
    """The arrays of an ``.npz`` file; InputDataError when it is not one."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: np.asarray(data[name]) for name in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise InputDataError(
            f"Cannot read input arrays from {path}: {error}.",
            hint="Give an .npz of arrays keyed by the model's input names.",
            file=str(path),
        ) from None
    if not arrays:
        raise InputDataError(f"{path} holds no arrays.", file=str(path))
    return arrays


@dataclass(frozen=True)
class TrafficCounts:
    sent: int
    ok: int
    failed: int

    def to_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "ok": self.ok, "failed": self.failed}


class TrafficGenerator:
    """Sends ``rps`` requests a second to ``model_name`` at ``address`` from one thread."""

    def __init__(
        self, address: str, model_name: str, arrays: Mapping[str, Array], rps: float
    ) -> None:
        if not 0 < rps <= MAX_RPS:
            raise InputDataError(
                f"A request rate of {rps:g}/s is outside (0, {MAX_RPS:g}].", field="traffic"
            )
        self.address, self.model_name, self.rps = address, model_name, rps
        self.arrays = dict(arrays)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._lock = threading.Lock()
        self._sent = self._ok = self._failed = 0
        self._feeds: list[dict[str, Array]] | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=TIMEOUT_S + 1)

    def counts(self) -> TrafficCounts:
        with self._lock:
            return TrafficCounts(self._sent, self._ok, self._failed)

    def _run(self) -> None:
        client = triton.InferenceServerClient(url=self.address)
        try:
            interval = 1.0 / self.rps
            next_at = time.monotonic()
            i = 0
            while not self._stop.is_set():
                delay = next_at - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                # Open loop at the rate; a slow answer delays the next, never queues them.
                next_at = max(next_at + interval, time.monotonic() - interval)
                ok = self._send(client, i)
                i += 1
                with self._lock:
                    self._sent += 1
                    self._ok += ok
                    self._failed += not ok
        finally:
            client.close()

    def _send(self, client: Any, i: int) -> bool:
        try:
            feeds = self._requests(client)
            inputs = []
            for name, value in feeds[i % len(feeds)].items():
                tensor = triton.InferInput(name, list(value.shape), oip_datatype(value.dtype))
                tensor.set_data_from_numpy(value)
                inputs.append(tensor)
            client.infer(self.model_name, inputs, client_timeout=TIMEOUT_S)
        except (InferenceServerException, InputDataError):
            self._feeds = None  # the model may have changed: read its metadata again
            return False
        return True

    def _requests(self, client: Any) -> list[dict[str, Array]]:
        """The requests to cycle through, from the model's declared inputs."""
        if self._feeds is not None:
            return self._feeds
        metadata = client.get_model_metadata(self.model_name)
        declared = {i.name: list(i.shape) for i in metadata.inputs}
        dtypes = {i.name: numpy_dtype(i.datatype) for i in metadata.inputs}
        arrays = dict(self.arrays)
        if set(arrays) == {"arr_0"} and len(declared) == 1:
            arrays = {next(iter(declared)): arrays["arr_0"]}
        missing = sorted(set(declared) - set(arrays))
        if missing:
            raise InputDataError(f"The inputs file has no array for {', '.join(missing)}.")
        # The model's dtypes: a variant may take fp16 where the file holds fp32.
        arrays = {name: arrays[name].astype(dtypes[name], copy=False) for name in declared}
        rows = {len(a) if a.ndim else 1 for a in arrays.values()}
        leading = {shape[0] if shape else -1 for shape in declared.values()}
        if len(rows) != 1 or leading == rows:  # fixed to the arrays' length: send them whole
            self._feeds = [arrays]
        else:
            (count,) = rows
            self._feeds = [{n: a[k : k + 1] for n, a in arrays.items()} for k in range(count)]
        return self._feeds
