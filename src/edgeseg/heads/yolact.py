"""YOLACT / YOLACT++ / yolact_edge: prototypes + per-prior coefficients, Fast NMS.

There is no official ONNX exporter; three layouts are what users have (see ``LAYOUTS``):

- ``yolact_boxes`` — priors and box decoding in the graph, as OpenVINO's Open Model Zoo
  ``yolact-resnet50-fpn-pytorch`` (its model.yml patches yolact's ``Detect`` into a box decoder;
  output names ``boxes, conf, mask, proto``). The README there calls the boxes ``[y_min, x_min,
  y_max, x_max]`` but the patched code writes yolact's ``decode`` order, x1 y1 x2 y2, as read here.
- ``yolact_priors`` — raw SSD offsets ``loc`` and the priors as an output (OpenVINO's accuracy
  checker ``yolact`` adapter reads ``loc, conf, mask, priors, proto``).
- ``yolact_loc`` — ``loc, conf, mask, proto`` only (yolact_edge's ONNX converter and most community
  exports): the priors are made here exactly as yolact's ``PredictionModule.make_priors``.

Preprocessing is yolact's ``FastBaseTransform``: the BGR image is resized to the input (no aspect
kept), normalized with ``MEANS = (103.94, 116.78, 123.68)`` and ``STD = (57.38, 57.12, 58.40)``
(data/config.py, both in B, G, R order because the image is BGR at that point) and only then
reordered to RGB; so in the RGB input the mean is (123.68, 116.78, 103.94) and the std
(58.40, 57.12, 57.38). The postprocess is ``Detect`` + ``output_utils.postprocess`` (see the core's
``decode_yolact`` and ``yolact_masks``), with yolact's evaluation defaults (data/config.py:
``nms_conf_thresh`` 0.05, ``nms_thresh`` 0.5, ``nms_top_k`` 200, ``max_num_detections`` 100).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import _core
from .._core import Letterbox
from ..spec import MAX_CLASSES, Defaults, Layout, LoadContext, ModelSpec, Preprocess, names_from_metadata
from .base import Head, Instances, PostprocessOptions, instances_of

LAYOUTS = """YOLACT / YOLACT++ / yolact_edge (family "yolact"; NCHW input, plain resize, ImageNet mean/std, RGB):
  yolact_boxes:  boxes [1, N, 4] (x1 y1 x2 y2, fractions of the input), conf [1, N, 1 + classes] (softmax,
                 background first), mask [1, N, K] (coefficients), proto [1, h, w, K] (OpenVINO model zoo)
  yolact_priors: loc [1, N, 4] (SSD offsets, variances 0.1 / 0.2), conf, mask, priors [N, 4] (cx cy w h), proto
  yolact_loc:    loc, conf, mask, proto; priors made as yolact's make_priors (5 levels, strides 8..128,
                 scales 24..384, aspect ratios 1, 1/2, 2; YOLACT++: 3 scales per level)"""

YOLACT_PREPROCESS = Preprocess(
    resize="stretch",
    pad_value=None,  # a plain resize leaves no padding
    mean=(123.68, 116.78, 103.94),  # yolact's MEANS (B, G, R) reversed into the input's R, G, B
    std=(58.40, 57.12, 57.38),  # yolact's STD (B, G, R) reversed likewise
    rgb=True,
)
YOLACT_DEFAULTS = Defaults(conf=0.05, iou=0.5, max_det=100, nms="fast", mask_threshold=0.5)
TOP_K = 200  # data/config.py nms_top_k: candidates per class entering Fast NMS

BASE_SIZE = 550  # yolact_base_config.max_size: the scales below are for this input
BASE_SCALES = (24, 48, 96, 192, 384)  # yolact_base_config.backbone.pred_scales, one per level
ASPECT_RATIOS = (1.0, 0.5, 2.0)  # pred_aspect_ratios [[1, 1/2, 2]] at every level
PRIOR_VARIANTS = ("yolact", "yolact++")

_ROLE_NAMES = {
    "boxes": ("boxes", "box", "bboxes"),
    "loc": ("loc", "locs", "location"),
    "conf": ("conf", "confs", "confidence"),
    "mask": ("mask", "coef", "coeffs", "mask_coeffs"),
    "proto": ("proto", "protos", "prototypes"),
    "priors": ("priors", "prior", "prior_boxes"),
}


@dataclass(frozen=True)
class YolactLayout:
    """Which output is which in a YOLACT export, and the priors of layouts that need them.

    Attributes:
        boxes_output: index of the boxes (decoded) or loc (raw offsets) output.
        boxes_decoded: the boxes are decoded x1 y1 x2 y2 fractions (else SSD offsets against priors).
        conf_output, mask_output, proto_output: the class probabilities, coefficients and prototypes.
        priors_output: index of the priors output, or None.
        proto_nhwc: prototypes are [1, h, w, K] (yolact's own order) rather than [1, K, h, w].
        num_priors: N, the rows of every per-prior output (None when dynamic).
        num_coeffs: K, coefficients per prior (= prototypes).
        priors: host-made priors (N, 4) cx cy w h for ``yolact_loc``, else None.
        priors_summary: how the host priors were made.
        top_k: candidates per class entering Fast NMS.
    """

    boxes_output: int
    boxes_decoded: bool
    conf_output: int
    mask_output: int
    proto_output: int
    priors_output: int | None
    proto_nhwc: bool
    num_priors: int | None
    num_coeffs: int
    priors: np.ndarray | None = field(default=None, compare=False, repr=False)
    priors_summary: str = ""
    top_k: int = TOP_K

    def describe(self) -> tuple[list[str], dict[int, str]]:
        """Lines for ``edgeseg info`` and each output's role."""
        lines = [f"mask coeffs: {self.num_coeffs}", f"priors:      {self.num_priors}"]
        if self.priors_summary:
            lines.append(f"host priors: {self.priors_summary}")
        roles = {
            self.boxes_output: "boxes (decoded)" if self.boxes_decoded else "loc (SSD offsets)",
            self.conf_output: "class probabilities",
            self.mask_output: "mask coefficients",
            self.proto_output: "prototypes",
        }
        if self.priors_output is not None:
            roles[self.priors_output] = "priors"
        return lines, roles


def conv_sizes(side: int, levels: int = 5) -> list[int]:
    """Feature map sides of the prediction levels (strides 8 to 128) for an input side, as yolact's
    ResNet + FPN computes them: every stride-2 layer (7x7 and 3x3 convolutions with padding, the 3x3
    max pool, the FPN's downsampling convolutions) maps n to ceil(n / 2). 550 gives 69, 35, 18, 9, 5."""
    sizes, s = [], side
    for _ in range(3):
        s = -(-s // 2)
    for _ in range(levels):
        sizes.append(s)
        s = -(-s // 2)
    return sizes


def prior_scales(variant: str, side: int, base: Sequence[float] = BASE_SCALES) -> list[list[float]]:
    """Per-level pixel scales: yolact's ``pred_scales`` (YOLACT++: ``i * 2 ** (j / 3)`` for j < 3),
    rescaled for another input side as yolact_im400/im700 do (``int(scale / 550 * side)``)."""
    levels = [float(s) for s in base]
    if side != BASE_SIZE:
        levels = [float(int(s / BASE_SIZE * side)) for s in levels]
    if variant == "yolact++":
        return [[s * 2 ** (j / 3.0) for j in range(3)] for s in levels]
    return [[s] for s in levels]


def make_priors(side: int, scales: Sequence[Sequence[float]], square_anchors: bool) -> np.ndarray:
    """Priors (N, 4) float32 cx, cy, w, h as fractions of a square input of ``side`` pixels, in the
    order of yolact's ``PredictionModule.make_priors`` (levels, then rows, columns, scales, ratios).

    With the base configs' ``use_pixel_scales`` and ``preapply_sqrt=False``: w = scale * sqrt(ar) /
    side, h = scale / sqrt(ar) / side; ``use_square_anchors`` (yolact_base and its variants, kept
    "for backward compatibility with a bug") makes h = w. Computed in float64 and stored in float32,
    as ``torch.Tensor(list_of_floats)`` does.
    """
    out = []
    for size, level in zip(conv_sizes(side), scales):
        idx = np.arange(size, dtype=np.float64)
        y, x = np.meshgrid((idx + 0.5) / size, (idx + 0.5) / size, indexing="ij")
        per_cell = []
        for scale in level:
            for ar in ASPECT_RATIOS:
                r = math.sqrt(ar)
                w = scale * r / side
                h = w if square_anchors else scale / r / side
                per_cell.append((w, h))
        wh = np.array(per_cell, np.float64)  # (A, 2)
        a = len(per_cell)
        cells = np.stack([x.ravel(), y.ravel()], axis=1)  # (cells, 2) row-major: j (y) outer, i (x) inner
        block = np.empty((cells.shape[0], a, 4), np.float64)
        block[:, :, :2] = cells[:, None, :]
        block[:, :, 2:] = wh[None, :, :]
        out.append(block.reshape(-1, 4))
    return np.concatenate(out).astype(np.float32)


def _roles_by_name(ctx: LoadContext) -> dict[str, int] | None:
    found: dict[str, int] = {}
    for i, o in enumerate(ctx.outputs):
        for role, aliases in _ROLE_NAMES.items():
            if o.name.lower() in aliases:
                if role in found:
                    return None
                found[role] = i
    has_boxes = ("boxes" in found) != ("loc" in found)
    if not has_boxes or not {"conf", "mask", "proto"} <= set(found):
        return None
    if len(found) != len(ctx.outputs):
        return None
    return found


def _roles_by_shape(ctx: LoadContext) -> dict[str, int] | None:
    """Roles from shapes alone: three [1, N, d] outputs (d = 4 for boxes, K for coefficients, the
    rest is conf), one prototypes output with K channels, optionally [N, 4] priors."""
    outs = ctx.outputs
    rank4 = [i for i, o in enumerate(outs) if len(o.shape) == 4]
    rank3 = [i for i, o in enumerate(outs) if len(o.shape) == 3]
    rank2 = [i for i, o in enumerate(outs) if len(o.shape) == 2]
    if len(rank4) != 1 or len(rank3) != 3 or len(rank2) > 1 or len(outs) != 4 + len(rank2):
        return None
    p = outs[rank4[0]].shape
    ns = {outs[i].shape[1] for i in rank3}
    if len(ns) != 1 or None in ns:
        return None
    widths = {i: outs[i].shape[2] for i in rank3}
    boxes = [i for i, d in widths.items() if d == 4]
    mask = [i for i, d in widths.items() if d is not None and d != 4 and d in (p[1], p[3])]
    if len(boxes) != 1 or len(mask) != 1:
        return None
    conf = [i for i in rank3 if i not in (boxes[0], mask[0])]
    roles = {"loc": boxes[0], "mask": mask[0], "conf": conf[0], "proto": rank4[0]}
    if rank2:
        if tuple(outs[rank2[0]].shape) != (next(iter(ns)), 4):
            return None
        roles["priors"] = rank2[0]
    return roles


class YolactFamily:
    """Detects YOLACT exports (the three layouts above) and makes their heads."""

    name = "yolact"
    layouts = LAYOUTS
    options = ("boxes", "priors", "square_anchors", "prior_scales", "top_k")

    def detect(self, ctx: LoadContext) -> Layout | None:
        """A ``yolact_boxes``, ``yolact_priors`` or ``yolact_loc`` layout; None for outputs that are not
        YOLACT's; a ModelError for outputs that are, but do not fit together."""
        roles = _roles_by_name(ctx)
        by_name = roles is not None
        if roles is None:
            roles = _roles_by_shape(ctx)
        if roles is None:
            return None
        outs = ctx.outputs
        ctx.check_output_dtypes(list(roles.values()))

        def shape(role: str) -> tuple:
            return tuple(outs[roles[role]].shape)

        def name(role: str) -> str:
            return outs[roles[role]].describe()

        box_role = "boxes" if "boxes" in roles else "loc"
        for role in (box_role, "conf", "mask"):
            s = shape(role)
            if len(s) != 3 or s[0] not in (1, None):
                raise ctx.unsupported(f"YOLACT output {name(role)} must be [1, N, d] (one image, N priors)")
        if len(shape("proto")) != 4:
            raise ctx.unsupported(f"YOLACT prototypes {name('proto')} must be [1, h, w, K] (or [1, K, h, w])")
        ns = {role: shape(role)[1] for role in (box_role, "conf", "mask")}
        known = {n for n in ns.values() if n is not None}
        if len(known) > 1:
            got = ", ".join(f"{name(r)}" for r in ns)
            raise ctx.unsupported(f"YOLACT outputs disagree on the number of priors N: {got}")
        n = known.pop() if known else None
        if shape(box_role)[2] != 4:
            raise ctx.unsupported(f"YOLACT {box_role} output {name(box_role)} must have 4 values per prior")

        k = shape("mask")[2]
        p = shape("proto")
        if k is None:
            raise ctx.unsupported(f"YOLACT mask coefficients {name('mask')} have a dynamic count")
        if p[3] == k:
            nhwc = True  # yolact permutes its prototypes channels-last; [1, K, K, K] is read this way
        elif p[1] == k:
            nhwc = False
        else:
            raise ctx.unsupported(
                f"YOLACT mask coefficients {name('mask')} have K={k} per prior but the prototypes "
                f"{name('proto')} have {p[3]} channels (last dimension); they must be equal"
            )

        meta_names = names_from_metadata(ctx.metadata)
        c1 = shape("conf")[2]
        if c1 is not None and c1 < 2:
            raise ctx.unsupported(f"YOLACT conf {name('conf')} needs a background column and at least one class")
        nc = None if c1 is None else c1 - 1
        if nc is not None and nc > MAX_CLASSES:
            raise ctx.unsupported(f"YOLACT conf {name('conf')} implies {nc} classes, more than {MAX_CLASSES}")
        if meta_names is not None and nc is not None and len(meta_names) != nc:
            raise ctx.unsupported(
                f"YOLACT conf {name('conf')} has {c1} columns (background + {nc} classes) but the metadata "
                f"names {len(meta_names)} classes; expected {len(meta_names) + 1} columns"
            )
        if nc is None and meta_names is not None:
            nc = len(meta_names)

        decoded = self._boxes_decoded(ctx, roles, by_name)
        priors_output = roles.get("priors")
        host_priors, summary = None, ""
        if priors_output is not None:
            if decoded:
                raise ctx.unsupported(
                    "YOLACT export with decoded boxes and a priors output: pass options={'boxes': 'loc'}"
                )
            ps = tuple(outs[priors_output].shape)
            rows = ps[-2] if len(ps) in (2, 3) else None
            if len(ps) not in (2, 3) or ps[-1] != 4 or (len(ps) == 3 and ps[0] not in (1, None)):
                raise ctx.unsupported(f"YOLACT priors {outs[priors_output].describe()} must be [N, 4] (cx, cy, w, h)")
            if n is not None and rows is not None and rows != n:
                raise ctx.unsupported(
                    f"YOLACT priors {outs[priors_output].describe()} have {rows} rows but the per-prior outputs "
                    f"have N={n}; they must be equal"
                )
            head = "yolact_priors"
        elif decoded:
            head = "yolact_boxes"
        else:
            head = "yolact_loc"
            host_priors, summary = self._host_priors(ctx, n)
            n = len(host_priors)

        top_k = ctx.options.get("top_k", TOP_K)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k must be a positive integer, got {top_k!r}")
        params = YolactLayout(
            boxes_output=roles[box_role],
            boxes_decoded=decoded,
            conf_output=roles["conf"],
            mask_output=roles["mask"],
            proto_output=roles["proto"],
            priors_output=priors_output,
            proto_nhwc=nhwc,
            num_priors=n,
            num_coeffs=int(k),
            priors=host_priors,
            priors_summary=summary,
            top_k=top_k,
        )
        origin = {
            "yolact_boxes": "boxes decoded in the graph (OpenVINO model zoo style)",
            "yolact_priors": "SSD offsets with the priors as an output",
            "yolact_loc": "SSD offsets, priors made by edgeseg",
        }[head]
        return Layout(
            "yolact",
            head,
            params,
            nc,
            f"YOLACT export, {origin}; Fast NMS by edgeseg",
            names=meta_names,
            preprocess=YOLACT_PREPROCESS,
            defaults=YOLACT_DEFAULTS,
            imgsz=(BASE_SIZE, BASE_SIZE),
            stride=1,  # any input side works (every stride-2 layer rounds up)
        )

    def _boxes_decoded(self, ctx: LoadContext, roles: dict[str, int], by_name: bool) -> bool:
        choice = ctx.options.get("boxes")
        if choice is not None:
            if choice not in ("decoded", "loc"):
                raise ValueError(f"boxes must be 'decoded' or 'loc', got {choice!r}")
            return choice == "decoded"
        if by_name:
            return "boxes" in roles
        if "priors" in roles:
            return False
        raise ctx.unsupported(
            "a YOLACT-like export whose 4-wide output's name says neither 'boxes' (decoded) nor 'loc' (SSD "
            "offsets); pass options={'boxes': 'decoded'} or options={'boxes': 'loc'} to edgeseg.load"
        )

    def _host_priors(self, ctx: LoadContext, n: int | None) -> tuple[np.ndarray, str]:
        h, w = ctx.input_size(1, (BASE_SIZE, BASE_SIZE))
        if h != w:
            raise ctx.unsupported(
                f"YOLACT loc/conf/mask/proto export with a {h}x{w} input: yolact's priors are defined for square "
                "inputs; export the priors as an output"
            )
        square_opt = ctx.options.get("square_anchors")
        if square_opt is not None and not isinstance(square_opt, bool):
            raise ValueError(f"square_anchors must be True or False, got {square_opt!r}")
        base = ctx.options.get("prior_scales", BASE_SCALES)
        if (
            not isinstance(base, (list, tuple))
            or len(base) != 5
            or not all(isinstance(s, (int, float)) and not isinstance(s, bool) and s > 0 for s in base)
        ):
            raise ValueError(f"prior_scales must be 5 positive numbers (one per level), got {base!r}")
        variant = ctx.options.get("priors")
        if variant is not None and variant not in PRIOR_VARIANTS:
            raise ValueError(f"priors must be one of {', '.join(PRIOR_VARIANTS)}, got {variant!r}")
        cells = sum(s * s for s in conv_sizes(h))
        counts = {v: cells * 3 * len(prior_scales(v, h, base)[0]) for v in PRIOR_VARIANTS}
        if variant is None:
            variant = next((v for v in PRIOR_VARIANTS if counts[v] == n), None)
        if variant is None or (n is not None and counts[variant] != n):
            what = ", ".join(f"{v} {c}" for v, c in counts.items())
            raise ctx.unsupported(
                f"the YOLACT outputs have N={n} priors, but the priors yolact makes for a {h}x{w} input are: {what} "
                f"(5 levels of {', '.join(map(str, conv_sizes(h)))} cells); export the priors as an output, or "
                "pass imgsz= for a dynamic input"
            )
        # yolact_base / im400 / im700 / resnet50 / darknet53 keep the square-anchor bug; YOLACT++ does not.
        square = (variant == "yolact") if square_opt is None else square_opt
        priors = make_priors(h, prior_scales(variant, h, base), square)
        summary = f"{variant}, {h}x{w} input, {'square' if square else 'aspect-ratio'} anchors, {len(priors)} priors"
        return priors, summary

    def make_head(self, spec: ModelSpec) -> Head:
        """The decoder for ``spec``."""
        return YolactHead(spec)


class YolactHead:
    """Decodes one image: candidates, Fast NMS and boxes by the core's ``decode_yolact``, masks by
    ``yolact_masks`` (box-cropped and bit-packed, only for survivors)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.layout: YolactLayout = spec.layout
        lay = self.layout
        self._quants = [o.quant for o in spec.outputs]
        self._conf_info = spec.outputs[lay.conf_output]
        self.core_layout = _core.YolactLayout(
            boxes=lay.boxes_output,
            boxes_decoded=lay.boxes_decoded,
            conf=lay.conf_output,
            coeffs=lay.mask_output,
            prototypes=lay.proto_output,
            priors_output=lay.priors_output,
            priors=lay.priors,
            prototypes_nhwc=lay.proto_nhwc,
            top_k=lay.top_k,
        )
        """The layout as the C++ API takes it (``edgeseg::YolactLayout``)."""

    def __call__(self, outputs: list[np.ndarray], index: int, lb: Letterbox, options: PostprocessOptions) -> Instances:
        priors = self.layout.priors_output
        # The priors output has no batch dimension to drop; the core reads it as float32 rows.
        image_outputs = [
            np.ascontiguousarray(o, np.float32) if i == priors else o[index] for i, o in enumerate(outputs)
        ]
        quants = [None if i == priors else q for i, q in enumerate(self._quants)]
        found = _core.postprocess_yolact(self.core_layout, image_outputs, quants, lb, options)
        return instances_of(found, lb)

    def max_class_score(self, outputs: list[np.ndarray], index: int) -> float:
        """Highest foreground probability over all priors of image ``index`` (a health signal)."""
        conf = outputs[self.layout.conf_output][index][:, 1:]
        return float(self._conf_info.dequantize(conf.max(keepdims=True)).max()) if conf.size else 0.0


FAMILY = YolactFamily()
