"""Build the workspace once, from arguments or the environment: the only place that reads it.

| variable | what | default |
|---|---|---|
| ``TIERML_HOME`` | caches, calibrations, the default registry | ``~/.tierml`` |
| ``TIERML_REGISTRY_URL`` | the registry's SQLAlchemy URL | SQLite under the home |
| ``TIERML_TIME_FLOORS`` | "warmup,measure" seconds every measurement runs at least | "0.2,0.3" |

An argument wins over its variable.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from tierml.core.errors import WorkspaceError
from tierml.core.workspace import ArtifactWriteHook, Host, TimeFloors, Workspace

HOME_ENV = "TIERML_HOME"
REGISTRY_URL_ENV = "TIERML_REGISTRY_URL"
TIME_FLOORS_ENV = "TIERML_TIME_FLOORS"


def open_workspace(
    home: str | os.PathLike[str] | None = None,
    *,
    registry_url: str | None = None,
    time_floors: TimeFloors | None = None,
    host: Host | None = None,
    environ: Mapping[str, str] | None = None,
    before_artifact_rename: ArtifactWriteHook | None = None,
) -> Workspace:
    """The workspace from the arguments given, the rest from ``environ`` (default: this
    process's environment), the rest from the defaults. ``host``: this machine when None."""
    env = os.environ if environ is None else environ
    if host is None:
        from tierml.profile.host import this_host

        host = this_host()
    chosen_home = Path(home) if home is not None else _home(env)
    return Workspace(
        home=chosen_home,
        host=host,
        registry_url=registry_url or env.get(REGISTRY_URL_ENV) or None,
        time_floors=time_floors if time_floors is not None else parse_time_floors(env),
        before_artifact_rename=before_artifact_rename,
    )


def _home(env: Mapping[str, str]) -> Path:
    given = env.get(HOME_ENV)
    return Path(given) if given else Path.home() / ".tierml"


def parse_time_floors(env: Mapping[str, str]) -> TimeFloors:
    given = env.get(TIME_FLOORS_ENV)
    if not given:
        return TimeFloors()
    try:
        warmup_s, measure_s = (float(v) for v in given.split(","))
    except ValueError:
        default = TimeFloors()
        raise WorkspaceError(
            f"{TIME_FLOORS_ENV}={given!r} is not two numbers of seconds.",
            hint=f'Set it like "{default.warmup_s},{default.measure_s}", or unset it for '
            "those defaults.",
            value=given,
        ) from None
    return TimeFloors(warmup_s, measure_s)
