"""The reference model zoo: models defined here in PyTorch, exported to ONNX on demand.

Importing this package does not import torch; ``export_zoo_model`` does, when called
(``pip install 'tierml[torch]'``). Weights are random but seeded: the models exist for
graph analysis and split-correctness tests, not for accuracy.
"""

from __future__ import annotations

import os
import pathlib

from tierml.zoo.catalog import EXPORTERS, ZOO_NAMES

__all__ = ["EXPORTERS", "ZOO_NAMES", "export_zoo_model"]


def export_zoo_model(
    name: str,
    path: str | os.PathLike[str],
    *,
    exporter: str = "legacy",
    image_size: int | None = None,
    seq_len: int | None = None,
    seed: int = 0,
    opset: int | None = None,
) -> pathlib.Path:
    """Build zoo model ``name`` with seeded random weights and export it to ONNX at ``path``.

    See ``tierml.zoo.export.export_zoo_model``.
    """
    from tierml.zoo.export import export_zoo_model as _export

    return _export(
        name,
        path,
        exporter=exporter,
        image_size=image_size,
        seq_len=seq_len,
        seed=seed,
        opset=opset,
    )
