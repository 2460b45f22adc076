"""The shared nouns of the graph layer: ModelGraph, its nodes and tensors, Cut, Partitioning.

Plain frozen data: built by ``tierml.graph``, read by every layer above it. Nothing here
imports ONNX; a ModelGraph is what the planner sees of a model.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class TensorKind(StrEnum):
    INPUT = "input"  # a graph input the caller feeds
    INITIALIZER = "initializer"  # a weight stored in the model
    CONSTANT = "constant"  # computed from initializers only: replicated, never crosses a cut
    ACTIVATION = "activation"  # computed from graph inputs at run time


# Bytes per element of the ONNX element types tierml meets (numpy names).
DTYPE_BYTES: Mapping[str, int] = {
    "float32": 4,
    "float16": 2,
    "bfloat16": 2,
    "float64": 8,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "int32": 4,
    "uint32": 4,
    "int64": 8,
    "uint64": 8,
    "bool": 1,
    "float8e4m3fn": 1,
    "float8e5m2": 1,
    "int4": 1,
    "uint4": 1,
    "complex64": 8,
    "complex128": 16,
    "string": 0,
    "unknown": 0,
}


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str  # numpy-style name, e.g. "float32"
    shape: tuple[int, ...] | None  # fully resolved, or None when it could not be resolved
    kind: TensorKind
    producer: int | None  # index of the producing node; None for inputs and initializers
    consumers: tuple[int, ...]  # indices of consuming nodes (subgraph captures included)

    @property
    def numel(self) -> int | None:
        return None if self.shape is None else math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes of one instance; 0 when the shape is unknown (reported, never guessed)."""
        n = self.numel
        return 0 if n is None else n * DTYPE_BYTES.get(self.dtype, 0)


@dataclass(frozen=True)
class NodeInfo:
    index: int  # position in the graph's topological order
    name: str
    op_type: str
    domain: str
    inputs: tuple[str, ...]  # explicit inputs then tensors captured by subgraphs; no blanks
    outputs: tuple[str, ...]
    macs: int  # multiply-accumulates (see docs/counting-rules.md)
    flops: int  # floating-point operations, 2 per MAC plus elementwise work
    counted: bool  # False when no counting rule covers this op (its compute reads as 0)
    param_bytes: int  # bytes of initializers this node reads
    constant: bool  # depends on no graph input: replicated into stages, never a cut
    has_subgraph: bool = False  # If / Loop / Scan: atomic for partitioning


@dataclass(frozen=True)
class ModelGraph:
    """An ONNX model as a DAG: nodes in topological order and every tensor they touch."""

    name: str
    nodes: tuple[NodeInfo, ...]
    tensors: Mapping[str, TensorInfo]
    inputs: tuple[str, ...]  # real graph inputs (initializer-backed inputs excluded)
    outputs: tuple[str, ...]
    batch_size: int
    opsets: Mapping[str, int] = field(default_factory=dict)

    @property
    def total_macs(self) -> int:
        return sum(n.macs for n in self.nodes)

    @property
    def total_flops(self) -> int:
        return sum(n.flops for n in self.nodes)

    @property
    def param_bytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values() if t.kind is TensorKind.INITIALIZER)

    @property
    def compute_nodes(self) -> tuple[NodeInfo, ...]:
        """Nodes that run per request (constant nodes are folded into whichever stage)."""
        return tuple(n for n in self.nodes if not n.constant)

    def tensor(self, name: str) -> TensorInfo:
        return self.tensors[name]


@dataclass(frozen=True)
class Cut:
    """The tensors crossing from stage ``after_stage`` to the next one."""

    after_stage: int  # 0 for the first link (stage 0 → stage 1)
    tensors: tuple[str, ...]  # produced upstream (or graph inputs) and consumed downstream
    nbytes: int
    forwarded_inputs: tuple[str, ...] = ()  # graph inputs among ``tensors``


@dataclass(frozen=True)
class Partitioning:
    """A monotone assignment of the compute nodes to ordered stages.

    ``stage_of[i]`` is the stage of node ``i`` (topological index); constant nodes hold
    -1 because they are replicated into every stage that needs them. Monotone: every
    tensor flows from a stage to the same or a later stage, never back.
    """

    stage_of: tuple[int, ...]
    cuts: tuple[Cut, ...]  # len == stages - 1

    @property
    def stages(self) -> int:
        return len(self.cuts) + 1

    def nodes_of(self, stage: int) -> tuple[int, ...]:
        return tuple(i for i, s in enumerate(self.stage_of) if s == stage)
