"""Model adaptation for split deployment: early exits, activation codecs, a learned
bottleneck and privacy at the cut, trained on real data and measured with ONNX Runtime.

Training uses torch (the optional ``torch`` extra); the backbone is any ONNX classifier,
frozen: its activations are computed by ONNX Runtime and only small heads are trained.
"""
