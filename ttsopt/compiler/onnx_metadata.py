"""Replace an ONNX file's ``metadata_props`` without loading the graph.

Why: the metadata is a few hundred bytes, but ``onnx.load`` + ``onnx.save`` of a real-size graph holds the file's
bytes, the parsed proto and the serialized copy at once (3 × 1.2 GB for the RoBERTa ``bert`` graph: measured
+2.2 GB RSS at the save). A ModelProto's top-level fields are a flat protobuf record (tag, length, payload), so the
file is copied field by field in 64 MiB pieces, the old ``metadata_props`` (field 14) left out and the new ones
written where protobuf's serializer puts them (fields in number order), which makes the result byte for byte what
``onnx.save`` of the loaded, edited model writes (tests/test_export.py checks it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import BinaryIO

import onnx

from ttsopt.errors import TtsoptError

_METADATA_FIELD = 14
_CHUNK = 64 << 20
_VARINT, _FIXED64, _LENGTH, _FIXED32 = 0, 1, 2, 5


def _read_varint(file: BinaryIO) -> int | None:
    """The next varint of ``file``, or None at its end."""
    value, shift = 0, 0
    while True:
        byte = file.read(1)
        if not byte:
            if shift:
                raise ValueError("the file ends inside a varint")
            return None
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7


def _field_end(file: BinaryIO, wire_type: int) -> int:
    """Skip over one field's payload (the tag already read); returns the offset just after it."""
    if wire_type == _VARINT:
        _read_varint(file)
    elif wire_type == _LENGTH:
        length = _read_varint(file)
        if length is None:
            raise ValueError("the file ends inside a field")
        file.seek(length, os.SEEK_CUR)
    elif wire_type in (_FIXED64, _FIXED32):
        file.seek(8 if wire_type == _FIXED64 else 4, os.SEEK_CUR)
    else:
        raise ValueError(f"wire type {wire_type} has no place in an ONNX ModelProto")
    return file.tell()


def _copy(source: BinaryIO, out: BinaryIO, start: int, end: int) -> None:
    source.seek(start)
    while start < end:
        piece = source.read(min(_CHUNK, end - start))
        if not piece:
            raise ValueError("the file is shorter than its fields say")
        out.write(piece)
        start += len(piece)


def metadata_bytes(metadata: dict[str, object]) -> bytes:
    """``metadata_props`` entries as serialized fields (strings as they are, anything else as JSON)."""
    holder = onnx.ModelProto()
    for key, value in metadata.items():
        entry = holder.metadata_props.add()
        entry.key, entry.value = key, value if isinstance(value, str) else json.dumps(value)
    return holder.SerializeToString()


def write_metadata(path: Path, metadata: dict[str, object]) -> None:
    """Make ``metadata`` the whole ``metadata_props`` of the ONNX file ``path`` (replaced in place, atomically)."""
    payload = metadata_bytes(metadata)
    scratch = path.with_name(path.name + ".metadata")
    try:
        with open(path, "rb") as source, open(scratch, "wb") as out:
            size = os.fstat(source.fileno()).st_size
            written = False
            while source.tell() < size:
                start = source.tell()
                tag = _read_varint(source)
                number, wire_type = tag >> 3, tag & 7
                end = _field_end(source, wire_type)
                if end > size:
                    raise ValueError("the file is shorter than its fields say")
                if number > _METADATA_FIELD and not written:
                    out.write(payload)
                    written = True
                if number != _METADATA_FIELD:
                    _copy(source, out, start, end)
                source.seek(end)
            if not written:
                out.write(payload)
        os.replace(scratch, path)
    except ValueError as exc:
        scratch.unlink(missing_ok=True)
        raise TtsoptError(f"{path} is not a readable ONNX file ({exc}): this is a ttsopt bug, please report it") from None
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise


__all__ = ["metadata_bytes", "write_metadata"]
