"""Ultralytics YOLO segmentation heads: the YOLOv8 / YOLO11 / YOLOv9 / YOLO26 raw head, the end-to-end (NMS in
graph) export, and the anchor-based YOLOv5 / YOLOv7-seg head with objectness.

YOLOv5 / YOLOv7-seg (head ``yolov5``) follow YOLOv5's ``segment/predict.py``: ``non_max_suppression`` with
conf 0.25, IoU 0.45, max_det 1000 (anchors whose objectness is above conf, score = objectness x class
probability, the best class of each, class-offset NMS), then masks. YOLOv5 offers two mask processes:
``process_mask`` (its default: crop at prototype resolution with boxes scaled down, then upsample to the
input) and ``process_mask_native`` (``--retina-masks``: upsample to the original image, then crop with the
boxes there). edgeseg assembles every family's masks the native way (``_core.assemble_masks``), so its masks
match ``process_mask_native``. Two deliberate differences: boxes are not rounded to whole pixels (YOLOv5
rounds them before cropping the masks), and instances whose mask is empty are dropped (YOLOv5 keeps them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from .._core import Letterbox
from ..preprocess import PAD_VALUE, to_input
from ..runtimes.base import Runtime, TensorInfo
from ..spec import (
    MAX_CLASSES,
    MAX_STRIDE,
    Defaults,
    Layout,
    LoadContext,
    ModelSpec,
    literal,
    meta_int,
    names_from_metadata,
)
from .base import Head, Instances, PostprocessOptions, instances_of

LAYOUTS = """Ultralytics YOLO segmentation (family "yolo"):
  yolo:        one input [B, 3, H, W] (or NHWC); outputs [B, 4 + classes + C, anchors] (or transposed)
               and prototypes [B, C, h, w] (or NHWC) (YOLOv8, YOLO11, YOLOv9 gelan-seg)
  yolo_e2e:    outputs [B, K, 6 + C] (x1, y1, x2, y2, score, class, C coefficients) and prototypes
               (end-to-end exports, YOLO26)
  yolov5:      outputs [B, 3 x cells, 4 + 1 + classes + C] (cx, cy, w, h, objectness, classes, C coefficients;
               3 anchors per cell of strides 8, 16, 32) and prototypes (YOLOv5-seg, YOLOv7-seg)"""

# YOLOv5-seg's reference postprocess (segment/predict.py, utils/general.py non_max_suppression).
YOLOV5_DEFAULTS = Defaults(conf=0.25, iou=0.45, max_det=1000)
ANCHORS_PER_CELL = 3  # YOLOv5 / YOLOv7: three anchor boxes per grid cell
STRIDE_SETS = ((8, 16, 32), (8, 16, 32, 64))  # P5 and P6 models


@dataclass(frozen=True)
class YoloLayout:
    """Which output is which in an Ultralytics segmentation export.

    Attributes:
        num_coeffs: mask coefficients per detection (= number of prototypes).
        detections_output: index of the detections output.
        detections_anchor_major: the raw head output is [B, anchors, features] instead of [B, features, anchors].
        prototypes_output: index of the prototypes output.
        prototypes_nhwc: prototypes are [B, h, w, C] instead of [B, C, h, w].
        boxes_normalized: box coordinates are fractions of the input size (TFLite exports) rather than pixels.
        objectness: the raw head has an objectness feature after the box (YOLOv5 / YOLOv7-seg): features are
            cx, cy, w, h, objectness, class probabilities, coefficients, and score = objectness x class.
    """

    num_coeffs: int
    detections_output: int
    detections_anchor_major: bool
    prototypes_output: int
    prototypes_nhwc: bool
    boxes_normalized: bool
    objectness: bool = False

    def describe(self) -> tuple[list[str], dict[int, str]]:
        """Lines for ``edgeseg info`` and each output's role."""
        lines = [
            f"mask coeffs: {self.num_coeffs}",
            f"boxes:       {'normalized to 0..1' if self.boxes_normalized else 'input pixels'}",
        ]
        if self.objectness:
            lines.append("objectness:  yes (score = objectness x class probability, as YOLOv5)")
        return lines, {self.detections_output: "detections", self.prototypes_output: "prototypes"}


# The core's name of each head of this family.
CORE_HEADS = {"yolo": "raw", "yolo_e2e": "e2e", "yolov5": "objectness"}


class YoloHead:
    """Every head of this family, decoded by the core's whole postprocess (``_core.postprocess_yolo``):

    - ``yolo``: [features, anchors] with features = cx, cy, w, h, class scores, mask coefficients;
    - ``yolov5`` (``layout.objectness``, see the module docstring): cx, cy, w, h, objectness, class
      probabilities, mask coefficients;
    - ``yolo_e2e``: rows of x1, y1, x2, y2, score, class, mask coefficients, already NMS-ed. ``options.nms``
      does not apply: the graph suppressed its candidates (box NMS) when it was exported, and the suppressed
      ones are not in its outputs.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.layout = lay = spec.layout
        self._det_info = spec.outputs[lay.detections_output]
        self._quants = [o.quant for o in spec.outputs]
        self.core_layout = _core.YoloLayout(
            head=CORE_HEADS[spec.head],
            num_classes=spec.num_classes,
            num_coeffs=lay.num_coeffs,
            detections=lay.detections_output,
            anchor_major=lay.detections_anchor_major,
            prototypes=lay.prototypes_output,
            prototypes_nhwc=lay.prototypes_nhwc,
            boxes_normalized=lay.boxes_normalized,
        )
        """The layout as the C++ API takes it (``edgeseg::YoloLayout``)."""

    def __call__(self, outputs: list[np.ndarray], index: int, lb: Letterbox, options: PostprocessOptions) -> Instances:
        image_outputs = [o[index] for o in outputs]
        return instances_of(_core.postprocess_yolo(self.core_layout, image_outputs, self._quants, lb, options), lb)

    def max_class_score(self, outputs: list[np.ndarray], index: int) -> float:
        """Highest class score over all anchors (end-to-end: among the graph's detections) of image ``index``
        (a health signal)."""
        pred = outputs[self.layout.detections_output][index]
        if self.spec.head == "yolo_e2e":
            scores = pred[:, 4]
            return float(self._det_info.dequantize(scores.max(keepdims=True)).max()) if scores.size else 0.0
        if self.layout.detections_anchor_major:
            pred = pred.T
        if self.layout.objectness:  # score = objectness x class probability
            obj = self._det_info.dequantize(pred[4])
            cls = self._det_info.dequantize(pred[5 : 5 + self.spec.num_classes].max(axis=0))
            return float((obj * cls).max()) if obj.size else 0.0
        scores = pred[4 : 4 + self.spec.num_classes]
        return float(self._det_info.dequantize(scores.max(keepdims=True)).max()) if scores.size else 0.0


class YoloFamily:
    """Detects Ultralytics segmentation exports (raw head or NMS in the graph) and makes their heads."""

    name = "yolo"
    layouts = LAYOUTS
    options = ("prototypes_layout",)

    def detect(self, ctx: LoadContext) -> Layout | None:
        """A ``yolo`` or ``yolo_e2e`` layout, None for outputs that are not one detections tensor (rank 3)
        and one prototypes tensor (rank 4), or a ModelError when they are but do not fit together."""
        rt, meta = ctx.runtime, ctx.metadata
        rank4 = [i for i, o in enumerate(rt.outputs) if len(o.shape) == 4]
        rank3 = [i for i, o in enumerate(rt.outputs) if len(o.shape) == 3]
        if len(rank4) != 1 or len(rank3) != 1 or len(rt.outputs) != 2:
            return None
        if rt.outputs[rank3[0]].shape[2] == 5:
            return None  # rows of x1, y1, x2, y2, score: an end-to-end dets output (YOLO rows hold >= 6 values)
        ctx.check_output_dtypes(range(len(rt.outputs)))
        proto_i, det_i = rank4[0], rank3[0]
        meta_names = names_from_metadata(meta)
        known_nc = len(meta_names) if meta_names else None
        args = literal(meta.get("args"))
        e2e_meta = (isinstance(args, dict) and bool(args.get("nms"))) or meta.get("end2end") == "True"

        _, a, c = rt.outputs[det_i].shape
        proto_nhwc = _prototypes_nhwc(ctx, proto_i, (a, c), known_nc, ctx.options.get("prototypes_layout"))
        p = rt.outputs[proto_i].shape
        nm = p[3] if proto_nhwc else p[1]
        objectness = not (e2e_meta and c == 6 + nm) and _has_objectness(ctx, det_i, nm, known_nc)

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
        elif objectness:
            head, nc, anchor_major = "yolov5", c - 5 - nm, True
        elif (nc := raw_nc(a, c)) is not None:
            pass
        elif (nc := raw_nc(c, a)) is not None:
            anchor_major = True
        elif c == 6 + nm:
            head, nc = "yolo_e2e", known_nc
        else:
            raise ctx.unsupported("the detections output matches neither a raw YOLO-seg head nor an end-to-end one")
        if nc is not None and nc > MAX_CLASSES:
            raise ctx.unsupported(f"the detections output implies {nc} classes, more than {MAX_CLASSES}")
        if nc is None and ctx.names is not None:
            nc = len(ctx.names)  # an end-to-end model without metadata: only the user knows

        stride = meta_int(ctx.path, meta, "stride", default=32, high=MAX_STRIDE)
        size = ctx.input_size(stride)
        normalized = head != "yolo_e2e" and probe_boxes_normalized(
            rt, ctx.input, ctx.input_layout, size, det_i, anchor_major
        )
        params = YoloLayout(
            num_coeffs=int(nm),
            detections_output=det_i,
            detections_anchor_major=anchor_major,
            prototypes_output=proto_i,
            prototypes_nhwc=proto_nhwc,
            boxes_normalized=normalized,
            objectness=objectness,
        )
        if objectness:
            summary = "YOLOv5 / YOLOv7-seg export, anchor-based raw head with objectness, NMS by edgeseg"
            return Layout("yolo", head, params, nc, summary, names=meta_names, stride=stride, defaults=YOLOV5_DEFAULTS)
        summary = "Ultralytics export, " + ("NMS in the graph" if head == "yolo_e2e" else "raw head, NMS by edgeseg")
        return Layout("yolo", head, params, nc, summary, names=meta_names, stride=stride)

    def make_head(self, spec: ModelSpec) -> Head:
        """The decoder for ``spec``."""
        return YoloHead(spec)


FAMILY = YoloFamily()


def _grid_cells(hw: tuple[int | None, int | None], strides: tuple[int, ...]) -> int | None:
    """Grid cells of all levels of an input of ``hw`` (None where dynamic)."""
    h, w = hw
    if h is None or w is None:
        return None
    return sum(-(-h // s) * -(-w // s) for s in strides)


def _has_objectness(ctx: LoadContext, det_i: int, nm: int, known_nc: int | None) -> bool:
    """Whether the detections output [B, anchors, features] is YOLOv5 / YOLOv7-seg's anchor-based head
    (4 box + objectness + classes + ``nm`` coefficients) rather than YOLOv8's anchor-free one transposed
    (4 box + classes + coefficients), decided from facts.

    With class names in the metadata (YOLOv5's exports write ``names`` and ``stride``), the feature count
    decides. Without, the anchor count: 3 anchors per cell of strides 8, 16, 32 (64) for YOLOv5, one per cell
    for YOLOv8; the user's ``names`` decide as the metadata's would. A model none of these tell apart is
    refused: the two readings give different classes and scores.
    """
    _, a, c = ctx.runtime.outputs[det_i].shape
    if c is None or (a is not None and a <= c) or c - 5 - nm < 1:
        return False  # not anchor-major, or too few features for objectness and a class
    if c == 6 + nm and known_nc is None:
        return False  # an end-to-end output without metadata: the caller tells
    nc = known_nc if known_nc is not None else len(ctx.names) if ctx.names is not None else None
    if nc is not None:
        return c == 5 + nc + nm
    cells = [_grid_cells(ctx.input_hw, strides) for strides in STRIDE_SETS]
    if a is not None and cells[0] is not None:
        if a in (ANCHORS_PER_CELL * n for n in cells):
            return True
        if a in cells:
            return False
    det = ctx.runtime.outputs[det_i]
    raise ctx.unsupported(
        f"cannot tell whether output {det.name} {list(det.shape)} is an anchor-based YOLOv5 / YOLOv7-seg head "
        f"(4 box + objectness + classes + {nm} coefficients, 3 anchors per grid cell) or a YOLOv8 one "
        f"(4 box + classes + {nm} coefficients, one anchor per cell): the anchor count fits neither the input "
        "size nor a dynamic one, and the model has no class names in its metadata; pass names= to edgeseg.load"
    )


def _prototypes_nhwc(
    ctx: LoadContext,
    proto_i: int,
    det_dims: tuple[int | None, int | None],
    known_nc: int | None,
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
    rt = ctx.runtime
    p = rt.outputs[proto_i].shape
    if override is not None:
        if override not in ("NCHW", "NHWC"):
            raise ValueError(f"prototypes_layout must be 'NCHW' or 'NHWC', got {override!r}")
        if (p[3] if override == "NHWC" else p[1]) is None:
            raise ctx.unsupported(f"prototypes_layout={override!r} leaves the number of prototypes unknown")
        return override == "NHWC"

    def fits(channels: int | None, ph: int | None, pw: int | None) -> bool:
        if channels is None or channels < 1:
            return False
        features = [d for d in det_dims if d is not None]
        end2end = any(f == 6 + channels for f in features)
        raw = any(
            f - 4 - channels >= 1 and known_nc in (None, f - 4 - channels, f - 5 - channels)  # YOLOv8 or v5
            for f in features
        )
        if features and not (raw or end2end):
            return False
        in_h, in_w = ctx.input_hw
        if None in (in_h, in_w, ph, pw):
            return True  # a dynamic size: nothing to compare
        return ph > 0 and pw > 0 and in_h % ph == 0 and in_w % pw == 0 and in_h // ph == in_w // pw

    nchw_ok, nhwc_ok = fits(p[1], p[2], p[3]), fits(p[3], p[1], p[2])
    if nchw_ok != nhwc_ok:
        return nhwc_ok
    exporter_convention = rt.name == "litert" or "stride" in rt.metadata  # TFLite; Ultralytics' ONNX metadata
    if nchw_ok and exporter_convention:
        return ctx.input_layout == "NHWC"
    why = "fit both" if nchw_ok else "fit neither"
    raise ctx.unsupported(
        f"cannot tell the layout of the prototypes output {list(p)}: [B, C, h, w] and [B, h, w, C] {why} the "
        "detections output and the input size; if the model is right, pass prototypes_layout='NCHW' or 'NHWC' "
        "to edgeseg.load",
    )


def probe_boxes_normalized(
    rt: Runtime, inp: TensorInfo, layout: str, size: tuple[int, int], det_i: int, anchor_major: bool
) -> bool:
    """Whether the raw head's boxes are fractions of the input size (TFLite exports) or pixels.

    Nothing in the file says so, but one inference on a flat grey image does: box centres spread
    over the whole input (anchors cover the image) whatever the content, so their maximum is about
    the input size in pixels and about 1 when normalized.
    """
    batch = inp.shape[0] or 1
    tensor = np.zeros((batch, 3, *size) if layout == "NCHW" else (batch, *size, 3), inp.dtype)
    grey = np.full((*size, 3), PAD_VALUE, np.uint8)
    quant = None if inp.scale is None else (inp.scale, inp.zero_point)
    for slot in tensor:
        to_input(grey, slot, layout, quant)
    det = rt.run({inp.name: tensor})[det_i][0]
    centres = rt.outputs[det_i].dequantize((det.T if anchor_major else det)[:2])
    return float(np.nanmax(centres)) <= 2.0
