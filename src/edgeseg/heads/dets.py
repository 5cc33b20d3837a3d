"""End-to-end ``dets / labels / masks`` exports: detection and NMS in the graph, masks per detection.

Two exporters' layouts, each with box-relative (Mask R-CNN) or full-frame masks:

- MMDeploy end-to-end (``tools/deploy.py``, mmdeploy 1.x): ``dets [B, K, 5]`` (x1, y1, x2, y2, score in
  input pixels, sorted by score as the graph's TopK leaves them), ``labels [B, K]`` (integer class
  indices) and ``masks [B, K, M, M]`` (Mask R-CNN's sigmoid probabilities, ``export_postprocess_mask``
  off) or ``[B, K, H, W]`` (probabilities at the input size: RTMDet-Ins, SOLOv2). Rows of score 0 are
  padding. A work directory brings ``pipeline.json`` (see ``edgeseg.mmdeploy``).
- torchvision Mask R-CNN exports (``torch.onnx.export`` of ``maskrcnn_resnet50_fpn``): ``boxes [N, 4]``,
  ``labels [N]``, ``scores [N]`` and ``masks [N, 1, M, M]`` (the RoI head's probabilities) or
  ``[N, 1, H, W]`` (already pasted by the model's transform); one image per run.

Which convention pastes RoI masks is read from the files (rule, in order): the ``masks`` load option;
the output names (``dets`` is MMDeploy's, ``boxes`` + ``scores`` torchvision's); an MMDeploy
``pipeline.json`` whose postprocess params hold ``rcnn`` says RoI masks, one without says full frame;
else masks whose height and width equal the input's are full frame, smaller square ones RoI masks.
Outputs are filtered (score above ``conf``, allowed classes, the first ``max_det``) in the
exporter's order, never re-sorted: equal scores stay in the order the graph's TopK gave them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import _core
from .._core import Letterbox
from ..errors import ModelError
from ..mmdeploy import MMDeployInfo, mmdeploy_info
from ..runtimes.base import TensorInfo
from ..spec import Defaults, Layout, LoadContext, ModelSpec, Preprocess
from .base import Head, Instances, PostprocessOptions, instances_of

LAYOUTS = """End-to-end dets / labels / masks exports (family "dets"):
  dets_mmdeploy_roi:       MMDeploy end2end Mask R-CNN: dets [B, K, 5] (x1, y1, x2, y2, score; input pixels),
                           labels [B, K], masks [B, K, M, M] box-relative probabilities (pasted as MMDetection)
  dets_mmdeploy_frame:     MMDeploy end2end RTMDet-Ins / SOLOv2: dets, labels, masks [B, K, H, W] at input size
  dets_torchvision_roi:    torchvision Mask R-CNN: boxes [N, 4], labels [N], scores [N], masks [N, 1, M, M]
  dets_torchvision_frame:  torchvision Mask R-CNN with pasted masks [N, 1, H, W]
  an MMDeploy work directory (end2end.onnx beside pipeline.json) supplies preprocessing, thresholds, names"""

# MMDetection's defaults (configs/_base_/models/mask-rcnn_r50_fpn.py test_cfg.rcnn: score_thr 0.05,
# nms iou 0.5, max_per_img 100, mask_thr_binary 0.5) and data preprocessor (ImageNet mean/std in RGB,
# bgr_to_rgb, pad_size_divisor 32 with zeros after normalization), for files without pipeline.json.
MMDET_DEFAULTS = Defaults(conf=0.05, iou=0.5, max_det=100, nms="box", mask_threshold=0.5)
MMDET_PREPROCESS = Preprocess(
    resize="keep_ratio", pad_value=None, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375), rgb=True
)
# torchvision's maskrcnn_resnet50_fpn: box_score_thresh 0.05, box_nms_thresh 0.5,
# box_detections_per_img 100; masks thresholded at 0.5. Its transform normalizes inside the graph
# (input RGB in 0..1) and pads bottom-right with zeros.
TORCHVISION_DEFAULTS = Defaults(conf=0.05, iou=0.5, max_det=100, nms="box", mask_threshold=0.5)
TORCHVISION_PREPROCESS = Preprocess(
    resize="keep_ratio", pad_value=0.0, mean=(0.0, 0.0, 0.0), std=(255.0,) * 3, rgb=True
)

MASK_KINDS = ("roi", "frame")


@dataclass(frozen=True)
class DetsLayout:
    """Which output is which in an end-to-end dets / labels / masks export.

    Attributes:
        exporter: ``"mmdeploy"`` (batched ``dets`` with the score as a fifth column) or ``"torchvision"``
            (unbatched ``boxes`` and ``scores``, masks with one channel).
        boxes_output: index of ``dets`` (MMDeploy) or ``boxes`` (torchvision).
        scores_output: index of ``scores`` (torchvision), None where the score is ``dets``' fifth column.
        labels_output: index of ``labels``.
        masks_output: index of ``masks``.
        masks_kind: ``"roi"`` (M x M per box, pasted) or ``"frame"`` (at the input size, cropped).
        convention: how RoI masks are pasted: ``"mmdet"`` or ``"torchvision"`` (see ``_core.paste_roi_masks``).
        inclusive: a probability equal to the threshold is in the mask (MMDetection ``>=``; torchvision ``>``).
    """

    exporter: str
    boxes_output: int
    scores_output: int | None
    labels_output: int
    masks_output: int
    masks_kind: str
    convention: str
    inclusive: bool

    def describe(self) -> tuple[list[str], dict[int, str]]:
        """Lines for ``edgeseg info`` and each output's role."""
        paste = (
            f"box-relative, pasted as {'MMDetection' if self.convention == 'mmdet' else 'torchvision'} does"
            if self.masks_kind == "roi"
            else "full frame at the input size, cropped to each box"
        )
        lines = [f"masks:       {paste}, set at {'>=' if self.inclusive else '>'} the mask threshold"]
        roles = {self.boxes_output: "dets" if self.scores_output is None else "boxes", self.labels_output: "labels"}
        roles[self.masks_output] = "masks"
        if self.scores_output is not None:
            roles[self.scores_output] = "scores"
        return lines, roles


class DetsHead:
    """Decodes one image of an end-to-end export in the core (``_core.postprocess_dets``, the call C++ users make):
    filter rows, unletterbox boxes, paste or crop masks."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.layout: DetsLayout = spec.layout
        lay = self.layout
        self.core_layout = _core.DetsLayout(
            boxes=lay.boxes_output,
            scores=lay.scores_output,
            labels=lay.labels_output,
            masks=lay.masks_output,
            roi_masks=lay.masks_kind == "roi",
            convention=lay.convention,
            inclusive=lay.inclusive,
            num_classes=spec.num_classes,
        )
        """The layout as the C++ API takes it (``edgeseg::DetsLayout``)."""

    def _rows(self, outputs: list[np.ndarray], index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(boxes [K, 4], scores [K], labels [K], masks [K, h, w]) of image ``index``, as views."""
        lay = self.layout
        if lay.scores_output is None:
            dets = outputs[lay.boxes_output][index]
            return dets[:, :4], dets[:, 4], outputs[lay.labels_output][index], outputs[lay.masks_output][index]
        if index != 0:
            raise ValueError(f"a torchvision-style export holds one image per run, got image index {index}")
        masks = outputs[lay.masks_output]
        return outputs[lay.boxes_output], outputs[lay.scores_output], outputs[lay.labels_output], masks[:, 0]

    def __call__(self, outputs: list[np.ndarray], index: int, lb: Letterbox, options: PostprocessOptions) -> Instances:
        lay = self.layout
        if lay.scores_output is None:  # MMDeploy: batched
            image_outputs = [o[index] for o in outputs]
        elif index != 0:
            raise ValueError(f"a torchvision-style export holds one image per run, got image index {index}")
        else:  # torchvision: one image per run, no batch dimension
            image_outputs = list(outputs)
        try:
            found = _core.postprocess_dets(self.core_layout, image_outputs, [None] * len(outputs), lb, options)
        except ValueError as e:  # options were checked by Model.options: the outputs are what does not fit
            names = ", ".join(
                self.spec.outputs[i].name for i in (lay.boxes_output, lay.labels_output, lay.masks_output)
            )
            raise ModelError(f"{self.spec.path}: {e} (outputs {names})") from e
        return instances_of(found, lb)

    def max_class_score(self, outputs: list[np.ndarray], index: int) -> float:
        """Highest score among the graph's detections of image ``index`` (a health signal)."""
        scores = self._rows(outputs, index)[1]
        return float(scores.max()) if scores.size else 0.0


def _named(outputs: list[TensorInfo], *names: str) -> int | None:
    for i, o in enumerate(outputs):
        if o.name.lower() in names:
            return i
    return None


def _roles_by_shape(outputs: list[TensorInfo]) -> tuple[str, dict[str, int]] | None:
    """Roles of outputs that carry no telling names, from ranks and dtypes alone (exact patterns only)."""
    ranks = sorted(len(o.shape) for o in outputs)
    by_rank: dict[int, list[int]] = {}
    for i, o in enumerate(outputs):
        by_rank.setdefault(len(o.shape), []).append(i)
    if ranks == [2, 3, 4] and outputs[by_rank[3][0]].shape[2] == 5:
        return "mmdeploy", {"dets": by_rank[3][0], "labels": by_rank[2][0], "masks": by_rank[4][0]}
    if ranks == [1, 1, 2, 4] and outputs[by_rank[2][0]].shape[1] == 4:
        a, b = by_rank[1]
        ints = [i for i in (a, b) if np.issubdtype(outputs[i].dtype, np.integer)]
        if len(ints) == 1:
            scores = b if ints[0] == a else a
            return "torchvision", {"boxes": by_rank[2][0], "labels": ints[0], "scores": scores, "masks": by_rank[4][0]}
    return None


class DetsFamily:
    """Detects end-to-end dets / labels / masks exports (MMDeploy, torchvision) and makes their head."""

    name = "dets"
    layouts = LAYOUTS
    options = ("masks", "paste")

    def detect(self, ctx: LoadContext) -> Layout | None:
        """A ``dets_*`` layout, None for models without ``dets`` (or ``boxes`` + ``scores``) outputs, or a
        ModelError for ones that have them but whose other outputs are missing or do not fit."""
        outs = ctx.outputs
        found = self._roles(ctx, outs)
        if found is None:
            return None
        exporter, roles = found
        info = mmdeploy_info(ctx.sidecars, ctx.path) if exporter == "mmdeploy" else None
        kind = self._masks_kind(ctx, exporter, roles, info)
        convention = str(ctx.options.get("paste", "mmdet" if exporter == "mmdeploy" else "torchvision"))
        if convention not in ("mmdet", "torchvision"):
            raise ValueError(f"paste must be 'mmdet' or 'torchvision', got {convention!r}")
        params = DetsLayout(
            exporter=exporter,
            boxes_output=roles["dets"] if exporter == "mmdeploy" else roles["boxes"],
            scores_output=roles.get("scores"),
            labels_output=roles["labels"],
            masks_output=roles["masks"],
            masks_kind=kind,
            convention=convention,
            inclusive=convention == "mmdet",
        )
        head = f"dets_{exporter}_{kind}"
        if exporter == "torchvision":
            summary = "torchvision Mask R-CNN export, NMS in the graph"
            return Layout("dets", head, params, None, summary, None, TORCHVISION_PREPROCESS, TORCHVISION_DEFAULTS)
        return self._mmdeploy_layout(head, params, info)

    def make_head(self, spec: ModelSpec) -> Head:
        """The decoder for ``spec``."""
        return DetsHead(spec)

    @staticmethod
    def _roles(ctx: LoadContext, outs: list[TensorInfo]) -> tuple[str, dict[str, int]] | None:
        dets, boxes, scores = _named(outs, "dets"), _named(outs, "boxes"), _named(outs, "scores")
        labels, masks = _named(outs, "labels", "label", "classes"), _named(outs, "masks", "mask")
        if boxes is not None and dets is None and len(outs[boxes].shape) == 3 and outs[boxes].shape[2] == 5:
            dets = boxes  # OpenVINO training extensions name MMDeploy's dets "boxes"
        if dets is not None:
            exporter, roles = "mmdeploy", {"dets": dets}
        elif boxes is not None and scores is not None and len(outs[boxes].shape) == 2:
            exporter, roles = "torchvision", {"boxes": boxes, "scores": scores}
        else:
            found = _roles_by_shape(outs)
            if found is not None:
                DetsFamily._check_shapes(ctx, *found)
            return found
        needed = {"labels": labels, "masks": masks}
        missing = [k for k, v in needed.items() if v is None]
        if missing:
            what = {"labels": "labels (integer class of each detection)", "masks": "masks (one mask per detection)"}
            present = [*roles.values(), *(v for v in needed.values() if v is not None)]
            have = ", ".join(f"{outs[i].name} {[d if d is not None else '?' for d in outs[i].shape]}" for i in present)
            raise ctx.unsupported(
                f"the outputs look like an end-to-end {exporter} export ({have}) but there is no "
                + " and no ".join(what[k] for k in missing)
                + " output"
            )
        roles.update({"labels": labels, "masks": masks})  # type: ignore[dict-item]
        DetsFamily._check_shapes(ctx, exporter, roles)
        return exporter, roles

    @staticmethod
    def _check_shapes(ctx: LoadContext, exporter: str, roles: dict[str, int]) -> None:
        outs = ctx.outputs

        def shape(role: str) -> list[int | None]:
            return list(outs[roles[role]].shape)

        def name(role: str) -> str:
            return f"{outs[roles[role]].name} {[d if d is not None else '?' for d in shape(role)]}"

        if exporter == "mmdeploy":
            expect = {"dets": (3, "[B, K, 5]"), "labels": (2, "[B, K]"), "masks": (4, "[B, K, h, w]")}
            count_axis = 1
        else:
            expect = {"boxes": (2, "[N, 4]"), "scores": (1, "[N]"), "labels": (1, "[N]"), "masks": (4, "[N, 1, h, w]")}
            count_axis = 0
        for role, (rank, text) in expect.items():
            if len(shape(role)) != rank:
                raise ctx.unsupported(f"output {name(role)} should be {role} {text}")
        box = shape("dets" if exporter == "mmdeploy" else "boxes")
        cols = 5 if exporter == "mmdeploy" else 4
        if box[-1] not in (None, cols):
            raise ctx.unsupported(
                f"output {name('dets' if exporter == 'mmdeploy' else 'boxes')} has {box[-1]} columns; expected {cols} "
                + ("(x1, y1, x2, y2, score)" if cols == 5 else "(x1, y1, x2, y2)")
            )
        if exporter == "torchvision" and shape("masks")[1] not in (None, 1):
            raise ctx.unsupported(f"output {name('masks')} should have one channel: masks [N, 1, h, w]")
        counts = {role: shape(role)[count_axis] for role in expect}
        fixed = {role: c for role, c in counts.items() if c is not None}
        if len(set(fixed.values())) > 1:
            listed = ", ".join(f"{name(r)}" for r in fixed)
            raise ctx.unsupported(
                f"the outputs hold different numbers of detections ({listed}); dets, labels and masks must "
                "have one row each per detection"
            )
        if exporter == "mmdeploy":
            batches = {shape(r)[0] for r in expect if shape(r)[0] is not None}
            if len(batches) > 1:
                raise ctx.unsupported("the outputs' batch dimensions differ: " + ", ".join(name(r) for r in expect))
        box_out = outs[roles["dets" if exporter == "mmdeploy" else "boxes"]]
        if box_out.dtype != np.float32 or outs[roles["masks"]].dtype not in (np.float32, np.uint8, np.bool_):
            raise ctx.unsupported(
                f"expected float32 {box_out.name} and float32 (or uint8 / bool) masks "
                f"{outs[roles['masks']].name}; quantized end-to-end outputs are not supported"
            )
        if not np.issubdtype(outs[roles["labels"]].dtype, np.integer) and outs[roles["labels"]].dtype != np.float32:
            raise ctx.unsupported(f"output {name('labels')} should hold integer class indices")

    @staticmethod
    def _masks_kind(ctx: LoadContext, exporter: str, roles: dict[str, int], info: MMDeployInfo | None) -> str:
        m = ctx.outputs[roles["masks"]]
        h, w = m.shape[2], m.shape[3]
        in_h, in_w = ctx.input_hw
        forced = ctx.options.get("masks")
        if forced is not None:
            if forced not in MASK_KINDS:
                raise ValueError(f"masks must be 'roi' or 'frame', got {forced!r}")
            kind = str(forced)
        elif info is not None and info.roi_masks is not None:
            kind = "roi" if info.roi_masks else "frame"  # the SDK's own rule: params hold "rcnn"
        elif h is None or w is None:
            kind = "frame"  # pasted masks follow the image size; RoI masks have a fixed M x M
        elif in_h is not None and (h, w) == (in_h, in_w):
            kind = "frame"
        elif h == w:
            kind = "roi"
        else:
            raise ctx.unsupported(
                f"cannot tell whether masks {m.name} {list(m.shape)} are box-relative (M x M) or full frame "
                "(the input size); pass options={'masks': 'roi'} or {'masks': 'frame'} to edgeseg.load"
            )
        if kind == "frame" and None not in (h, w, in_h, in_w) and (h, w) != (in_h, in_w):
            raise ctx.unsupported(
                f"full-frame masks {m.name} {list(m.shape)} do not match the input size {in_h}x{in_w}"
            )
        if kind == "roi" and (h is None or w is None or (exporter == "torchvision" and h != w)):
            raise ctx.unsupported(f"box-relative masks {m.name} {list(m.shape)} need a fixed square M x M")
        return kind

    @staticmethod
    def _mmdeploy_layout(head: str, params: DetsLayout, info: MMDeployInfo | None) -> Layout:
        if info is None:
            summary = "MMDeploy end-to-end export (no pipeline.json: MMDetection defaults), NMS in the graph"
            return Layout("dets", head, params, None, summary, None, MMDET_PREPROCESS, MMDET_DEFAULTS)
        d = MMDET_DEFAULTS

        def number(key: str, default: float, low: float, high: float) -> float:
            v = info.param(key)
            return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and low <= v <= high else default

        nms = info.param("nms")
        iou = nms.get("iou_threshold") if isinstance(nms, dict) else None
        defaults = Defaults(
            conf=number("score_thr", d.conf, 0.0, 1.0),
            iou=float(iou) if isinstance(iou, (int, float)) and 0 <= iou <= 1 else d.iou,
            max_det=int(number("max_per_img", d.max_det, 1, 1 << 20)),
            nms=d.nms,
            mask_threshold=number("mask_thr_binary", d.mask_threshold, 0.0, 1.0),
        )
        summary = f"MMDeploy end-to-end export with pipeline.json ({info.component or 'no postprocess task'})"
        return Layout(
            "dets",
            head,
            params,
            len(info.names) if info.names else None,
            summary,
            info.names,
            info.preprocess or MMDET_PREPROCESS,
            defaults,
            imgsz=info.imgsz,
            stride=info.stride or 32,
        )


FAMILY = DetsFamily()
