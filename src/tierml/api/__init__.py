"""tierml's application layer: one function per user action, the only door into the layers
below. The command line, the control plane, the demo and the benchmarks all call it.

Every action takes the :class:`~tierml.core.workspace.Workspace` (built once with
:func:`open_workspace`) where it needs state, typed arguments or options, and returns a
typed report whose ``to_dict()`` is the JSON ``tierml … --format json`` prints. Errors are
:class:`~tierml.core.errors.TiermlError` subclasses with a stable ``code``.

Submodules load on first use, so ``import tierml.api`` stays cheap on a device.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tierml.api import adapting, catalog, fleet, registry
    from tierml.api.agent import AgentOptions, AgentReport, enroll_device, run_agent
    from tierml.api.analysis import check_split, cuts, inspect, split
    from tierml.api.model_input import ModelInput, RegisteredModel
    from tierml.api.planning import PlanOptions, PlanReport, plan
    from tierml.api.profiling import (
        CalibrateOptions,
        ProfileOptions,
        ProfileReport,
        calibrate,
        codecs,
        profile,
    )
    from tierml.api.running import DeployOptions, bench_e2e, bench_trace, deploy, infer
    from tierml.api.workspace import open_workspace
    from tierml.api.zoo import zoo_build, zoo_list
    from tierml.core.workspace import TimeFloors, Workspace

# Public name → the submodule that defines it.
_WHERE = {
    "open_workspace": "workspace",
    "ModelInput": "model_input",
    "RegisteredModel": "model_input",
    "inspect": "analysis",
    "cuts": "analysis",
    "split": "analysis",
    "check_split": "analysis",
    "profile": "profiling",
    "ProfileOptions": "profiling",
    "ProfileReport": "profiling",
    "calibrate": "profiling",
    "CalibrateOptions": "profiling",
    "codecs": "profiling",
    "plan": "planning",
    "PlanOptions": "planning",
    "PlanReport": "planning",
    "deploy": "running",
    "DeployOptions": "running",
    "infer": "running",
    "bench_e2e": "running",
    "bench_trace": "running",
    "zoo_list": "zoo",
    "zoo_build": "zoo",
    "run_agent": "agent",
    "enroll_device": "agent",
    "AgentOptions": "agent",
    "AgentReport": "agent",
}
_CORE = {"Workspace": "tierml.core.workspace", "TimeFloors": "tierml.core.workspace"}
# Areas whose actions are reached through their module: ``api.registry.add_model(…)``.
_AREAS = ("registry", "adapting", "catalog", "fleet")

__all__ = [
    "AgentOptions",
    "AgentReport",
    "CalibrateOptions",
    "DeployOptions",
    "ModelInput",
    "PlanOptions",
    "PlanReport",
    "ProfileOptions",
    "ProfileReport",
    "RegisteredModel",
    "TimeFloors",
    "Workspace",
    "adapting",
    "bench_e2e",
    "bench_trace",
    "calibrate",
    "catalog",
    "check_split",
    "codecs",
    "cuts",
    "deploy",
    "enroll_device",
    "fleet",
    "infer",
    "inspect",
    "open_workspace",
    "plan",
    "profile",
    "registry",
    "run_agent",
    "split",
    "zoo_build",
    "zoo_list",
]


def __getattr__(name: str) -> Any:
    if name in _AREAS:
        return importlib.import_module(f"tierml.api.{name}")
    if name in _WHERE:
        return getattr(importlib.import_module(f"tierml.api.{_WHERE[name]}"), name)
    if name in _CORE:
        return getattr(importlib.import_module(_CORE[name]), name)
    raise AttributeError(f"module 'tierml.api' has no attribute {name!r}")
