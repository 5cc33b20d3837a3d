"""YOLOv8/YOLO11-seg heads split for NPUs: Rockchip RKNN, Hailo, Qualcomm AI Hub, EdgeFirst; and YOLOv5-seg's
anchor-based head as Rockchip's rknn_model_zoo splits it.

NPU toolchains quantize every output with its own scale, so their exports stop before the head
concatenates boxes, scores and coefficients (see ``edgeseg.headsplit``). Which output is which is
read from the shapes: the prototypes are the one rank-4 tensor at the finest grid whose channels
match the coefficients; every other rank-4 output belongs to the grid its spatial size names
(stride = input / grid), and within a grid the roles follow from the channel counts (4 x bins box
logits, one channel per class, one channel per prototype, one channel of score sum). Where channel
counts alone cannot tell (a model with 32 or 64 classes), the output names decide, then the order
the exporter writes. The position of an output never matters otherwise.

YOLOv5-seg split (``yolov5_levels``, Rockchip rknn_model_zoo ``yolov5_seg``): two tensors per stride, the
predictions [B, A x (5 + classes), H, W] (per anchor x, y, w, h, objectness, classes, sigmoid in the graph) and
the coefficients [B, A x C, H, W]; A anchors per cell (A = coefficient channels / prototypes). The host decodes
the boxes as YOLOv5's Detect does, with the anchors of the ``anchors`` metadata entry (a literal list: per
stride [w, h, w, h, ...] as YOLOv5's yaml, or [[w, h], ...], or flat), else YOLOv5's default P3-P5 anchors.
Thresholds, NMS and masks follow YOLOv5's postprocess (the ``yolov5`` head of the ``yolo`` family).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .. import _core
from .._core import Letterbox
from ..errors import ModelError
from ..spec import MAX_CLASSES, Layout, LoadContext, ModelSpec, literal, names_from_metadata
from .base import Head, Instances, PostprocessOptions, instances_of
from .yolo import YOLOV5_DEFAULTS, probe_boxes_normalized

LAYOUTS = """YOLOv8 / YOLO11 segmentation heads split for NPUs (family "yolo_split"):
  yolo_levels:  per stride: box distribution logits [B, 4 x bins, H, W], class probabilities [B, classes, H, W],
                mask coefficients [B, C, H, W], optionally the score sum [B, 1, H, W] (Rockchip rknn_model_zoo
                yolov8_seg / yolo11_seg), or all of them NHWC (Hailo); prototypes [B, C, h, w] or NHWC; any order
  yolov5_levels: per stride: predictions [B, 3 x (5 + classes), H, W] (x, y, w, h, objectness, classes per
                anchor, sigmoid in the graph) and mask coefficients [B, 3 x C, H, W]; prototypes [B, C, h, w]
                (Rockchip rknn_model_zoo yolov5_seg); anchors from metadata ``anchors`` or YOLOv5's defaults
  yolo_scored:  boxes [B, N, 4] (x1 y1 x2 y2), scores [B, N], class ids [B, N], coefficients [B, N, C] and
                prototypes [B, h, w, C] (Qualcomm AI Hub yolov8_seg / yolov11_seg)
  yolo_two_way: boxes and class scores [B, 4 + classes, N], coefficients [B, C, N] (or both anchor-major)
                and prototypes (EdgeFirst)"""

# Name fragments that say a tensor's role, for models whose channel counts cannot tell.
_ROLE_HINTS = {
    "boxes": ("box", "bbox", "reg", "dfl", "loc"),
    "scores": ("cls", "class", "score", "conf"),
    "coeffs": ("seg", "mask", "coef"),
    "score_sum": ("sum",),
}
_ROLES = ("boxes", "scores", "score_sum", "coeffs")  # the order rknn_model_zoo writes within a stride
# YOLOv5's default P3-P5 anchors (w, h in input pixels), models/yolov5*-seg.yaml.
YOLOV5_ANCHORS = {
    8: ((10.0, 13.0), (16.0, 30.0), (33.0, 23.0)),
    16: ((30.0, 61.0), (62.0, 45.0), (59.0, 119.0)),
    32: ((116.0, 90.0), (156.0, 198.0), (373.0, 326.0)),
}


@dataclass(frozen=True)
class SplitLevel:
    """The outputs of one stride of a split head."""

    stride: int
    grid: tuple[int, int]
    boxes: int
    scores: int
    coeffs: int
    score_sum: int | None


@dataclass(frozen=True)
class SplitLayout:
    """Which output is which in a split head.

    Attributes:
        num_coeffs: mask coefficients per detection (= number of prototypes).
        prototypes_output, prototypes_nhwc: the prototypes and whether they are [B, h, w, C].
        levels: per stride, finest first (``yolo_levels``).
        levels_nhwc: the per-stride tensors are [B, H, W, C].
        bins: distance bins per box side (16 for YOLOv8/YOLO11; 1: plain distances).
        boxes_output, scores_output, classes_output, coeffs_output: the per-anchor tensors (``yolo_scored``;
            ``yolo_two_way`` uses boxes_output for [4 + classes, N] and coeffs_output).
        anchor_major: ``yolo_two_way`` tensors are [B, N, features].
        boxes_normalized: ``yolo_two_way`` boxes are fractions of the input size (EdgeFirst) rather than pixels.
        anchors: ``yolov5_levels``: per level, the (w, h) anchors in input pixels (``boxes`` and ``scores`` of
            each level are then both its predictions tensor).
    """

    num_coeffs: int
    prototypes_output: int
    prototypes_nhwc: bool
    levels: tuple[SplitLevel, ...] = ()
    levels_nhwc: bool = False
    bins: int = 16
    boxes_output: int = -1
    scores_output: int = -1
    classes_output: int = -1
    coeffs_output: int = -1
    anchor_major: bool = False
    boxes_normalized: bool = False
    anchors: tuple[tuple[tuple[float, float], ...], ...] = ()

    def describe(self) -> tuple[list[str], dict[int, str]]:
        """Lines for ``edgeseg info`` and each output's role."""
        roles = {self.prototypes_output: "prototypes"}
        lines = [f"mask coeffs: {self.num_coeffs}"]
        if self.anchors:
            lines.append(f"strides:     {', '.join(str(lv.stride) for lv in self.levels)} (anchor-based, objectness)")
            for lv, anchors in zip(self.levels, self.anchors):
                lines.append(f"anchors {lv.stride}:{' ' * max(1, 4 - len(str(lv.stride)))}{list(anchors)}")
                roles[lv.boxes] = f"stride {lv.stride} predictions ({len(anchors)} anchors x (5 + classes))"
                roles[lv.coeffs] = f"stride {lv.stride} mask coefficients ({len(anchors)} anchors)"
        elif self.levels:
            lines.append(f"strides:     {', '.join(str(lv.stride) for lv in self.levels)} ({self.bins} DFL bins)")
            for lv in self.levels:
                roles[lv.boxes] = f"stride {lv.stride} box distributions"
                roles[lv.scores] = f"stride {lv.stride} class scores"
                roles[lv.coeffs] = f"stride {lv.stride} mask coefficients"
                if lv.score_sum is not None:
                    roles[lv.score_sum] = f"stride {lv.stride} score sum"
        else:
            for i, what in (
                (self.boxes_output, "boxes" if self.classes_output >= 0 else "boxes and class scores"),
                (self.scores_output, "best-class scores"),
                (self.classes_output, "class ids"),
                (self.coeffs_output, "mask coefficients"),
            ):
                if i >= 0:
                    roles[i] = what
        return lines, roles


class _SplitHead:
    """Every split head, decoded by the core's whole postprocess (``_core.postprocess_yolo_split``, the call C++
    users make with the same ``SplitLayout``)."""

    _kind: str  # the core's SplitLayout kind

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.layout = lay = spec.layout
        self._quants = [o.quant for o in spec.outputs]
        self.core_layout = _core.SplitLayout(
            kind=self._kind,
            num_classes=spec.num_classes,
            levels=[self._level(i, lv) for i, lv in enumerate(lay.levels)],
            levels_nhwc=lay.levels_nhwc,
            prototypes=lay.prototypes_output,
            prototypes_nhwc=lay.prototypes_nhwc,
            boxes=lay.boxes_output,  # -1: none, as in the core
            scores=lay.scores_output,
            classes=lay.classes_output,
            coeffs=lay.coeffs_output,
            anchor_major=lay.anchor_major,
            boxes_normalized=lay.boxes_normalized,
        )
        """The layout as the C++ API takes it (``edgeseg::SplitLayout``)."""

    def _level(self, i: int, lv: SplitLevel) -> dict:
        """Level ``i`` as ``_core.SplitLayout`` takes it."""
        level = {"boxes": lv.boxes, "scores": lv.scores, "coeffs": lv.coeffs, "score_sum": lv.score_sum}
        return {**level, "grid": lv.grid, "stride": float(lv.stride)}

    def __call__(self, outputs: list[np.ndarray], index: int, lb: Letterbox, options: PostprocessOptions) -> Instances:
        found = _core.postprocess_yolo_split(self.core_layout, [o[index] for o in outputs], self._quants, lb, options)
        return instances_of(found, lb)


class _PerStrideHead(_SplitHead):
    """Heads with tensors per stride."""

    def _view(self, outputs: list[np.ndarray], i: int, index: int) -> np.ndarray:
        """Output ``i`` of image ``index`` as a channels x cells view (no copy for contiguous outputs)."""
        t = outputs[i][index]
        if self.layout.levels_nhwc:
            return t.reshape(-1, t.shape[-1]).T
        return t.reshape(t.shape[0], -1)


class LevelsHead(_PerStrideHead):
    """Per-stride tensors (RKNN, Hailo): decoded in each tensor's own dtype (``decode_yolo_split`` in the core)."""

    _kind = "dfl"

    def max_class_score(self, outputs: list[np.ndarray], index: int) -> float:
        """Highest class score over every stride of image ``index`` (a health signal)."""
        best = [
            self.spec.outputs[lv.scores].dequantize(outputs[lv.scores][index].max(keepdims=True)).max()
            for lv in self.layout.levels
        ]
        return float(max(best))


class Yolov5LevelsHead(_PerStrideHead):
    """YOLOv5-seg split per stride (Rockchip): decoded in each tensor's dtype (``decode_yolov5_split`` in the core)."""

    _kind = "anchors"

    def _level(self, i: int, lv: SplitLevel) -> dict:
        return {**super()._level(i, lv), "anchors": self.layout.anchors[i]}

    def max_class_score(self, outputs: list[np.ndarray], index: int) -> float:
        """Highest objectness x class probability over every anchor of image ``index`` (a health signal)."""
        nc, best = self.spec.num_classes, 0.0
        for lv, anchors in zip(self.layout.levels, self.layout.anchors):
            info = self.spec.outputs[lv.boxes]
            pred = self._view(outputs, lv.boxes, index).reshape(len(anchors), 5 + nc, -1)
            obj = info.dequantize(pred[:, 4])
            cls = info.dequantize(pred[:, 5:].max(axis=1))
            if obj.size:
                best = max(best, float((obj * cls).max()))
        return best


class ScoredHead(_SplitHead):
    """Boxes, best-class scores and class ids per anchor (Qualcomm AI Hub)."""

    _kind = "scored"

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        i = self.layout.classes_output
        if self._quants[i] is None and spec.outputs[i].dtype in (np.int8, np.uint8):
            self._quants[i] = (1.0, 0)  # 8-bit class ids are the ids themselves

    def max_class_score(self, outputs: list[np.ndarray], index: int) -> float:
        """Highest score of image ``index`` (a health signal)."""
        scores = outputs[self.layout.scores_output][index]
        return float(self.spec.outputs[self.layout.scores_output].dequantize(scores.max(keepdims=True)).max())


class TwoWayHead(_SplitHead):
    """Boxes and class scores in one tensor, coefficients in another (EdgeFirst)."""

    _kind = "two_way"

    def max_class_score(self, outputs: list[np.ndarray], index: int) -> float:
        """Highest class score of image ``index`` (a health signal)."""
        pred = outputs[self.layout.boxes_output][index]
        scores = pred[:, 4:] if self.layout.anchor_major else pred[4:]
        return float(self.spec.outputs[self.layout.boxes_output].dequantize(scores.max(keepdims=True)).max())


class YoloSplitFamily:
    """Detects split YOLO-seg heads (NPU exports) and makes their decoders."""

    name = "yolo_split"
    layouts = LAYOUTS
    options = ()

    def detect(self, ctx: LoadContext) -> Layout | None:
        """A ``yolo_levels``, ``yolo_scored`` or ``yolo_two_way`` layout, or None."""
        outs = ctx.outputs
        if len(outs) < 3:
            return None
        meta_names = names_from_metadata(ctx.metadata)
        known_nc = len(meta_names) if meta_names else (len(ctx.names) if ctx.names else None)
        ranks = [len(o.shape) for o in outs]
        if all(r == 4 for r in ranks) and len(outs) >= 4:
            return self._levels(ctx, known_nc, meta_names)
        if ranks.count(4) == 1 and len(outs) == 5 and ranks.count(2) == 2:
            return self._scored(ctx, known_nc, meta_names)
        if ranks.count(4) == 1 and len(outs) == 3 and ranks.count(3) == 2:
            return self._two_way(ctx, known_nc, meta_names)
        return None

    def make_head(self, spec: ModelSpec) -> Head:
        """The decoder for ``spec``."""
        heads = {
            "yolo_levels": LevelsHead,
            "yolov5_levels": Yolov5LevelsHead,
            "yolo_scored": ScoredHead,
            "yolo_two_way": TwoWayHead,
        }
        return heads[spec.head](spec)

    # -- yolo_levels ---------------------------------------------------------------------------------

    def _levels(self, ctx: LoadContext, known_nc: int | None, names: tuple[str, ...] | None) -> Layout | None:
        outs = ctx.outputs
        in_h, in_w = ctx.input_hw
        if in_h is None or in_w is None or any(d is None for o in outs for d in o.shape[1:]):
            return None  # dynamic grids: nothing to match strides by (NPU exports are fixed-size)

        def grid_of(h: int, w: int) -> int | None:
            """The stride a grid of h x w cells implies, or None."""
            if h < 1 or w < 1 or in_h % h or in_w % w or in_h // h != in_w // w:
                return None
            return in_h // h

        # Decide NCHW / NHWC once for the model, from the tensors only one reading fits.
        votes = {"NCHW": 0, "NHWC": 0}
        for o in outs:
            _, a, b, c = o.shape
            nchw, nhwc = grid_of(b, c) is not None, grid_of(a, b) is not None
            if nchw != nhwc:
                votes["NCHW" if nchw else "NHWC"] += 1
        if votes["NCHW"] and votes["NHWC"]:
            raise ctx.unsupported("some outputs are NCHW and others NHWC; a split head has one layout")
        if not (votes["NCHW"] or votes["NHWC"]):
            return None
        nhwc = votes["NHWC"] > 0
        ctx.check_output_dtypes(range(len(outs)))

        def dims(i: int) -> tuple[int, int, int]:  # channels, h, w
            _, a, b, c = outs[i].shape
            return (c, a, b) if nhwc else (a, b, c)

        by_stride: dict[int, list[int]] = {}
        for i in range(len(outs)):
            s = grid_of(*dims(i)[1:])
            if s is None:
                return None  # grids that are not the input over a stride: another family's (SOLOv2's S x S)
            by_stride.setdefault(s, []).append(i)
        finest = min(by_stride)
        protos = [i for i in by_stride[finest]]
        if len(protos) != 1 or len(by_stride) < 2:
            return None  # not prototypes at a grid of their own
        proto_i = protos[0]
        nm = dims(proto_i)[0]
        del by_stride[finest]
        strides = sorted(by_stride)
        sizes = {len(by_stride[s]) for s in strides}
        if sizes == {2}:
            return self._v5_levels(ctx, by_stride, dims, nm, proto_i, nhwc, known_nc, names)
        if not sizes <= {3, 4}:
            return None  # not 3 or 4 tensors a stride (YOLOv8) nor 2 (YOLOv5)
        fitted = [self._roles(ctx, by_stride[s], dims, nm, known_nc, s) for s in strides]
        if all(isinstance(r, ModelError) for r in fitted):
            return None  # no stride reads as a split YOLO head: another family's (SOLOv2's, RTMDet's)
        roles_per_level = [r for r in fitted if not isinstance(r, ModelError)]
        if len(roles_per_level) != len(fitted):
            raise next(r for r in fitted if isinstance(r, ModelError))  # almost right: say which stride
        ncs = {dims(r["scores"])[0] for r in roles_per_level}
        bins = {dims(r["boxes"])[0] // 4 for r in roles_per_level}
        if len(ncs) != 1 or len(bins) != 1:
            raise ctx.unsupported("the strides disagree on the number of classes or box bins")
        nc = ncs.pop()
        if nc > MAX_CLASSES:
            raise ctx.unsupported(f"the class scores imply {nc} classes, more than {MAX_CLASSES}")
        levels = tuple(
            SplitLevel(s, dims(r["boxes"])[1:], r["boxes"], r["scores"], r["coeffs"], r.get("score_sum"))
            for s, r in zip(strides, roles_per_level)
        )
        params = SplitLayout(nm, proto_i, nhwc, levels, nhwc, bins.pop())
        vendor = "Hailo-style NHWC" if nhwc else ("Rockchip RKNN" if levels[0].score_sum is not None else "NCHW")
        summary = f"{vendor} split head, {len(levels)} strides, decoded by edgeseg"
        return Layout("yolo_split", "yolo_levels", params, nc, summary, names=names, stride=max(strides))

    def _v5_levels(
        self, ctx: LoadContext, by_stride: dict[int, list[int]], dims, nm: int, proto_i: int, nhwc: bool,
        known_nc: int | None, names: tuple[str, ...] | None,
    ) -> Layout | None:  # fmt: skip
        """``yolov5_levels``: per stride a predictions tensor (A x (5 + classes) channels) and a coefficients one
        (A x ``nm`` channels)."""
        outs = ctx.outputs
        strides = sorted(by_stride)
        levels, ncs, nas, errors = [], set(), set(), []
        for s in strides:
            group = by_stride[s]

            def fits(pred_i: int, coef_i: int) -> bool:
                cp, cc = dims(pred_i)[0], dims(coef_i)[0]
                if cc % nm or cc < nm or cp % (cc // nm):
                    return False
                nc = cp // (cc // nm) - 5
                return nc >= 1 and (known_nc is None or nc == known_nc)

            options = [(p, c) for p, c in (tuple(group), tuple(reversed(group))) if fits(p, c)]
            if not options:
                found = ", ".join(f"{outs[i].name} ({dims(i)[0]} channels)" for i in group)
                errors.append(
                    ctx.unsupported(
                        f"stride {s}: expected YOLOv5 predictions (anchors x (5 + classes) channels) and mask "
                        f"coefficients (anchors x {nm} channels), found {found}"
                    )
                )
                continue
            if len(options) > 1:  # the names decide, then rknn_model_zoo's order (predictions first)
                hinted = [o for o in options if any(h in outs[o[1]].name.lower() for h in _ROLE_HINTS["coeffs"])]
                options = hinted if len(hinted) == 1 else options
            pred_i, coef_i = options[0]
            na = dims(coef_i)[0] // nm
            nas.add(na)
            ncs.add(dims(pred_i)[0] // na - 5)
            levels.append(SplitLevel(s, dims(pred_i)[1:], pred_i, pred_i, coef_i, None))
        if errors and not levels:
            return None  # no stride reads as YOLOv5 predictions + coefficients: another family's (SOLOv2's)
        if errors:
            raise errors[0]  # almost right: say which stride
        if len(ncs) != 1 or len(nas) != 1:
            raise ctx.unsupported("the strides disagree on the number of classes or anchors per cell")
        nc, na = ncs.pop(), nas.pop()
        if nc > MAX_CLASSES:
            raise ctx.unsupported(f"the predictions imply {nc} classes, more than {MAX_CLASSES}")
        ctx.check_output_dtypes([lv.boxes for lv in levels] + [lv.coeffs for lv in levels] + [proto_i])
        anchors = self._anchors(ctx, strides, na)
        params = SplitLayout(nm, proto_i, nhwc, tuple(levels), nhwc, anchors=anchors)
        source = "metadata" if "anchors" in ctx.metadata else "YOLOv5's defaults"
        summary = (
            f"Rockchip RKNN YOLOv5-seg split head, {len(levels)} strides, anchors from {source}, decoded by edgeseg"
        )
        return Layout(
            "yolo_split", "yolov5_levels", params, nc, summary, names=names, stride=max(strides),
            defaults=YOLOV5_DEFAULTS,
        )  # fmt: skip

    def _anchors(self, ctx: LoadContext, strides: list[int], na: int) -> tuple[tuple[tuple[float, float], ...], ...]:
        """Per stride, ``na`` (w, h) anchors in input pixels: the ``anchors`` metadata entry, else YOLOv5's
        defaults."""
        text = ctx.metadata.get("anchors")
        if text is None:
            if na != 3 or any(s not in YOLOV5_ANCHORS for s in strides):
                raise ctx.unsupported(
                    f"no anchors metadata, and YOLOv5's default anchors are for 3 per cell at strides 8, 16, 32 "
                    f"(found {na} per cell at strides {', '.join(map(str, strides))}); add metadata 'anchors'"
                )
            return tuple(YOLOV5_ANCHORS[s] for s in strides)
        value = literal(text)
        try:
            arr = np.asarray(value, np.float64).reshape(len(strides), na, 2)
        except (TypeError, ValueError):
            raise ctx.unsupported(
                f"metadata 'anchors' {text[:80]!r} is not {len(strides)} strides x {na} (w, h) anchors"
            ) from None
        if not (np.isfinite(arr).all() and (arr > 0).all()):
            raise ctx.unsupported(f"metadata 'anchors' {text[:80]!r} has anchors that are not positive and finite")
        return tuple(tuple((float(w), float(h)) for w, h in level) for level in arr)

    def _roles(
        self, ctx: LoadContext, group: list[int], dims, nm: int, known_nc: int | None, stride: int
    ) -> dict[str, int] | ModelError:
        """Which output of one stride is which: every assignment the channel counts allow, then the names,
        then the exporter's order. An error (returned: the caller decides whether this is the family) when
        the channel counts fit no assignment."""
        outs = ctx.outputs
        roles = _ROLES if len(group) == 4 else ("boxes", "scores", "coeffs")

        def fits(role: str, ch: int) -> bool:
            if role == "coeffs":
                return ch == nm
            if role == "score_sum":
                return ch == 1
            if role == "boxes":
                return ch >= 4 and ch % 4 == 0
            return ch >= 1 and (known_nc is None or ch == known_nc)

        options = [
            dict(zip(perm, group))
            for perm in itertools.permutations(roles)
            if all(fits(role, dims(i)[0]) for role, i in zip(perm, group))
        ]
        if not options:
            found = ", ".join(f"{outs[i].name} ({dims(i)[0]} channels)" for i in group)
            return ctx.unsupported(
                f"stride {stride}: cannot tell boxes (4 x bins channels), scores, coefficients ({nm} channels) "
                f"apart in {found}"
            )
        if len(options) > 1:
            hinted = [
                o for o in options if all(any(h in outs[i].name.lower() for h in _ROLE_HINTS[r]) for r, i in o.items())
            ]
            if len(hinted) == 1:
                return hinted[0]
            ordered = dict(zip(roles, group))  # the exporter's order within a stride
            if ordered in options:
                return ordered
            found = ", ".join(outs[i].name for i in group)
            raise ctx.unsupported(
                f"stride {stride}: the channel counts of {found} fit several roles; name them "
                "box/cls/seg (or sum) or write them in the exporter's order"
            )
        return options[0]

    # -- yolo_scored and yolo_two_way ----------------------------------------------------------------

    def _prototypes(self, ctx: LoadContext, i: int, nm_candidates: set[int]) -> tuple[int, bool]:
        """(channels, NHWC?) of the prototypes output ``i``."""
        _, a, _, c = ctx.outputs[i].shape
        if c in nm_candidates and a not in nm_candidates:
            return c, True
        if a in nm_candidates and c not in nm_candidates:
            return a, False
        return (c, True) if ctx.input_layout == "NHWC" else (a, False)

    def _scored(self, ctx: LoadContext, known_nc: int | None, names: tuple[str, ...] | None) -> Layout | None:
        outs = ctx.outputs
        rank2 = [i for i, o in enumerate(outs) if len(o.shape) == 2]
        rank3 = [i for i, o in enumerate(outs) if len(o.shape) == 3]
        proto_i = next(i for i, o in enumerate(outs) if len(o.shape) == 4)
        ints = [i for i in rank2 if np.dtype(outs[i].dtype).kind in "iu" and outs[i].scale is None]
        if len(ints) != 1:
            return None
        classes_i = ints[0]
        scores_i = next(i for i in rank2 if i != classes_i)
        box_cands = [i for i in rank3 if outs[i].shape[2] == 4]
        if not box_cands:
            return None
        boxes_i = (
            box_cands[0]
            if len(box_cands) == 1
            else next((i for i in box_cands if "box" in outs[i].name.lower()), box_cands[0])
        )
        coeffs_i = next(i for i in rank3 if i != boxes_i)
        nm = outs[coeffs_i].shape[2]
        proto_nm, proto_nhwc = self._prototypes(ctx, proto_i, {nm})
        if proto_nm != nm:
            raise ctx.unsupported(f"the coefficients ({nm} per anchor) do not match the {proto_nm} prototypes")
        n = {outs[i].shape[1] for i in (boxes_i, scores_i, classes_i, coeffs_i)}
        if len(n) != 1:
            raise ctx.unsupported("boxes, scores, class ids and coefficients disagree on the number of anchors")
        ctx.check_output_dtypes([boxes_i, scores_i, coeffs_i, proto_i])
        params = SplitLayout(
            nm,
            proto_i,
            proto_nhwc,
            boxes_output=boxes_i,
            scores_output=scores_i,
            classes_output=classes_i,
            coeffs_output=coeffs_i,
        )
        summary = "Qualcomm AI Hub style: boxes, best-class scores and class ids per anchor, NMS by edgeseg"
        return Layout("yolo_split", "yolo_scored", params, known_nc, summary, names=names)

    def _two_way(self, ctx: LoadContext, known_nc: int | None, names: tuple[str, ...] | None) -> Layout | None:
        outs = ctx.outputs
        proto_i = next(i for i, o in enumerate(outs) if len(o.shape) == 4)
        a_i, b_i = (i for i, o in enumerate(outs) if len(o.shape) == 3)
        _, a1, a2 = outs[a_i].shape
        _, b1, b2 = outs[b_i].shape
        if None in (a1, a2, b1, b2):
            return None
        for anchor_major, (fa, fb, na, nb) in ((False, (a1, b1, a2, b2)), (True, (a2, b2, a1, b1))):
            if na != nb or na <= max(fa, fb):
                continue
            # the detections tensor has 4 + classes features, the coefficients as many as prototypes
            for det_i, coef_i, fdet, fcoef in ((a_i, b_i, fa, fb), (b_i, a_i, fb, fa)):
                nc = fdet - 4
                proto_nm, proto_nhwc = self._prototypes(ctx, proto_i, {fcoef})
                if nc >= 1 and proto_nm == fcoef and (known_nc is None or nc == known_nc):
                    ctx.check_output_dtypes([det_i, coef_i, proto_i])
                    size = ctx.input_size(32)
                    normalized = probe_boxes_normalized(
                        ctx.runtime, ctx.input, ctx.input_layout, size, det_i, anchor_major
                    )
                    params = SplitLayout(
                        fcoef, proto_i, proto_nhwc, boxes_output=det_i, coeffs_output=coef_i, anchor_major=anchor_major,
                        boxes_normalized=normalized,
                    )  # fmt: skip
                    summary = "EdgeFirst two-way split: boxes + scores, coefficients, NMS by edgeseg"
                    return Layout("yolo_split", "yolo_two_way", params, nc, summary, names=names)
        return None


FAMILY = YoloSplitFamily()
