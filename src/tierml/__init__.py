"""tierml: deploy and operate neural networks across the device → edge → cloud continuum."""

__version__ = "0.1.0"
