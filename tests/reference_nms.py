"""Numpy transcriptions of the official NMS variants, written from reading the official code.

- ``fast_nms`` / ``cc_fast_nms``: dbolya/yolact ``layers/functions/detection.py``, ``Detect.fast_nms`` and
  ``Detect.cc_fast_nms``, with ``layers/box_utils.py`` ``jaccard`` (box IoU).
- ``mask_matrix_nms``: open-mmlab/mmdetection ``mmdet/models/layers/matrix_nms.py``, ``mask_matrix_nms``;
  ``box_matrix_nms`` is the same computation over a box-IoU matrix (torchvision ``box_iou`` order of
  operations) for box-only candidates (YOLO).
- ``mask_nms``: greedy NMS as torchvision ``batched_nms`` (suppress when IoU > threshold, class by class),
  by the IoU of dense masks instead of boxes.

Everything is float32, as the originals run. Where the originals divide 0 by 0 into NaN (IoU of two
degenerate boxes or two empty masks, the linear kernel's 1 - 1 over 1 - 1), these transcriptions use the
convention edgeseg documents instead, and say so at the line: IoU 0 when the union is not positive, and a
NaN decay term lowers nothing. Sorting is stable (ties: lower index first), where PyTorch leaves tie order
unspecified.
"""

from __future__ import annotations

import numpy as np


def jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, B) IoU of x1y1x2y2 boxes in float32, as YOLACT's ``jaccard`` / ``intersect``."""
    a = np.asarray(a, np.float32)
    b = np.asarray(b, np.float32)
    max_xy = np.minimum(a[:, None, 2:], b[None, :, 2:])
    min_xy = np.maximum(a[:, None, :2], b[None, :, :2])
    wh = np.clip(max_xy - min_xy, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None]
    area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None, :]
    union = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    # edgeseg's convention (the original gives NaN or a negative ratio): no positive overlap or no
    # positive union is IoU 0.
    return np.where((inter > 0) & (union > 0), iou, np.float32(0)).astype(np.float32)


def _sort_desc(scores: np.ndarray) -> np.ndarray:
    return np.argsort(-np.asarray(scores), kind="stable")


def fast_nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5, top_k: int = 200, max_num_detections: int = 100
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YOLACT ``Detect.fast_nms`` with ``scores`` as its [num_classes, num_dets] matrix.

    Returns (box index, class, score) of the kept candidates, best first.
    """
    scores = np.asarray(scores, np.float32)
    num_classes, num_dets = scores.shape
    idx = np.stack([_sort_desc(row) for row in scores]) if num_dets else np.zeros((num_classes, 0), np.int64)
    idx = idx[:, :top_k]
    sorted_scores = np.take_along_axis(scores, idx, axis=1)
    boxes = np.asarray(boxes, np.float32)
    keep = np.zeros(idx.shape, bool)
    for c in range(num_classes):
        b = boxes[idx[c]]
        iou = np.triu(jaccard(b, b), k=1)
        iou_max = iou.max(axis=0) if len(b) else np.zeros(0, np.float32)
        keep[c] = iou_max <= iou_threshold
    classes = np.broadcast_to(np.arange(num_classes)[:, None], idx.shape)[keep]
    kept_idx = idx[keep]  # class-major, then rank
    kept_scores = sorted_scores[keep]
    order = _sort_desc(kept_scores)
    if max_num_detections >= 0:  # (-1: no cap, for comparisons; YOLACT always caps)
        order = order[:max_num_detections]
    return kept_idx[order], classes[order], kept_scores[order]


def cc_fast_nms(
    boxes: np.ndarray, scores: np.ndarray, iou_threshold: float = 0.5, top_k: int = 200
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """YOLACT ``Detect.cc_fast_nms`` (cross-class) with ``scores`` as its [num_classes, num_dets] matrix."""
    scores = np.asarray(scores, np.float32)
    classes = scores.argmax(axis=0)  # first maximum, as torch.max
    best = scores.max(axis=0)
    idx = _sort_desc(best)[:top_k]
    b = np.asarray(boxes, np.float32)[idx]
    iou = np.triu(jaccard(b, b), k=1)
    iou_max = iou.max(axis=0) if len(b) else np.zeros(0, np.float32)
    out = idx[iou_max <= iou_threshold]
    return out, classes[out], best[out]


def _matrix_nms(
    iou_of_sorted: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    keep_inds: np.ndarray,
    filter_thr: float,
    max_num: int,
    kernel: str,
    sigma: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    num = len(labels)
    iou_matrix = np.triu(iou_of_sorted, k=1)
    label_matrix = np.triu(labels[None, :] == labels[:, None], k=1)
    decay_iou = (iou_matrix * label_matrix).astype(np.float32)
    compensate_iou = decay_iou.max(axis=0) if num else np.zeros(0, np.float32)
    compensate_iou = np.broadcast_to(compensate_iou, (num, num)).T
    with np.errstate(divide="ignore", invalid="ignore"):
        if kernel == "gaussian":
            s = np.float32(-1 * sigma)
            decay_matrix = np.exp(s * (decay_iou**2))
            compensate_matrix = np.exp(s * (compensate_iou**2))
            ratio = decay_matrix / compensate_matrix
        elif kernel == "linear":
            ratio = (1 - decay_iou) / (1 - compensate_iou)
        else:
            raise NotImplementedError(kernel)
    # edgeseg's convention: a NaN term (0 / 0) lowers nothing, where torch's min would return NaN.
    ratio = np.where(np.isnan(ratio), np.float32(np.inf), ratio)
    decay = ratio.min(axis=0) if num else np.zeros(0, np.float32)
    scores = (scores * decay).astype(np.float32)
    if filter_thr > 0:
        keep = scores >= filter_thr
        keep_inds, scores, labels = keep_inds[keep], scores[keep], labels[keep]
    order = _sort_desc(scores)
    keep_inds, scores, labels = keep_inds[order], scores[order], labels[order]
    if max_num > 0:
        keep_inds, scores, labels = keep_inds[:max_num], scores[:max_num], labels[:max_num]
    return keep_inds, labels, scores


def mask_matrix_nms(
    masks: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    filter_thr: float = -1,
    nms_pre: int = -1,
    max_num: int = -1,
    kernel: str = "gaussian",
    sigma: float = 2.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mmdet ``mask_matrix_nms`` over dense (N, H, W) masks: (keep_inds, labels, decayed scores), best first."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, np.float32)
    if len(labels) == 0:
        return np.zeros(0, np.int64), np.zeros(0, labels.dtype), np.zeros(0, np.float32)
    mask_area = masks.reshape(len(masks), -1).sum(1).astype(np.float32)
    sort_inds = _sort_desc(scores)
    if nms_pre > 0:
        sort_inds = sort_inds[:nms_pre]
    keep_inds = sort_inds
    scores = scores[sort_inds]
    flat = masks[sort_inds].reshape(len(sort_inds), -1).astype(np.float32)
    mask_area, labels = mask_area[sort_inds], labels[sort_inds]
    inter = flat @ flat.T
    union = mask_area[None, :] + mask_area[:, None] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    iou = np.where(union > 0, iou, np.float32(0)).astype(np.float32)  # edgeseg: two empty masks have IoU 0
    return _matrix_nms(iou, labels, scores, keep_inds, filter_thr, max_num, kernel, sigma)


def box_matrix_nms(
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    filter_thr: float = -1,
    nms_pre: int = -1,
    max_num: int = -1,
    kernel: str = "gaussian",
    sigma: float = 2.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``mask_matrix_nms`` with the mask IoU matrix replaced by box IoU (``jaccard``)."""
    labels = np.asarray(labels)
    scores = np.asarray(scores, np.float32)
    if len(labels) == 0:
        return np.zeros(0, np.int64), np.zeros(0, labels.dtype), np.zeros(0, np.float32)
    sort_inds = _sort_desc(scores)
    if nms_pre > 0:
        sort_inds = sort_inds[:nms_pre]
    b = np.asarray(boxes, np.float32)[sort_inds]
    return _matrix_nms(
        jaccard(b, b), labels[sort_inds], scores[sort_inds], sort_inds, filter_thr, max_num, kernel, sigma
    )


def dense_mask_iou(masks: np.ndarray) -> np.ndarray:
    """(N, N) float32 IoU of dense (N, H, W) masks; 0 where the union is empty."""
    flat = masks.reshape(len(masks), int(np.prod(masks.shape[1:]))).astype(np.float32)
    inter = flat @ flat.T
    area = flat.sum(1)
    union = area[None, :] + area[:, None] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where(inter > 0, iou, np.float32(0)).astype(np.float32)


def mask_nms(
    masks: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float, max_num: int = -1
) -> np.ndarray:
    """Greedy class-wise NMS (torchvision ``batched_nms`` rule: suppress when IoU > threshold) by mask IoU.

    Returns the kept indices, best first.
    """
    iou = dense_mask_iou(masks)
    order = _sort_desc(scores)
    kept: list[int] = []
    for i in order:
        if any(labels[k] == labels[i] and iou[k, i] > iou_threshold for k in kept):
            continue
        kept.append(int(i))
        if max_num > 0 and len(kept) == max_num:
            break
    return np.array(kept, np.int64)


def fast_nms_by_label(
    boxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    iou_threshold: float = 0.5,
    top_k: int = 200,
    max_num_detections: int = 100,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``fast_nms`` for candidates with one score and label each (YOLO's): each label's candidates are that
    label's row of YOLACT's matrix, without the other labels' boxes at score 0. Labels in ascending order, so
    the flattened kept entries are class-major as in YOLACT."""
    scores = np.asarray(scores, np.float32)
    labels = np.asarray(labels)
    kept_idx, kept_cls, kept_scores = [], [], []
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        k, _, s = fast_nms(boxes[members], scores[members][None, :], iou_threshold, top_k, len(members))
        # fast_nms's final sort is stable on an already sorted row: the rank order survives.
        kept_idx.append(members[k])
        kept_cls.append(np.full(len(k), c))
        kept_scores.append(s)
    if not kept_idx:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    idx, cls, sc = np.concatenate(kept_idx), np.concatenate(kept_cls), np.concatenate(kept_scores)
    order = _sort_desc(sc)
    if max_num_detections >= 0:
        order = order[:max_num_detections]
    return idx[order], cls[order], sc[order]
