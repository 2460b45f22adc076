"""Experiments on the runtime: end-to-end benchmarks, trace replays, the split's overhead,
the runtime's fixed costs, and the host-relative tiers they deploy on.

Nothing here serves requests: this package drives ``tierml.runtime`` and measures it.
Only the demo, the CLI and the benchmarks import it.
"""
