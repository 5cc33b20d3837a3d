"""A numpy transcription of YOLACT's official postprocess, for parity tests and benchmarks.

Written from reading dbolya/yolact (commit 57b8f2d, the one OpenVINO's model zoo pins):

- ``layers/box_utils.py``: ``decode`` (variances 0.1 / 0.2), ``jaccard``, ``sanitize_coordinates``,
  ``crop`` (padding 1);
- ``layers/functions/detection.py``: ``Detect.detect`` (priors whose best foreground score is above
  the threshold), ``Detect.fast_nms`` (per class: sort, top_k, upper-triangular IoU matrix, keep
  where the column maximum is <= the IoU threshold; then the ``max_num_detections`` best over all
  classes) and ``Detect.cc_fast_nms`` (cross-class);
- ``layers/output_utils.py``: ``postprocess`` (masks = sigmoid(proto @ coeffs.T), cropped at
  prototype resolution, ``F.interpolate(..., mode='bilinear', align_corners=False)`` to the image,
  ``> 0.5``; boxes through ``sanitize_coordinates`` with ``cast=False``);
- ``yolact.py``: ``PredictionModule.make_priors`` (the loop, kept literally here).

Two documented choices, the same as edgeseg's: ``fast_nms`` is run with its ``second_threshold``
(the per-class score must be above the threshold too; yolact's own comment asks deployments to do
this, and OpenVINO's accuracy-checker adapter does), and boxes are returned as floats (the final
``boxes.long()`` of ``postprocess`` is skipped, as OpenVINO's adapter does). Everything is float32,
as in torch. Sorting is stable (ties keep the lower index), where torch's sort leaves ties open.
"""

from __future__ import annotations

from itertools import product
from math import sqrt

import numpy as np

F32 = np.float32


def decode(loc: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """box_utils.decode: SSD offsets against cx, cy, w, h priors -> x1, y1, x2, y2 (fractions)."""
    cxcy = priors[:, :2] + loc[:, :2] * F32(0.1) * priors[:, 2:]
    wh = priors[:, 2:] * np.exp(loc[:, 2:] * F32(0.2))
    x1y1 = cxcy - wh / F32(2)
    return np.concatenate([x1y1, wh + x1y1], 1).astype(F32)


def jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """box_utils.jaccard of [n, A, 4] and [n, B, 4] -> [n, A, B] (no +1 on areas)."""
    max_xy = np.minimum(a[:, :, None, 2:], b[:, None, :, 2:])
    min_xy = np.maximum(a[:, :, None, :2], b[:, None, :, :2])
    inter = np.clip(max_xy - min_xy, 0, None).prod(3)
    area_a = ((a[:, :, 2] - a[:, :, 0]) * (a[:, :, 3] - a[:, :, 1]))[:, :, None]
    area_b = ((b[:, :, 2] - b[:, :, 0]) * (b[:, :, 3] - b[:, :, 1]))[:, None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (inter / (area_a + area_b - inter)).astype(F32)


def _desc(scores: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.argsort(-scores, axis=axis, kind="stable")


def fast_nms(boxes, coeffs, scores, iou_threshold, top_k, conf_thresh, max_det):
    """Detect.fast_nms with second_threshold=True; scores are [classes, candidates]."""
    idx = _desc(scores, 1)[:, :top_k]
    scores = np.take_along_axis(scores, idx, 1)
    num_classes, num_dets = idx.shape
    b = boxes[idx.reshape(-1)].reshape(num_classes, num_dets, 4)
    c = coeffs[idx.reshape(-1)].reshape(num_classes, num_dets, -1)
    iou = np.triu(jaccard(b, b), k=1)
    iou_max = iou.max(axis=1) if num_dets else np.zeros((num_classes, 0), F32)  # NaN propagates, as torch.max
    keep = (iou_max <= iou_threshold) & (scores > conf_thresh)
    classes = np.broadcast_to(np.arange(num_classes)[:, None], keep.shape)[keep]
    b, c, s = b[keep], c[keep], scores[keep]
    order = _desc(s)[:max_det]
    return b[order], c[order], classes[order], s[order]


def cc_fast_nms(boxes, coeffs, scores, iou_threshold, top_k, max_det):
    """Detect.cc_fast_nms (cross-class), followed by the max_det cut of the caller."""
    classes = scores.argmax(0)
    scores = scores.max(0)
    idx = _desc(scores)[:top_k]
    bi = boxes[idx]
    iou = np.triu(jaccard(bi[None], bi[None])[0], k=1)
    iou_max = iou.max(0) if len(idx) else np.zeros(0, F32)
    out = idx[iou_max <= iou_threshold][:max_det]
    return boxes[out], coeffs[out], classes[out], scores[out]


def detect(loc_or_boxes, conf, coeffs, priors, conf_thresh=0.05, iou=0.5, top_k=200, max_det=100, cross_class=False):
    """Detect.__call__ / detect for one image: decoded boxes (fractions), coefficients, classes, scores."""
    boxes = loc_or_boxes if priors is None else decode(loc_or_boxes, priors)
    cur_scores = conf[:, 1:].T  # [classes, priors]
    conf_scores = cur_scores.max(0)
    keep = conf_scores > conf_thresh
    scores, boxes, coeffs = cur_scores[:, keep], boxes[keep], coeffs[keep]
    if scores.shape[1] == 0:
        return np.zeros((0, 4), F32), np.zeros((0, coeffs.shape[1]), F32), np.zeros(0, int), np.zeros(0, F32)
    if cross_class:
        return cc_fast_nms(boxes, coeffs, scores, iou, top_k, max_det)
    return fast_nms(boxes, coeffs, scores, iou, top_k, conf_thresh, max_det)


def sanitize_coordinates(x1, x2, img_size, padding=0):
    """box_utils.sanitize_coordinates with cast=False."""
    x1, x2 = x1 * F32(img_size), x2 * F32(img_size)
    lo, hi = np.minimum(x1, x2), np.maximum(x1, x2)
    return np.maximum(lo - F32(padding), F32(0)), np.minimum(hi + F32(padding), F32(img_size))


def crop(masks: np.ndarray, boxes: np.ndarray, padding: int = 1) -> np.ndarray:
    """box_utils.crop: masks [h, w, n] zeroed outside each box (fractions) widened by ``padding``."""
    h, w, _ = masks.shape
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], w, padding)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], h, padding)
    cols = np.arange(w, dtype=F32)[None, :, None]
    rows = np.arange(h, dtype=F32)[:, None, None]
    keep = (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)
    return masks * keep


def _axis(in_len: int, out_len: int):
    """PyTorch's bilinear source indices and weights (align_corners=False) for one axis."""
    scale = F32(in_len) / F32(out_len)
    src = scale * (np.arange(out_len, dtype=F32) + F32(0.5)) - F32(0.5)
    src = np.maximum(src, F32(0))
    i0 = np.minimum(src.astype(np.int64), in_len - 1)
    i1 = i0 + (i0 < in_len - 1)
    w1 = np.clip(src - i0.astype(F32), 0, 1).astype(F32)
    return i0, i1, (F32(1) - w1).astype(F32), w1


def interpolate_bilinear(masks: np.ndarray, h: int, w: int) -> np.ndarray:
    """F.interpolate(masks[None], (h, w), mode='bilinear', align_corners=False)[0] for [n, hp, wp]."""
    x0, x1, wx0, wx1 = _axis(masks.shape[2], w)
    y0, y1, wy0, wy1 = _axis(masks.shape[1], h)
    rows = wx0 * masks[:, :, x0] + wx1 * masks[:, :, x1]  # [n, hp, w]
    return wy0[:, None] * rows[:, y0, :] + wy1[:, None] * rows[:, y1, :]


def postprocess(boxes, coeffs, classes, scores, proto, h, w):
    """output_utils.postprocess for lincomb masks: (classes, scores, boxes in pixels, masks [n, h, w] bool).

    ``proto`` is [hp, wp, K] (yolact's channels-last prototypes)."""
    if len(scores) == 0:
        return classes, scores, np.zeros((0, 4), F32), np.zeros((0, h, w), bool)
    masks = proto @ coeffs.T  # [hp, wp, n]
    masks = F32(1) / (F32(1) + np.exp(-masks))
    masks = crop(masks, boxes).transpose(2, 0, 1)
    masks = interpolate_bilinear(np.ascontiguousarray(masks, F32), h, w) > 0.5
    out = np.empty_like(boxes)
    out[:, 0], out[:, 2] = sanitize_coordinates(boxes[:, 0], boxes[:, 2], w)
    out[:, 1], out[:, 3] = sanitize_coordinates(boxes[:, 1], boxes[:, 3], h)
    return classes, scores, out, masks


def make_priors_loop(side: int, scales, square_anchors: bool, aspect_ratios=(1, 1 / 2, 2)) -> np.ndarray:
    """PredictionModule.make_priors for every level, literally (use_pixel_scales, preapply_sqrt=False)."""
    sizes, s = [], side
    for _ in range(3):
        s = (s + 1) // 2
    for _ in range(5):
        sizes.append(s)
        s = (s + 1) // 2
    prior_data = []
    for conv, level_scales in zip(sizes, scales):
        for j, i in product(range(conv), range(conv)):
            x = (i + 0.5) / conv
            y = (j + 0.5) / conv
            for scale in level_scales:
                for ar in aspect_ratios:
                    ar = sqrt(ar)
                    pw = scale * ar / side
                    ph = scale / ar / side
                    if square_anchors:
                        ph = pw
                    prior_data += [x, y, pw, ph]
    return np.array(prior_data, F32).reshape(-1, 4)
