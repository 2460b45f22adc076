"""Topology files: the tiers a model may run on, the links between them, and the goal."""

from tierml.topology.loading import ResolvedLink, ResolvedTier, ResolvedTopology, load_topology
from tierml.topology.schema import Topology, parse_topology

__all__ = [
    "ResolvedLink",
    "ResolvedTier",
    "ResolvedTopology",
    "Topology",
    "load_topology",
    "parse_topology",
]
