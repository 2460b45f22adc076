"""Pure graph layer: ONNX → ModelGraph, FLOPs, cuts, partitionings, stage extraction.

No ONNX Runtime, no clock, no file access except loading the model.
"""

from tierml.graph.builder import build_model_graph
from tierml.graph.cuts import (
    CandidateCut,
    enumerate_cuts,
    monotone_partitionings,
    partition_at,
    partition_from_specs,
    partitioning_at_positions,
    partitioning_from_stages,
)
from tierml.graph.extract import StageModel, extract_stages
from tierml.graph.loading import load_model
from tierml.graph.shapes import TensorType, concrete, infer_types, resolve_input_shapes

__all__ = [
    "CandidateCut",
    "StageModel",
    "TensorType",
    "build_model_graph",
    "concrete",
    "enumerate_cuts",
    "extract_stages",
    "infer_types",
    "load_model",
    "monotone_partitionings",
    "partition_at",
    "partition_from_specs",
    "partitioning_at_positions",
    "partitioning_from_stages",
    "resolve_input_shapes",
]
