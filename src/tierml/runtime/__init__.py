"""Running partitions: stage files and manifests, chained execution, split checks."""
