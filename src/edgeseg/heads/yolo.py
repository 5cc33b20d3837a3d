"""Ultralytics YOLOv8 / YOLO11 segmentation heads: the raw head and the end-to-end (NMS in graph) export."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .. import _core
from .._core import Letterbox
from ..masks import InstanceMasks
from .base import Instances, PostprocessOptions

if TYPE_CHECKING:
    from ..spec import ModelSpec


class _YoloSegBase:
    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        det, protos = spec.outputs[spec.detections_output], spec.outputs[spec.prototypes_output]
        self._det_info = det
        self._det_quant = None if det.scale is None else (det.scale, det.zero_point)
        self._proto_quant = None if protos.scale is None else (protos.scale, protos.zero_point)

    def _prototypes(self, outputs: list[np.ndarray], index: int) -> np.ndarray:
        protos = outputs[self.spec.prototypes_output][index]
        return protos.transpose(2, 0, 1) if self.spec.prototypes_nhwc else protos  # a view: strides do the rest

    def _box_scale(self, lb: Letterbox) -> tuple[float, float]:
        return (float(lb.dst_w), float(lb.dst_h)) if self.spec.boxes_normalized else (1.0, 1.0)

    def _finish(
        self,
        outputs: list[np.ndarray],
        index: int,
        lb: Letterbox,
        options: PostprocessOptions,
        decoded: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    ) -> Instances:
        boxes, scores, class_ids, coeffs = decoded
        image_hw = (lb.src_h, lb.src_w)
        boxes = _core.unletterbox_boxes(boxes, lb)
        keep, rects, offsets, bits, probs, areas = _core.assemble_masks(
            self._prototypes(outputs, index),
            coeffs,
            boxes,
            (lb.dst_h, lb.dst_w),
            image_hw,
            soft=options.soft_masks,
            quant=self._proto_quant,
        )
        if len(keep) != len(boxes):  # instances whose mask is empty are dropped, as in the reference
            boxes, scores, class_ids = boxes[keep], scores[keep], class_ids[keep]
        return Instances(boxes, scores, class_ids, InstanceMasks(rects, offsets, bits, image_hw, probs, areas))


class YoloHead(_YoloSegBase):
    """Raw head: [features, anchors] with features = cx, cy, w, h, class scores, mask coefficients."""

    def __call__(self, outputs: list[np.ndarray], index: int, lb: Letterbox, options: PostprocessOptions) -> Instances:
        pred = outputs[self.spec.detections_output][index]
        if self.spec.detections_anchor_major:
            pred = pred.T  # a view: the core reads through strides
        decoded = _core.decode_yolo(
            pred,
            self.spec.num_classes,
            options.conf,
            options.iou,
            options.max_det,
            options.pre_nms_topk,
            options.agnostic,
            options.class_allowed,
            quant=self._det_quant,
            box_scale=self._box_scale(lb),
        )
        return self._finish(outputs, index, lb, options, decoded)

    def max_class_score(self, outputs: list[np.ndarray], index: int) -> float:
        """Highest class score over all anchors of image ``index`` (a health signal)."""
        pred = outputs[self.spec.detections_output][index]
        if self.spec.detections_anchor_major:
            pred = pred.T
        scores = pred[4 : 4 + self.spec.num_classes]
        return float(self._det_info.dequantize(scores.max(keepdims=True)).max()) if scores.size else 0.0


class YoloE2EHead(_YoloSegBase):
    """End-to-end export: rows of x1, y1, x2, y2, score, class, mask coefficients, already NMS-ed."""

    def __call__(self, outputs: list[np.ndarray], index: int, lb: Letterbox, options: PostprocessOptions) -> Instances:
        rows = outputs[self.spec.detections_output][index]
        decoded = _core.decode_yolo_e2e(
            rows,
            self.spec.num_classes,
            options.conf,
            options.max_det,
            options.class_allowed,
            quant=self._det_quant,
            box_scale=self._box_scale(lb),
        )
        return self._finish(outputs, index, lb, options, decoded)

    def max_class_score(self, outputs: list[np.ndarray], index: int) -> float:
        """Highest score among the graph's detections of image ``index`` (a health signal)."""
        scores = outputs[self.spec.detections_output][index][:, 4]
        return float(self._det_info.dequantize(scores.max(keepdims=True)).max()) if scores.size else 0.0
