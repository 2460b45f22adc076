"""Measuring models with ONNX Runtime on this host: analysis, latency, memory, codec timings
and the calibrated latency predictor."""
