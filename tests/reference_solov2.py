"""Numpy transcription of MMDetection's SOLOv2 postprocess, the reference edgeseg's SOLOv2 decoder is
tested and benchmarked against.

Transcribed (read, then written here in numpy; no code copied) from open-mmlab/mmdetection v3:
- ``mmdet/models/dense_heads/solov2_head.py``: ``SOLOV2Head.predict_by_feat`` (sigmoid, point NMS by
  ``max_pool2d(2, stride=1, padding=1)[:, :, :-1, :-1] == score``, levels flattened point by point)
  and ``_predict_by_feat_single`` (score threshold, kernels of the candidates, per-point strides,
  1x1 dynamic convolution, sigmoid, ``> mask_thr``, ``sum_masks > strides``, maskness rescoring,
  ``mask_matrix_nms``, then ``F.interpolate`` to the mask feature x mask_stride, crop
  ``[:h, :w]`` to the resized image, ``F.interpolate`` to the original size, ``> mask_thr``);
- ``mmdet/models/layers/matrix_nms.py``: ``mask_matrix_nms`` (sort, nms_pre, upper-triangular IoU
  and label matrices, compensation, Gaussian / linear decay, filter_thr, sort, max_num);
- the test_cfg of ``configs/solov2/solov2_r50_fpn_1x_coco.py``: nms_pre 500, score_thr 0.1,
  mask_thr 0.5, filter_thr 0.05, kernel 'gaussian', sigma 2.0, max_per_img 100 (the same in the
  original WXinlong/SOLO code, where point NMS sits in the head's eval forward and filter_thr is
  called update_thr).
``F.interpolate(mode="bilinear", align_corners=False)`` is written out as PyTorch computes it (float32
source positions ``(dst + 0.5) * in / out - 0.5`` clamped at 0).

Two things the official code does not do, applied after it for comparison with edgeseg: boxes are
the extent of each final mask (MMDetection returns zero boxes), and instances whose final mask is
empty are dropped (edgeseg cannot give them a box). ``pad`` generalizes the ``[:h, :w]`` crop to a
top-left offset (0 for MMDetection's bottom-right padding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Solov2Cfg:
    """SOLOv2's test_cfg."""

    nms_pre: int = 500
    score_thr: float = 0.1
    mask_thr: float = 0.5
    filter_thr: float = 0.05
    kernel: str = "gaussian"
    sigma: float = 2.0
    max_per_img: int = 100


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Float32 logistic function."""
    x = x.astype(np.float32)
    with np.errstate(over="ignore"):
        return (np.float32(1.0) / (np.float32(1.0) + np.exp(-x))).astype(np.float32)


def points_nms(scores: np.ndarray) -> np.ndarray:
    """(C, S, S) scores kept where they equal the max of their 2x2 window ending at them, else 0."""
    padded = np.pad(scores, ((0, 0), (1, 0), (1, 0)), constant_values=-np.inf)  # max_pool2d pads with -inf
    local = np.maximum(
        np.maximum(padded[:, :-1, :-1], padded[:, :-1, 1:]), np.maximum(padded[:, 1:, :-1], padded[:, 1:, 1:])
    )
    return scores * (local == scores)


def _axis(in_len: int, out_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    scale = np.float32(in_len) / np.float32(out_len)
    src = (np.arange(out_len, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    src = np.maximum(src, np.float32(0.0))
    i0 = np.minimum(src.astype(np.int64), in_len - 1)
    i1 = i0 + (i0 < in_len - 1)
    l1 = (src - i0.astype(np.float32)).astype(np.float32)
    return i0, i1, (np.float32(1.0) - l1).astype(np.float32), l1


def interpolate(x: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``F.interpolate(x[None], size, mode="bilinear", align_corners=False)[0]`` for (N, H, W) float32."""
    h0, h1, hl0, hl1 = _axis(x.shape[1], size[0])
    w0, w1, wl0, wl1 = _axis(x.shape[2], size[1])
    top = x[:, h0, :] * hl0[None, :, None] + x[:, h1, :] * hl1[None, :, None]
    return (top[:, :, w0] * wl0 + top[:, :, w1] * wl1).astype(np.float32)


def mask_matrix_nms(
    masks: np.ndarray, labels: np.ndarray, scores: np.ndarray, mask_area: np.ndarray, cfg: Solov2Cfg
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, labels, keep_inds) as mmdet's mask_matrix_nms; ``masks`` (N, h, w) bool."""
    if len(labels) == 0:
        return scores[:0], labels[:0], np.zeros(0, np.int64)
    # torch.sort(descending=True) is not stable; ties (rare with float scores) keep index order here.
    sort_inds = np.argsort(-scores, kind="stable")
    keep_inds = sort_inds
    if 0 < cfg.nms_pre < len(sort_inds):
        sort_inds = sort_inds[: cfg.nms_pre]
        keep_inds = keep_inds[: cfg.nms_pre]
    scores = scores[sort_inds]
    masks, mask_area, labels = masks[sort_inds], mask_area[sort_inds], labels[sort_inds]
    n = len(labels)
    flat = masks.reshape(n, -1).astype(np.float32)
    inter = flat @ flat.T
    area = np.broadcast_to(mask_area, (n, n))
    iou = np.triu(inter / (area + area.T - inter), k=1)
    same = np.triu(labels[None, :] == labels[:, None], k=1)
    decay_iou = iou * same
    compensate = decay_iou.max(0)
    compensate = np.broadcast_to(compensate, (n, n)).T
    with np.errstate(divide="ignore", invalid="ignore"):
        if cfg.kernel == "gaussian":
            ratio = np.exp(-cfg.sigma * decay_iou**2) / np.exp(-cfg.sigma * compensate**2)
        else:
            ratio = (1 - decay_iou) / (1 - compensate)
    decay = ratio.astype(np.float32).min(0)
    if np.isnan(ratio).any(axis=0).any():  # torch.min propagates NaN
        decay[np.isnan(ratio).any(axis=0)] = np.nan
    scores = (scores * decay).astype(np.float32)
    if cfg.filter_thr > 0:
        keep = scores >= cfg.filter_thr
        keep_inds, scores, labels = keep_inds[keep], scores[keep], labels[keep]
    order = np.argsort(-scores, kind="stable")
    if 0 < cfg.max_per_img < len(order):
        order = order[: cfg.max_per_img]
    return scores[order], labels[order], keep_inds[order]


@dataclass
class Reference:
    """Instances as the reference gives them (plus boxes from the masks, empties dropped)."""

    boxes: np.ndarray  # (K, 4) x1 y1 x2 y2 of each mask's extent
    scores: np.ndarray
    labels: np.ndarray
    masks: np.ndarray  # (K, H, W) bool at the original size


def postprocess(
    cates: list[np.ndarray],
    kernels: list[np.ndarray],
    mask_feat: np.ndarray,
    strides: list[int],
    img_shape: tuple[int, int],
    ori_shape: tuple[int, int],
    cfg: Solov2Cfg = Solov2Cfg(),
    cate_logits: bool = True,
    mask_stride: int = 4,
    pad: tuple[int, int] = (0, 0),
) -> Reference:
    """One image: ``cates`` per level (C, S, S), ``kernels`` per level (E, S, S), ``mask_feat`` (E, h, w);
    ``img_shape`` the resized image (h, w) inside the padded input, ``ori_shape`` the original size."""
    num_classes = cates[0].shape[0]
    levels = []
    for c in cates:
        score = sigmoid(c) if cate_logits else c.astype(np.float32)
        levels.append(points_nms(score).transpose(1, 2, 0).reshape(-1, num_classes))
    cls_scores = np.concatenate(levels)
    kernel_preds = np.concatenate([k.transpose(1, 2, 0).reshape(-1, k.shape[0]) for k in kernels])
    empty = Reference(
        np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros((0, *ori_shape), bool)
    )
    fh, fw = mask_feat.shape[1:]
    upsampled = (fh * mask_stride, fw * mask_stride)
    score_mask = cls_scores > cfg.score_thr
    inds = np.argwhere(score_mask)  # row-major: by point, then class
    if len(inds) == 0:
        return empty
    scores = cls_scores[score_mask]
    labels = inds[:, 1]
    kernel_preds = kernel_preds[inds[:, 0]]
    point_strides = np.concatenate([np.full(k.shape[1] * k.shape[2], s, np.float32) for k, s in zip(kernels, strides)])
    point_strides = point_strides[inds[:, 0]]
    mask_preds = sigmoid(
        (kernel_preds.astype(np.float32) @ mask_feat.reshape(mask_feat.shape[0], -1)).reshape(-1, fh, fw)
    )
    masks = mask_preds > cfg.mask_thr
    sum_masks = masks.sum((1, 2)).astype(np.float32)
    keep = sum_masks > point_strides
    if not keep.any():
        return empty
    masks, mask_preds, sum_masks = masks[keep], mask_preds[keep], sum_masks[keep]
    scores, labels = scores[keep], labels[keep]
    mask_scores = (mask_preds * masks).sum((1, 2)) / sum_masks
    scores = (scores * mask_scores).astype(np.float32)
    scores, labels, keep_inds = mask_matrix_nms(masks, labels, scores, sum_masks, cfg)
    if len(keep_inds) == 0:
        return empty
    probs = interpolate(mask_preds[keep_inds], upsampled)
    h, w = img_shape
    probs = probs[:, pad[0] : pad[0] + h, pad[1] : pad[1] + w]
    final = interpolate(np.ascontiguousarray(probs), ori_shape) > cfg.mask_thr
    # Not in the official code: boxes from the masks, empty masks dropped (see the module docstring).
    any_y, any_x = final.any(2), final.any(1)
    nonempty = any_y.any(1)
    boxes = np.zeros((len(final), 4), np.float32)
    for i in np.flatnonzero(nonempty):
        ys, xs = np.flatnonzero(any_y[i]), np.flatnonzero(any_x[i])
        boxes[i] = (xs[0], ys[0], xs[-1] + 1, ys[-1] + 1)
    return Reference(boxes[nonempty], scores[nonempty], labels[nonempty], final[nonempty])


def split_levels(layout: object, outputs: list[np.ndarray], index: int = 0) -> tuple[list, list, np.ndarray]:
    """Per-level (C, S, S) category scores and (E, S, S) kernels and the (E, h, w) mask feature of image
    ``index``, from the outputs of a model whose ``spec.layout`` is ``layout`` (either SOLOv2 layout)."""
    feat = outputs[layout.mask_feat_output][index]
    if not layout.flat:
        cates = [outputs[i][index] for i in layout.cate_outputs]
        kernels = [outputs[i][index] for i in layout.kernel_outputs]
        return cates, kernels, feat
    cate, kern = outputs[layout.cate_outputs[0]][index], outputs[layout.kernel_outputs[0]][index]
    cates, kernels, start = [], [], 0
    for s in layout.grids:
        cates.append(cate[start : start + s * s].reshape(s, s, -1).transpose(2, 0, 1))
        kernels.append(kern[start : start + s * s].reshape(s, s, -1).transpose(2, 0, 1))
        start += s * s
    return cates, kernels, feat


def run_reference(
    model: object, outputs: list[np.ndarray], letterbox: object, index: int = 0, cfg: Solov2Cfg = Solov2Cfg()
) -> Reference:
    """The reference postprocess of image ``index`` of a loaded edgeseg SOLOv2 model's raw outputs."""
    layout = model.spec.layout
    cates, kernels, feat = split_levels(layout, outputs, index)
    lb = letterbox
    return postprocess(
        cates,
        kernels,
        feat,
        list(layout.strides),
        (lb.new_h, lb.new_w),
        (lb.src_h, lb.src_w),
        cfg,
        cate_logits=layout.cate_logits,
        mask_stride=layout.mask_stride,
        pad=(lb.pad_top, lb.pad_left),
    )
