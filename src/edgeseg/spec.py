"""ModelSpec: what edgeseg learns about a model once, at load time, from its metadata and graph.

Everything downstream reads the spec; nothing downstream re-guesses from shapes.
"""

from __future__ import annotations

import ast
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .coco import COCO80_NAMES
from .errors import ModelError
from .runtimes.base import Runtime, TensorInfo

log = logging.getLogger("edgeseg")

HEADS = ("yolo", "yolo_e2e")

SUPPORTED_LAYOUTS = """Supported layouts (Ultralytics YOLOv8/YOLO11 segmentation exports):
  raw head:    one input [B, 3, H, W] (or NHWC); outputs [B, 4 + classes + C, anchors] (or transposed)
               and prototypes [B, C, h, w] (or NHWC)
  end-to-end:  outputs [B, K, 6 + C] (x1, y1, x2, y2, score, class, C coefficients) and prototypes"""


@dataclass(frozen=True)
class ModelSpec:
    """Everything about a model that pre- and postprocessing need.

    Attributes:
        path: model file.
        runtime: runtime name (``"onnxruntime"``).
        head: ``"yolo"`` (raw head, NMS in edgeseg) or ``"yolo_e2e"`` (NMS inside the graph).
        task: ``"segment"``.
        input: the image input tensor.
        input_layout: ``"NCHW"`` or ``"NHWC"``.
        imgsz: default input (height, width); for dynamic models the largest side it letterboxes into.
        dynamic_hw: whether the input height and width are dynamic.
        batch: fixed batch size, or None when the batch dimension is dynamic.
        stride: the model's largest stride; dynamic inputs are multiples of it.
        names: class names by class index.
        num_coeffs: mask coefficients per detection (= number of prototypes).
        detections_output: index of the detections output.
        detections_anchor_major: the raw head output is [B, anchors, features] instead of [B, features, anchors].
        prototypes_output: index of the prototypes output.
        prototypes_nhwc: prototypes are [B, h, w, C] instead of [B, C, h, w].
        boxes_normalized: box coordinates are fractions of the input size (TFLite exports) rather than pixels.
        outputs: all outputs, as the runtime reports them (with the quantization of quantized ones).
    """

    path: str
    runtime: str
    head: str
    task: str
    input: TensorInfo
    input_layout: str
    imgsz: tuple[int, int]
    dynamic_hw: bool
    batch: int | None
    stride: int
    names: tuple[str, ...]
    num_coeffs: int
    detections_output: int
    detections_anchor_major: bool
    prototypes_output: int
    prototypes_nhwc: bool
    boxes_normalized: bool
    outputs: tuple[TensorInfo, ...]

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.names)

    def describe(self) -> str:
        """A human-readable summary, as printed by ``edgeseg info``."""
        batch = "dynamic" if self.batch is None else str(self.batch)
        lines = [
            f"model:       {self.path}",
            f"runtime:     {self.runtime}",
            f"head:        {self.head} ({'NMS in the graph' if self.head == 'yolo_e2e' else 'NMS by edgeseg'})",
            f"task:        {self.task}",
            f"input:       {self.input.describe()} {self.input_layout}",
            f"imgsz:       {self.imgsz[0]}x{self.imgsz[1]}"
            + (" (dynamic: stride-multiple letterbox)" if self.dynamic_hw else ""),
            f"batch:       {batch}",
            f"stride:      {self.stride}",
            f"classes:     {self.num_classes} ({', '.join(self.names[:6])}{', ...' if self.num_classes > 6 else ''})",
            f"mask coeffs: {self.num_coeffs}",
            f"boxes:       {'normalized to 0..1' if self.boxes_normalized else 'input pixels'}",
        ]
        for i, o in enumerate(self.outputs):
            role = {self.detections_output: "detections", self.prototypes_output: "prototypes"}.get(i, "unused")
            lines.append(f"output {i}:    {o.describe()} ({role})")
        return "\n".join(lines)


def _literal(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return None


MAX_INPUT_SIDE = 8192  # pixels: larger "sizes" in metadata are corrupt, and would allocate gigabytes
MAX_STRIDE = 256
MAX_CLASSES = 1 << 16  # LVIS has 1203: more is a corrupt shape, and would build millions of names


def _meta_int(path: str, meta: dict[str, str], key: str, default: int, high: int) -> int:
    """An integer metadata field in 1..high, or a ModelError naming the file, the key and the value."""
    if key not in meta:
        return default
    value = _literal(meta[key])
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= high:
        raise ModelError(f"{path}: metadata {key}={meta[key]!r} is not an integer in 1..{high}")
    return value


def _size_pair(value: Any) -> tuple[int, int] | None:
    """(height, width) from an int or a pair of ints within 1..MAX_INPUT_SIDE, else None."""
    pair = (value, value) if isinstance(value, int) else value
    if not isinstance(pair, (list, tuple)) or len(pair) != 2:
        return None
    if any(isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 1 <= v <= MAX_INPUT_SIDE for v in pair):
        return None
    return int(pair[0]), int(pair[1])


def _names_from_metadata(meta: dict[str, str]) -> tuple[str, ...] | None:
    names = _literal(meta.get("names"))
    if isinstance(names, dict) and names and all(isinstance(k, int) for k in names):
        return tuple(str(names[k]) for k in sorted(names))
    if isinstance(names, (list, tuple)) and names:
        return tuple(str(n) for n in names)
    return None


def _unsupported(path: str, rt: Runtime, why: str) -> ModelError:
    ins = "; ".join(t.describe() for t in rt.inputs) or "none"
    outs = "; ".join(t.describe() for t in rt.outputs) or "none"
    return ModelError(f"{path}: {why}.\n  found inputs: {ins}\n  found outputs: {outs}\n{SUPPORTED_LAYOUTS}")


def build_spec(
    path: str,
    rt: Runtime,
    names: Sequence[str] | None = None,
    imgsz: int | Sequence[int] | None = None,
    prototypes_layout: str | None = None,
) -> ModelSpec:
    """Read a ModelSpec off a loaded model: metadata first, then the graph's shapes.

    Args:
        path: model file (for messages).
        rt: the loaded runtime.
        names: class names overriding the model's own.
        imgsz: input size overriding the model's default (dynamic-size models only), an int or (h, w).
        prototypes_layout: ``"NCHW"`` or ``"NHWC"`` for the prototypes output, for the rare model whose
            shapes cannot tell (the default reads it from the shapes and raises when they cannot).
    """
    meta = rt.metadata
    task = meta.get("task", "segment")
    if task != "segment":
        raise _unsupported(path, rt, f"the model's metadata says task={task!r}; edgeseg runs segmentation models")
    if len(rt.inputs) != 1 or len(rt.inputs[0].shape) != 4:
        raise _unsupported(path, rt, "expected one image input of rank 4")
    inp = rt.inputs[0]
    if inp.dtype not in (np.float32, np.int8, np.uint8):
        raise _unsupported(path, rt, f"input dtype {inp.dtype} is not supported (float32, int8, uint8)")
    if inp.dtype != np.float32 and inp.scale is None:
        raise _unsupported(path, rt, f"the {inp.dtype} input has no quantization parameters")
    for o in rt.outputs:
        if o.dtype not in (np.float32, np.int8, np.uint8) or (o.dtype != np.float32 and o.scale is None):
            raise _unsupported(path, rt, f"output {o.name} is {o.dtype} without usable quantization")
    b, d1, d2, d3 = inp.shape
    if d1 == 3 or (d1 is None and d3 != 3):
        layout, (h, w) = "NCHW", (d2, d3)
    elif d3 == 3:
        layout, (h, w) = "NHWC", (d1, d2)
    else:
        raise _unsupported(path, rt, "cannot tell the input's channel axis (expected 3 channels)")

    stride = _meta_int(path, meta, "stride", default=32, high=MAX_STRIDE)
    if (h is None) != (w is None):
        raise _unsupported(path, rt, "the input has one fixed and one dynamic side; export it fixed or fully dynamic")
    dynamic_hw = h is None
    if not dynamic_hw and not (0 < h <= MAX_INPUT_SIDE and 0 < w <= MAX_INPUT_SIDE):
        raise _unsupported(path, rt, f"the input size {h}x{w} is outside 1..{MAX_INPUT_SIDE} pixels a side")
    if imgsz is not None:
        size = _size_pair(imgsz)
        if size is None or any(s % stride for s in size):
            raise ValueError(
                f"imgsz must be a positive multiple of the stride {stride} up to {MAX_INPUT_SIDE} (or a pair), "
                f"got {imgsz!r}"
            )
        if not dynamic_hw and size != (h, w):
            raise ValueError(f"this model has a fixed {h}x{w} input; imgsz={imgsz!r} needs a dynamic-size export")
    elif not dynamic_hw:
        size = (int(h), int(w))
    elif "imgsz" in meta:
        size = _size_pair(_literal(meta["imgsz"]))
        if size is None:
            raise ModelError(
                f"{path}: metadata imgsz={meta['imgsz']!r} is not a size (an int or [height, width], "
                f"1..{MAX_INPUT_SIDE}); pass imgsz= to edgeseg.load"
            )
    else:
        size = (640, 640)

    rank4 = [i for i, o in enumerate(rt.outputs) if len(o.shape) == 4]
    rank3 = [i for i, o in enumerate(rt.outputs) if len(o.shape) == 3]
    if len(rank4) != 1 or len(rank3) != 1:
        raise _unsupported(path, rt, "expected one detections output (rank 3) and one prototypes output (rank 4)")
    proto_i, det_i = rank4[0], rank3[0]
    user_names = tuple(str(n) for n in names) if names is not None else None
    meta_names = _names_from_metadata(meta)
    known_nc = len(meta_names) if meta_names else None
    args = _literal(meta.get("args"))
    e2e_meta = (isinstance(args, dict) and bool(args.get("nms"))) or meta.get("end2end") == "True"

    _, a, c = rt.outputs[det_i].shape
    proto_nhwc = _prototypes_nhwc(path, rt, proto_i, (a, c), known_nc, layout, (h, w), prototypes_layout)
    p = rt.outputs[proto_i].shape
    nm = p[3] if proto_nhwc else p[1]

    def raw_nc(features: int | None, anchors: int | None) -> int | None:
        if features is None:
            return known_nc  # dynamic feature dimension: trust the class names
        nc = features - 4 - nm
        if nc < 1 or (known_nc is not None and nc != known_nc):
            return None
        return nc if anchors is None or anchors > features else None

    head, anchor_major = "yolo", False
    if e2e_meta and c == 6 + nm:
        head, nc = "yolo_e2e", known_nc
    elif (nc := raw_nc(a, c)) is not None:
        pass
    elif (nc := raw_nc(c, a)) is not None:
        anchor_major = True
    elif c == 6 + nm:
        head, nc = "yolo_e2e", known_nc
    else:
        raise _unsupported(path, rt, "the detections output matches neither a raw YOLO-seg head nor an end-to-end one")

    if nc is not None and nc > MAX_CLASSES:
        raise _unsupported(path, rt, f"the detections output implies {nc} classes, more than {MAX_CLASSES}")
    if nc is None and user_names is not None:
        nc = len(user_names)  # an end-to-end model without metadata: only the user knows
    if user_names is not None:
        final_names = user_names
    elif meta_names is not None:
        final_names = meta_names
    elif nc == 80 or nc is None:
        final_names = COCO80_NAMES
        if nc is None:
            log.warning("%s: no class names in the model; assuming the 80 COCO classes (pass names=...)", path)
    else:
        final_names = tuple(f"class_{i}" for i in range(nc))
    if nc is not None and len(final_names) != nc:
        raise ValueError(f"{path}: the model predicts {nc} classes but {len(final_names)} names were given: pass {nc}")

    normalized = head == "yolo" and _probe_boxes_normalized(rt, inp, layout, size, det_i, anchor_major)
    return ModelSpec(
        path=str(path),
        runtime=rt.name,
        head=head,
        task="segment",
        input=inp,
        input_layout=layout,
        imgsz=size,
        dynamic_hw=dynamic_hw,
        batch=b,
        stride=stride,
        names=final_names,
        num_coeffs=int(nm),
        detections_output=det_i,
        detections_anchor_major=anchor_major,
        prototypes_output=proto_i,
        prototypes_nhwc=proto_nhwc,
        boxes_normalized=normalized,
        outputs=tuple(rt.outputs),
    )


def _prototypes_nhwc(
    path: str,
    rt: Runtime,
    proto_i: int,
    det_dims: tuple[int | None, int | None],
    known_nc: int | None,
    input_layout: str,
    input_hw: tuple[int | None, int | None],
    override: str | None,
) -> bool:
    """Whether the prototypes output is [B, h, w, C] rather than [B, C, h, w], decided from facts.

    A layout is possible only when its channel count C fits the detections output (4 + classes + C
    features for a raw head, 6 + C for an end-to-end one, with the class count of the metadata when
    known) and its h x w is the input size divided by one whole factor. Shapes alone cannot tell
    [1, 32, 32, 32] (a 128x128 export) apart; then the exporter's convention decides: Ultralytics'
    ONNX exports are NCHW throughout and TFLite models NHWC throughout, so the prototypes follow the
    input's layout. Anything else that both layouts fit is refused: guessing gives wrong masks.
    """
    p = rt.outputs[proto_i].shape
    if override is not None:
        if override not in ("NCHW", "NHWC"):
            raise ValueError(f"prototypes_layout must be 'NCHW' or 'NHWC', got {override!r}")
        if (p[3] if override == "NHWC" else p[1]) is None:
            raise _unsupported(path, rt, f"prototypes_layout={override!r} leaves the number of prototypes unknown")
        return override == "NHWC"

    def fits(channels: int | None, ph: int | None, pw: int | None) -> bool:
        if channels is None or channels < 1:
            return False
        features = [d for d in det_dims if d is not None]
        end2end = any(f == 6 + channels for f in features)
        raw = any(f - 4 - channels >= 1 and known_nc in (None, f - 4 - channels) for f in features)
        if features and not (raw or end2end):
            return False
        in_h, in_w = input_hw
        if None in (in_h, in_w, ph, pw):
            return True  # a dynamic size: nothing to compare
        return ph > 0 and pw > 0 and in_h % ph == 0 and in_w % pw == 0 and in_h // ph == in_w // pw

    nchw_ok, nhwc_ok = fits(p[1], p[2], p[3]), fits(p[3], p[1], p[2])
    if nchw_ok != nhwc_ok:
        return nhwc_ok
    exporter_convention = rt.name == "litert" or "stride" in rt.metadata  # TFLite; Ultralytics' ONNX metadata
    if nchw_ok and exporter_convention:
        return input_layout == "NHWC"
    why = "fit both" if nchw_ok else "fit neither"
    raise _unsupported(
        path,
        rt,
        f"cannot tell the layout of the prototypes output {list(p)}: [B, C, h, w] and [B, h, w, C] {why} the "
        "detections output and the input size; if the model is right, pass prototypes_layout='NCHW' or 'NHWC' "
        "to edgeseg.load",
    )


def _probe_boxes_normalized(
    rt: Runtime, inp: TensorInfo, layout: str, size: tuple[int, int], det_i: int, anchor_major: bool
) -> bool:
    """Whether the raw head's boxes are fractions of the input size (TFLite exports) or pixels.

    Nothing in the file says so, but one inference on a flat grey image does: box centres spread
    over the whole input (anchors cover the image) whatever the content, so their maximum is about
    the input size in pixels and about 1 when normalized.
    """
    from .preprocess import PAD_VALUE, to_input

    batch = inp.shape[0] or 1
    tensor = np.zeros((batch, 3, *size) if layout == "NCHW" else (batch, *size, 3), inp.dtype)
    grey = np.full((*size, 3), PAD_VALUE, np.uint8)
    quant = None if inp.scale is None else (inp.scale, inp.zero_point)
    for slot in tensor:
        to_input(grey, slot, layout, quant)
    det = rt.run({inp.name: tensor})[det_i][0]
    centres = rt.outputs[det_i].dequantize((det.T if anchor_major else det)[:2])
    return float(np.nanmax(centres)) <= 2.0
