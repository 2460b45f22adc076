"""Activation codecs: how a tensor crossing a link is encoded (fp32, fp16, int8, int8c, each
optionally compressed with zstd or lz4). Pure computation over numpy arrays and bytes."""

from tierml.codecs.codec import (
    KNOWN_CODECS,
    VALUE_ENCODINGS,
    Codec,
    EncodedTensor,
    decode,
    encode,
    encoded_from_parts,
    parse_codec,
)
from tierml.codecs.lossless import COMPRESSORS, ZSTD_LEVEL

__all__ = [
    "COMPRESSORS",
    "KNOWN_CODECS",
    "VALUE_ENCODINGS",
    "ZSTD_LEVEL",
    "Codec",
    "EncodedTensor",
    "decode",
    "encode",
    "encoded_from_parts",
    "parse_codec",
]
