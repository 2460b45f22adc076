"""Running the real `tierml` command in a new process, with its own home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def tierml(home: Path, *args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tierml", *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "TIERML_HOME": str(home), "COLUMNS": "200"},
    )
