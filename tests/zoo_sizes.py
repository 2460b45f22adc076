"""Small input sizes for the zoo models in tests: every model keeps its full topology."""

from __future__ import annotations

# Small inputs keep the suite fast; every model still has its full topology.
SMALL = {
    "vgg16": {"image_size": 32},
    "resnet18": {"image_size": 64},
    "resnet50": {"image_size": 64},
    "mobilenetv2": {"image_size": 64},
    "inception": {"image_size": 64},
    "tiny_yolov2": {"image_size": 64},
    "transformer": {"seq_len": 16},
    "squeezenet": {"image_size": 32},
    "densenet": {"image_size": 32},
    "convnext": {"image_size": 32},
    "vit": {"image_size": 32},
    "unet": {"image_size": 32},
    "speech_lstm": {"seq_len": 8},
}
SEQ = {"input_ids": (1, 16), "attention_mask": (1, 16)}
# Inputs whose sizes are dynamic need them given; image inputs have theirs in the model.
SHAPES = {"transformer": SEQ, "speech_lstm": {"features": (1, 8, 40)}}
