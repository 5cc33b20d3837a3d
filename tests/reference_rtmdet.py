"""A numpy transcription of MMDetection's RTMDet-Ins postprocess, written from reading the official code
(open-mmlab/mmdetection, mmdet 3.x) without copying it:

- ``mmdet/models/dense_heads/rtmdet_ins_head.py``: ``RTMDetInsHead._predict_by_feat_single`` (per level:
  sigmoid, ``filter_scores_and_topk``, distance decoding), ``_bbox_mask_post_process`` (rescale boxes,
  ``min_bbox_size``, ``batched_nms``, ``max_per_img``, masks upsampled by the stride then to
  ``ceil(side * 1 / scale_factor)`` and cut to the original image, ``mask_thr_binary``),
  ``_mask_predict_by_feat_single`` and ``parse_dynamic_params`` (the 3 dynamic 1x1 convolutions over
  [relative coordinates; mask feature], relative coordinates (prior - location) / (prior stride * 8)).
- ``mmdet/models/utils/misc.py`` ``filter_scores_and_topk``; ``mmdet/structures/bbox/transforms.py``
  ``distance2bbox`` (clamped to ``img_shape``, the padded input after mmdet's Pad);
  ``mmdet/models/task_modules/prior_generators/point_generator.py`` ``MlvlPointGenerator`` (offset 0).
- mmcv ``batched_nms`` / ``nms`` (class offsets, IoU strictly above the threshold suppresses);
  mmcv ``rescale_size`` / mmdet ``Resize`` for ``scale_factor = (new_w / w, new_h / h)``.
- ``torch.nn.functional.interpolate(mode="bilinear", align_corners=False)`` for the two resizes.

Ties in score order are broken by index (torch's sort leaves them unspecified). Everything runs on the
full frame, as mmdet does: K masks at input resolution, then at image resolution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Config:
    """RTMDet-Ins test_cfg (``rtmdet_l_8xb32-300e_coco.py`` + ``rtmdet-ins_l``): score_thr 0.001 for evaluation."""

    score_thr: float = 0.001
    nms_pre: int = 30000
    iou: float = 0.65
    max_per_img: int = 300
    mask_thr: float = 0.5
    min_bbox_size: float = 0.0
    num_prototypes: int = 8
    dyconv_channels: int = 8
    num_dyconvs: int = 3


def img_meta(src_h: int, src_w: int, input_hw: tuple[int, int]) -> dict:
    """mmdet's test pipeline meta for Resize(scale=input, keep_ratio=True) + Pad(size=input)."""
    # mmcv rescale_size with a (long, short) edge scale: the image's long side to the long edge unless
    # its short side would pass the short edge.
    long_edge, short_edge = max(input_hw), min(input_hw)
    scale = min(long_edge / max(src_h, src_w), short_edge / min(src_h, src_w))
    new_w, new_h = int(src_w * scale + 0.5), int(src_h * scale + 0.5)
    return {"ori_shape": (src_h, src_w), "img_shape": tuple(input_hw), "scale_factor": (new_w / src_w, new_h / src_h)}


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float32)))).astype(np.float32)


def filter_scores_and_topk(scores: np.ndarray, thr: float, topk: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, labels, prior indices) of the (prior, class) pairs above thr, the topk best by score."""
    valid = np.argwhere(scores > thr)  # row-major: prior, then class
    vals = scores[valid[:, 0], valid[:, 1]]
    order = np.argsort(-vals, kind="stable")[:topk]
    return vals[order], valid[order, 1], valid[order, 0]


def grid_priors(h: int, w: int, stride: int) -> np.ndarray:
    """MlvlPointGenerator.single_level_grid_priors(with_stride=True), offset 0: (x, y, stride, stride) row-major."""
    ys, xs = np.meshgrid(
        np.arange(h, dtype=np.float32) * stride, np.arange(w, dtype=np.float32) * stride, indexing="ij"
    )
    st = np.full(h * w, stride, np.float32)
    return np.stack([xs.ravel(), ys.ravel(), st, st], 1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """mmcv nms: by descending score, drop boxes whose IoU with a kept one is above iou."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = boxes.T
    area = (x2 - x1) * (y2 - y1)
    keep = []
    suppressed = np.zeros(len(boxes), bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        w = np.clip(np.minimum(x2[i], x2) - np.maximum(x1[i], x1), 0, None)
        h = np.clip(np.minimum(y2[i], y2) - np.maximum(y1[i], y1), 0, None)
        inter = w * h
        ov = inter / (area[i] + area - inter)
        suppressed |= ov > iou
    return np.asarray(keep, np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou: float) -> np.ndarray:
    """mmcv batched_nms (class-aware by offsetting each class's boxes past the others)."""
    offsets = labels.astype(np.float32) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou)


def resize_axis(x: np.ndarray, axis: int, out_len: int, scale: float) -> np.ndarray:
    """Bilinear along one axis as torch (align_corners=False): source = (o + 0.5) * scale - 0.5, clamped at 0."""
    n = x.shape[axis]
    src = (np.arange(out_len, dtype=np.float32) + np.float32(0.5)) * np.float32(scale) - np.float32(0.5)
    src = np.maximum(src, 0)
    i0 = np.minimum(src.astype(np.int64), n - 1)
    i1 = np.where(i0 < n - 1, i0 + 1, i0)
    l1 = (src - i0).astype(np.float32)
    shape = [1] * x.ndim
    shape[axis] = out_len
    l1 = l1.reshape(shape)
    return np.take(x, i0, axis=axis) * (1 - l1) + np.take(x, i1, axis=axis) * l1


def interpolate(x: np.ndarray, size: tuple[int, int], scale: tuple[float, float] | None = None) -> np.ndarray:
    """F.interpolate(x, size (or scale_factor), mode='bilinear', align_corners=False) of (..., H, W)."""
    sh = 1.0 / scale[0] if scale else x.shape[-2] / size[0]
    sw = 1.0 / scale[1] if scale else x.shape[-1] / size[1]
    return resize_axis(resize_axis(x, x.ndim - 1, size[1], sw), x.ndim - 2, size[0], sh)


def mask_logits(
    mask_feat: np.ndarray, kernels: np.ndarray, priors: np.ndarray, stride0: int, cfg: Config
) -> np.ndarray:
    """_mask_predict_by_feat_single: (K, h, w) logits of the dynamic convs at mask-feature resolution."""
    k = len(kernels)
    c, h, w = mask_feat.shape
    coord = grid_priors(h, w, stride0)[:, :2]  # level 0 locations
    rel = (priors[:, None, :2] - coord[None]) / (priors[:, None, 2:3] * 8)  # (K, hw, 2)
    x = np.concatenate([rel.transpose(0, 2, 1), np.broadcast_to(mask_feat.reshape(1, c, h * w), (k, c, h * w))], 1)
    d, n = cfg.dyconv_channels, cfg.num_dyconvs
    wn, bn = [], []
    for i in range(n):
        cin = c + 2 if i == 0 else d
        cout = 1 if i == n - 1 else d
        wn.append(cin * cout)
        bn.append(cout)
    splits = np.split(kernels, np.cumsum(wn + bn)[:-1], axis=1)
    for i in range(n):
        cout = 1 if i == n - 1 else d
        weight = splits[i].reshape(k, cout, -1)
        bias = splits[n + i].reshape(k, cout, 1)
        x = np.einsum("koi,kip->kop", weight, x) + bias
        if i < n - 1:
            x = np.maximum(x, 0)
    return x.reshape(k, h, w).astype(np.float32)


def predict(outputs: list[np.ndarray], strides: tuple[int, ...], meta: dict, cfg: Config = Config()) -> dict:
    """One image: ``outputs`` are cls_scores, bbox_preds, kernel_preds (each a list by level, (C, h, w)) then
    the mask feature; returns boxes (original-image pixels, unclipped as mmdet returns them), scores, labels,
    masks (K, ori_h, ori_w) bool, and the survivors' kernels and priors."""
    nl = len(strides)
    cls, box, ker, feat = outputs[:nl], outputs[nl : 2 * nl], outputs[2 * nl : 3 * nl], outputs[3 * nl]
    all_b, all_p, all_s, all_l, all_k = [], [], [], [], []
    for lvl in range(nl):
        c, h, w = cls[lvl].shape
        scores = sigmoid(cls[lvl].reshape(c, -1).T)
        s, lab, idx = filter_scores_and_topk(scores, cfg.score_thr, cfg.nms_pre)
        priors = grid_priors(h, w, strides[lvl])
        all_s.append(s)
        all_l.append(lab)
        all_b.append(box[lvl].reshape(4, -1).T[idx])
        all_p.append(priors[idx])
        all_k.append(ker[lvl].reshape(ker[lvl].shape[0], -1).T[idx])
    dist, priors = np.concatenate(all_b), np.concatenate(all_p)
    scores, labels, kernels = np.concatenate(all_s), np.concatenate(all_l), np.concatenate(all_k)
    ih, iw = meta["img_shape"]
    bboxes = np.stack(
        [
            np.clip(priors[:, 0] - dist[:, 0], 0, iw),
            np.clip(priors[:, 1] - dist[:, 1], 0, ih),
            np.clip(priors[:, 0] + dist[:, 2], 0, iw),
            np.clip(priors[:, 1] + dist[:, 3], 0, ih),
        ],
        1,
    ).astype(np.float32)
    # _bbox_mask_post_process (rescale=True)
    sf = [1 / s for s in meta["scale_factor"]]
    bboxes = bboxes * np.asarray([sf[0], sf[1], sf[0], sf[1]], np.float32)
    wh = bboxes[:, 2:] - bboxes[:, :2]
    valid = (wh[:, 0] > cfg.min_bbox_size) & (wh[:, 1] > cfg.min_bbox_size)
    bboxes, priors, scores, labels, kernels = bboxes[valid], priors[valid], scores[valid], labels[valid], kernels[valid]
    oh, ow = meta["ori_shape"]
    if len(bboxes) == 0:
        empty = np.zeros((0, oh, ow), bool)
        return {
            "boxes": bboxes,
            "scores": scores,
            "labels": labels,
            "masks": empty,
            "kernels": kernels,
            "priors": priors,
        }
    keep = batched_nms(bboxes, scores, labels, cfg.iou)[: cfg.max_per_img]
    bboxes, priors, scores, labels, kernels = bboxes[keep], priors[keep], scores[keep], labels[keep], kernels[keep]
    logits = mask_logits(feat, kernels, priors, strides[0], cfg)
    s0 = strides[0]
    logits = interpolate(logits, (logits.shape[1] * s0, logits.shape[2] * s0), scale=(s0, s0))
    size = (math.ceil(logits.shape[1] * sf[0]), math.ceil(logits.shape[2] * sf[1]))  # sic: rows by the width scale
    logits = interpolate(logits, size)[:, :oh, :ow]
    masks = sigmoid(logits) > cfg.mask_thr
    if masks.shape[1:] != (oh, ow):
        # Where the two scale factors differ by rounding, ceil(side / other axis's scale) can fall a row or
        # column short of the image: mmdet then returns smaller masks; padded here with background.
        full = np.zeros((len(masks), oh, ow), bool)
        full[:, : masks.shape[1], : masks.shape[2]] = masks
        masks = full
    return {"boxes": bboxes, "scores": scores, "labels": labels, "masks": masks, "kernels": kernels, "priors": priors}
