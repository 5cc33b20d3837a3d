"""C++ for a loaded model: the statements that fill the layout struct and options of its one-call postprocess in
the core (``edgeseg/postprocess.hpp``), so a C++ program gets exactly what ``edgeseg.load`` found in the file.

    edgeseg info MODEL --cpp

The layout values come from the model's head (``model.head.core_layout``, the same object the Python API hands the
core), the options from the family's reference defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import _core
from .model import Model


def _b(v: bool) -> str:
    return "true" if v else "false"


def _f(v: float) -> str:
    text = f"{float(v):.9g}"
    return (text if any(c in text for c in ".e") else text + ".0") + "f"


def _ints(values: Any) -> str:
    return "{" + ", ".join(str(int(v)) for v in values) + "}"


def _yolo(lay: Any) -> list[str]:
    head = {"raw": "kRaw", "e2e": "kEndToEnd", "objectness": "kObjectness"}[lay.head]
    return [
        f"layout.head = edgeseg::YoloHead::{head};",
        f"layout.num_classes = {lay.num_classes};",
        f"layout.num_coeffs = {lay.num_coeffs};",
        f"layout.detections = {lay.detections};",
        f"layout.anchor_major = {_b(lay.anchor_major)};",
        f"layout.prototypes = {lay.prototypes};",
        f"layout.prototypes_nhwc = {_b(lay.prototypes_nhwc)};",
        f"layout.boxes_normalized = {_b(lay.boxes_normalized)};",
    ]


def _split(lay: Any) -> list[str]:
    kind = {"dfl": "kDfl", "anchors": "kAnchors", "scored": "kScored", "two_way": "kTwoWay"}[lay.kind]
    lines = [
        f"layout.kind = edgeseg::SplitLayout::Kind::{kind};",
        f"layout.num_classes = {lay.num_classes};",
        f"layout.levels_nhwc = {_b(lay.levels_nhwc)};",
        f"layout.prototypes = {lay.prototypes};",
        f"layout.prototypes_nhwc = {_b(lay.prototypes_nhwc)};",
    ]
    for name in ("boxes", "scores", "classes", "coeffs"):
        if getattr(lay, name) >= 0:
            lines.append(f"layout.{name} = {getattr(lay, name)};")
    if lay.kind == "two_way":
        lines += [f"layout.anchor_major = {_b(lay.anchor_major)};",
                  f"layout.boxes_normalized = {_b(lay.boxes_normalized)};"]  # fmt: skip
    for lv in lay.levels:
        grid_h, grid_w = lv["grid"]
        fields = [str(lv["boxes"]), str(lv["scores"]), str(lv["coeffs"]), str(lv["score_sum"]),
                  str(grid_h), str(grid_w), _f(lv["stride"])]  # fmt: skip
        anchors = ", ".join(_f(a) for a in lv["anchors"])
        lines.append(f"layout.levels.push_back({{{', '.join(fields)}, {{{anchors}}}}});")
    return lines


def _yolact(lay: Any) -> list[str]:
    lines = [
        f"layout.boxes = {lay.boxes};",
        f"layout.boxes_decoded = {_b(lay.boxes_decoded)};",
        f"layout.conf = {lay.conf};",
        f"layout.coeffs = {lay.coeffs};",
        f"layout.prototypes = {lay.prototypes};",
        f"layout.priors_output = {lay.priors_output};",
        f"layout.prototypes_nhwc = {_b(lay.prototypes_nhwc)};",
        f"layout.top_k = {lay.top_k};",
    ]
    if lay.num_priors:
        lines.append(f"// layout.priors: the {lay.num_priors} host priors (cx, cy, w, h) of yolact's make_priors, "
                     "e.g. saved from Python: model.spec.layout.priors")  # fmt: skip
    return lines


def _rtmdet(lay: Any) -> list[str]:
    return [
        f"layout.cls = {_ints(lay.cls)};",
        f"layout.box = {_ints(lay.box)};",
        f"layout.kernel = {_ints(lay.kernel)};",
        f"layout.strides = {_ints(lay.strides)};",
        f"layout.mask_feat = {lay.mask_feat};",
        f"layout.dyconv_channels = {lay.dyconv_channels};",
        f"layout.num_dyconvs = {lay.num_dyconvs};",
    ]


def _solov2(lay: Any) -> list[str]:
    return [
        f"layout.flat = {_b(lay.flat)};",
        f"layout.cate = {_ints(lay.cate)};",
        f"layout.kernel = {_ints(lay.kernel)};",
        f"layout.mask_feat = {lay.mask_feat};",
        f"layout.grids = {_ints(lay.grids)};",
        f"layout.strides = {_ints(lay.strides)};",
        f"layout.cate_logits = {_b(lay.cate_logits)};",
        f"layout.mask_stride = {lay.mask_stride};",
        f"layout.nms_pre = {lay.nms_pre};",
        f"layout.filter_thr = {_f(lay.filter_thr)};",
        f"layout.gaussian = {_b(lay.gaussian)};",
        f"layout.sigma = {_f(lay.sigma)};",
    ]


def _dets(lay: Any) -> list[str]:
    return [
        f"layout.boxes = {lay.boxes};",
        f"layout.scores = {lay.scores};",
        f"layout.labels = {lay.labels};",
        f"layout.masks = {lay.masks};",
        f"layout.roi_masks = {_b(lay.roi_masks)};",
        f"layout.torchvision_paste = {_b(lay.torchvision_paste)};",
        f"layout.inclusive = {_b(lay.inclusive)};",
        f"layout.num_classes = {lay.num_classes};",
    ]


# Core layout type -> (C++ struct, one-call function, statements).
_WRITERS: dict[type, tuple[str, str, Callable[[Any], list[str]]]] = {
    _core.YoloLayout: ("YoloLayout", "postprocess_yolo", _yolo),
    _core.SplitLayout: ("SplitLayout", "postprocess_yolo_split", _split),
    _core.YolactLayout: ("YolactLayout", "postprocess_yolact", _yolact),
    _core.RtmdetLayout: ("RtmdetLayout", "postprocess_rtmdet", _rtmdet),
    _core.Solov2Layout: ("Solov2Layout", "postprocess_solov2", _solov2),
    _core.DetsLayout: ("DetsLayout", "postprocess_dets", _dets),
}
_SUPPRESSION = {"box": "kBox", "fast": "kFast", "matrix": "kMatrix", "mask": "kMask"}
_RESIZE = {"letterbox": "kCentered", "keep_ratio": "kKeepRatio", "stretch": "kStretch"}


def layout_snippet(model: Model) -> str:
    """C++ that fills ``layout`` and ``opt`` for ``model`` and calls its one-call postprocess (a comment block
    says what goes in and where the numbers came from)."""
    lay = model.head.core_layout
    struct, function, writer = _WRITERS[type(lay)]
    spec, d = model.spec, model.spec.defaults
    outputs = "; ".join(f"{i}: {o.name} {list(o.shape)} {o.dtype}" for i, o in enumerate(model.runtime.outputs))
    size = "input_h, input_w" if spec.dynamic_hw else f"{spec.imgsz[0]}, {spec.imgsz[1]}"
    lines = [
        f"// {spec.path}: family {spec.family}, layout {spec.head} (edgeseg info --cpp)",
        f"// outputs (give each as one image's edgeseg::Tensor, batch dimension left out): {outputs}",
        f"edgeseg::{struct} layout;",
        *writer(lay),
        "edgeseg::PostprocessOptions opt;  // the family's reference defaults",
        f"opt.conf = {_f(d.conf)};",
        f"opt.iou = {_f(d.iou)};",
        f"opt.max_det = {d.max_det};",
        f"opt.nms = edgeseg::Suppression::{_SUPPRESSION[d.nms]};",
        f"opt.mask_threshold = {_f(d.mask_threshold)};",
        f"edgeseg::Letterbox lb = edgeseg::make_letterbox(image_h, image_w, {size}, "
        f"edgeseg::Resize::{_RESIZE[spec.preprocess.resize]});",
        f"edgeseg::Instances found = edgeseg::{function}(layout, outputs, lb, opt);",
    ]
    return "\n".join(lines)
