"""Model file format checks: what a file must look like before edgeseg trusts it as a model.

Used by the download cache before it records the digest of a file without a pinned sha256: an HTML
login page, a PyTorch ``.pt`` archive or a download cut short must be refused, not recorded as trusted.
The checks walk the file's structure (the protobuf fields of an ONNX ModelProto, the FlatBuffer tables
of a TFLite model) without running it. ``onnx_graph_problem`` is the ONNX Runtime backend's check, before each
session, for graphs on which ONNX Runtime would abort the process instead of raising an error.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any, BinaryIO

#: ModelProto fields (onnx.proto) and the protobuf wire type each must have.
_ONNX_FIELDS = {
    1: ("ir_version", 0), 2: ("producer_name", 2), 3: ("producer_version", 2), 4: ("domain", 2),
    5: ("model_version", 0), 6: ("doc_string", 2), 7: ("graph", 2), 8: ("opset_import", 2),
    14: ("metadata_props", 2), 20: ("training_info", 2), 25: ("functions", 2),
}  # fmt: skip


class _MalformedError(Exception):
    """What is wrong with a model file's structure."""


def _sniff(head: bytes, fmt: str) -> str | None:
    """What the first bytes of a file are, when they are recognisably not a ``fmt`` model."""
    if not head:
        return "an empty file"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<!doctype html", b"<html")) or (
        text.startswith(b"<") and any(tag in text for tag in (b"<html", b"<head", b"<body", b"<title"))
    ):
        return "an HTML page (a captive portal or login page?)"
    if text.startswith(b"version https://git-lfs"):
        return "a Git LFS pointer, not the file it points to"
    if head.startswith(b"PK\x03\x04"):
        return "a ZIP archive (a PyTorch .pt checkpoint? edgeseg runs ONNX and TFLite files)"
    if head.startswith(b"\x1f\x8b"):
        return "gzip-compressed data"
    if head.startswith(b"\x89HDF"):
        return "an HDF5 file (a Keras model?)"
    if fmt != "tflite" and head[4:8] == b"TFL3":
        return "a TFLite model"
    if fmt != "onnx" and head[:1] == b"\x08" and head[2:3] in (b"\x12", b"\x1a", b"\x22", b"\x28", b"\x32", b"\x3a"):
        return "an ONNX model"  # field 1 (ir_version) then field 2..7: how exporters start a ModelProto
    try:
        sample = head[:512].decode("utf-8")
    except UnicodeDecodeError as exc:  # binary, or a character cut at byte 512
        sample = head[: exc.start].decode("utf-8") if exc.start >= min(len(head), 512) - 3 else ""
    if sample and sample.replace("\n", "").replace("\r", "").replace("\t", "").isprintable():
        snippet = " ".join(sample.split())[:80]
        return f"text starting {snippet!r} (an error message from the server?)"
    return None


def _read_varint(f: BinaryIO, size: int) -> int:
    value = shift = 0
    for _ in range(10):
        byte = f.read(1)
        if not byte:
            raise _MalformedError(f"the file ends at byte {size} inside a field: a truncated download?")
        value |= (byte[0] & 0x7F) << shift
        if not byte[0] & 0x80:
            return value
        shift += 7
    raise _MalformedError(f"an overlong varint ends at byte {f.tell()}")


def _onnx_wire_problem(path: Path) -> str | None:
    """Walk the top-level protobuf fields of a ModelProto without parsing them.

    Every field must be well formed and end inside the file, and ir_version, graph and (for IR 3 and later)
    opset_import must be there: a cut anywhere inside the graph or before the opset shows up here.
    """
    size = path.stat().st_size
    seen: set[int] = set()
    ir_version = 0
    try:
        with open(path, "rb") as f:
            while f.tell() < size:
                start = f.tell()
                key = _read_varint(f, size)
                number, wire = key >> 3, key & 7
                name, want = _ONNX_FIELDS.get(number, (f"field {number}", None))
                if number == 0 or wire not in (0, 1, 2, 5):
                    raise _MalformedError(f"byte {start} starts no protobuf field (field {number}, wire type {wire})")
                if want is not None and wire != want:
                    raise _MalformedError(f"{name} at byte {start} has protobuf wire type {wire}, not {want}")
                if wire == 0:
                    value = _read_varint(f, size)
                    ir_version = value if number == 1 else ir_version
                else:
                    length = _read_varint(f, size) if wire == 2 else (8 if wire == 1 else 4)
                    end = f.tell() + length
                    if end > size:
                        raise _MalformedError(
                            f"the file ends at byte {size} inside {name}, which needs {end} bytes: "
                            "a truncated download?"
                        )
                    f.seek(end)
                seen.add(number)
    except _MalformedError as exc:
        return str(exc)
    if 1 not in seen or not 0 < ir_version < 1000:
        return "no plausible ir_version field"
    if 7 not in seen:
        return "no graph field (a truncated download?)"
    if ir_version >= 3 and 8 not in seen:
        return "no opset_import after the graph: a truncated download?"
    return None


def _onnx_problem(path: Path, thorough: bool) -> str | None:
    problem = _onnx_wire_problem(path)
    if problem or not thorough:
        return problem
    try:
        import onnx  # optional: a full parse where it is installed
    except ImportError:
        return None
    try:
        onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # DecodeError and friends: anything that stops the parse
        return f"it does not parse as an ONNX ModelProto ({type(exc).__name__}: {exc})"
    return None


def _tflite_walk(buf: mmap.mmap, size: int) -> None:
    """Follow a TFLite FlatBuffer's root table to its subgraphs and buffers, checking that each lies in the file.

    Model fields (schema.fbs): 2 subgraphs, 4 buffers; Buffer fields: 0 data, 1 offset, 2 size (data stored
    after the FlatBuffer in models over 2 GB).
    """

    def read(fmt: str, pos: int) -> int:
        if pos < 0 or pos + struct.calcsize(fmt) > size:
            raise _MalformedError(f"an offset points at byte {pos}, past the end of the file ({size} bytes)")
        return struct.unpack_from(fmt, buf, pos)[0]

    def table(pos: int) -> tuple[int, int, int]:
        vtable = pos - read("<i", pos)
        vsize = read("<H", vtable)
        if vsize < 4 or vsize % 2 or vtable + vsize > size:
            raise _MalformedError(f"the table at byte {pos} has a broken vtable")
        if pos + read("<H", vtable + 2) > size:
            raise _MalformedError(f"the table at byte {pos} ends past the end of the file ({size} bytes)")
        return pos, vtable, vsize

    def field(t: tuple[int, int, int], index: int) -> int | None:
        pos, vtable, vsize = t
        slot = 4 + 2 * index
        offset = read("<H", vtable + slot) if slot + 2 <= vsize else 0
        return pos + offset if offset else None

    def vector(pos: int, item: int, what: str) -> tuple[int, int]:
        start = pos + read("<I", pos)
        count = read("<I", start)
        if start + 4 + count * item > size:
            raise _MalformedError(
                f"{what} ends at byte {start + 4 + count * item}, past the end of the file ({size} bytes)"
            )
        return start + 4, count

    def tables(pos: int | None, what: str) -> list[tuple[int, int, int]]:
        if pos is None:
            return []
        start, count = vector(pos, 4, what)
        return [table(start + 4 * i + read("<I", start + 4 * i)) for i in range(count)]

    root = table(read("<I", 0))
    subgraphs = tables(field(root, 2), "the subgraph list")
    if not subgraphs:
        raise _MalformedError("the model has no subgraphs")
    for subgraph in subgraphs:  # SubGraph fields: 0 tensors, 3 operators
        tables(field(subgraph, 0), "a tensor list")
        tables(field(subgraph, 3), "an operator list")
    for index in (1, 6, 7):  # operator_codes, metadata, signature_defs
        tables(field(root, index), "a model table list")
    for i, b in enumerate(tables(field(root, 4), "the buffer list")):
        data = field(b, 0)
        if data is not None:
            vector(data, 1, f"buffer {i}")
        offset, length = field(b, 1), field(b, 2)
        if offset is not None and length is not None and read("<Q", offset) > 1:
            end = read("<Q", offset) + read("<Q", length)
            if end > size:
                raise _MalformedError(f"buffer {i} ends at byte {end}, past the end of the file ({size} bytes)")


def _tflite_problem(path: Path) -> str | None:
    size = path.stat().st_size
    if size < 8:
        return f"only {size} bytes: a truncated download?"
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        if buf[4:8] != b"TFL3":
            return f"no 'TFL3' FlatBuffer identifier at bytes 4..8 (got {bytes(buf[4:8])!r})"
        try:
            _tflite_walk(buf, size)
        except _MalformedError as exc:
            return f"a truncated or damaged FlatBuffer: {exc}"
        # Exporters such as Ultralytics append a small ZIP of metadata after the FlatBuffer: it must be whole.
        tail = buf[max(0, size - (1 << 16)) :]
        local, end = tail.rfind(b"PK\x03\x04"), tail.rfind(b"PK\x05\x06")
        if local >= 0 and (end < local or end + 22 + int.from_bytes(tail[end + 20 : end + 22], "little") != len(tail)):
            return "the metadata appended after the FlatBuffer is cut short (its ZIP has no end): a truncated download?"
    return None


def format_problem(path: Path, fmt: str, thorough: bool = True) -> str | None:
    """Why the file at ``path`` is not a well-formed ``fmt`` model (starting "not an ONNX model: ..."), or ``None``.

    ``fmt`` is ``"onnx"`` or ``"tflite"`` (other formats are not checked: ``None``). ``thorough=False`` skips
    the full ONNX parse (for error messages about files refused anyway). Raises ``OSError`` when the file
    cannot be read.
    """
    if fmt not in ("onnx", "tflite"):
        return None
    what = "an ONNX model" if fmt == "onnx" else "a TFLite model"
    with open(path, "rb") as f:
        head = f.read(4096)
    other = _sniff(head, fmt)
    if other:
        return f"not {what}: got {other}"
    detail = _onnx_problem(path, thorough) if fmt == "onnx" else _tflite_problem(path)
    return f"not {what}: {detail}" if detail else None


# Constant inputs up to this many elements are handed to shape inference as values (the shape of a
# Reshape, the starts of a Slice, the scales of a Resize); weights are not: only their shapes matter.
_SMALL_CONSTANT = 64
# Ops whose inference runs subgraphs: their outputs stay unknown here (the walk covers the main graph).
_SUBGRAPH_OPS = {"If", "Loop", "Scan", "SequenceMap"}


def onnx_graph_problem(path: Path) -> str | None:
    """A node to which ONNX shape inference gives an output with a negative dimension, described; or ``None``.

    No tensor has a negative dimension, but shape inference computes one for a convolution or pooling window
    larger than its (padded) input, e.g. a damaged weight shape. ONNX Runtime runs the same inference when it
    opens a model, and a Slice downstream of such a dimension then fails an assertion in ONNX's Slice
    inference (``std::clamp`` with hi < lo) that aborts the whole process (fuzz finding F17): such a file must
    be refused before ONNX Runtime sees it.

    The graph is walked one node at a time with ``onnx.shape_inference.infer_node_outputs``, stopping at the
    first negative dimension, so the node that would abort is never inferred. Inputs follow ONNX Runtime:
    negative declared input dimensions count as unknown, and only initializers that an input cannot override
    (and Constant nodes) are known values. A node that cannot be inferred (another domain, a missing schema,
    an inference error ONNX Runtime will report itself) leaves its outputs unknown. Needs the optional
    ``onnx`` package: without it, or when the file does not parse, nothing is checked (``None``).
    """
    try:
        import onnx
        from onnx import defs, helper, shape_inference
    except ImportError:
        return None
    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception:  # not parseable: ONNX Runtime refuses it with its own error
        return None
    graph = model.graph
    opsets = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    opset = opsets.get("ai.onnx")
    if opset is None:
        return None
    types: dict[str, onnx.TypeProto] = {}
    values: dict[str, onnx.TensorProto] = {}
    for info in graph.input:
        declared = onnx.TypeProto()
        declared.CopyFrom(info.type)
        for dim in declared.tensor_type.shape.dim:
            if dim.HasField("dim_value") and dim.dim_value < 0:
                dim.ClearField("dim_value")  # ONNX Runtime reads a negative declared dimension as dynamic
        types[info.name] = declared
    overridable = {i.name for i in graph.input} if model.ir_version >= 4 else set()
    for init in graph.initializer:
        if any(d < 0 for d in init.dims):
            continue
        types[init.name] = helper.make_tensor_type_proto(init.data_type, list(init.dims))
        size = 1
        for d in init.dims:
            size *= d
        if size <= _SMALL_CONSTANT and init.name not in overridable and init.data_location != onnx.TensorProto.EXTERNAL:
            values[init.name] = init
    for index, node in enumerate(graph.node):
        if node.domain not in ("", "ai.onnx") or node.op_type in _SUBGRAPH_OPS:
            continue
        inputs = [name for name in node.input if name]
        if any(name not in types for name in inputs):
            continue
        try:
            schema = defs.get_schema(node.op_type, opset, "")
            outputs = shape_inference.infer_node_outputs(
                schema,
                node,
                {name: types[name] for name in inputs},
                {name: values[name] for name in inputs if name in values},
                opset_imports=list(model.opset_import),
                ir_version=model.ir_version,
            )
        except Exception:  # no schema, or an inference error: the outputs stay unknown
            continue
        for name, inferred in outputs.items():
            if any(d.HasField("dim_value") and d.dim_value < 0 for d in inferred.tensor_type.shape.dim):
                label = f"{node.name!r}" if node.name else f"#{index}"
                given = ", ".join(f"{n!r} {_shape_text(types[n])}" for n in inputs)
                return (
                    f"node {label} ({node.op_type}) gives its output {name!r} the shape {_shape_text(inferred)} "
                    f"from {given}: a negative dimension, which no tensor can have (a window larger than its "
                    "input, or a damaged weight shape); ONNX Runtime would abort the process on this graph "
                    "instead of raising an error"
                )
            types[name] = inferred
        if node.op_type == "Constant" and len(node.output) == 1:
            for attr in node.attribute:
                if attr.name == "value" and attr.t.ByteSize() <= 8 * _SMALL_CONSTANT:
                    values[node.output[0]] = attr.t
    return None


def _shape_text(type_proto: Any) -> str:
    """``[1, 10, h, -48]``: an ONNX tensor type's shape, unknown dimensions by name or as ``?``."""
    tensor = type_proto.tensor_type
    if not tensor.HasField("shape"):
        return "of unknown rank"
    dims = [str(d.dim_value) if d.HasField("dim_value") else d.dim_param or "?" for d in tensor.shape.dim]
    return "[" + ", ".join(dims) + "]"
