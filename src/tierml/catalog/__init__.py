"""The hardware and price catalog: tier, FaaS, link and radio profiles from TOML files."""

from tierml.catalog.loading import load_catalog
from tierml.catalog.schema import FIELDS, FORMAT

__all__ = ["FIELDS", "FORMAT", "load_catalog"]
