"""What a profile's predictions start from (a plain enum: the CLI imports it at startup)."""

from __future__ import annotations

from enum import StrEnum


class PredictFrom(StrEnum):
    KERNELS = "kernels"  # the model's own kernel times, shared out of its whole run
    FEATURES = "features"  # the per-class regressions on graph features alone
