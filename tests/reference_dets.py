"""Numpy transcriptions of the official postprocess of end-to-end ``dets / labels / masks`` exports.

Written from reading (no code copied):

- open-mmlab/mmdeploy ``mmdeploy/codebase/mmdet/deploy/object_detection_model.py``
  (``End2EndModel.forward``, ``__clear_outputs``, ``postprocessing_masks``): rows with score <= 0
  dropped, boxes divided by the ``scale_factor`` (new / original size per axis); RoI masks pasted at
  the original size with ``grid_sample`` at pixel centres, full-frame masks cut to the resized
  image (``masks[:, :img_h, :img_w]``) and resized to the original by ``F.interpolate``'s default
  nearest mode; then ``masks >= 0.5``.
- open-mmlab/mmdetection ``mmdet/models/roi_heads/mask_heads/fcn_mask_head.py`` ``_do_paste_mask``
  (with ``skip_empty=True``, as on CPU, where masks are pasted one by one): the mask sampled only over
  ``[floor(x1) - 1, ceil(x2) + 1)`` (clipped to the image), position ``(x + 0.5 - x1) / (x2 - x1) * 2 - 1``
  unnormalized as ``grid_sample(align_corners=False)`` does, bilinear with zeros outside; threshold
  ``mask_thr_binary`` (0.5) with ``>=``. The MMDeploy SDK (``csrc/mmdeploy/codebase/mmdet/
  instance_segmentation.cpp`` ``ResizeInstanceMask``) pastes over the same window with the same affine
  map (``warpAffine``), comparing with ``>``.
- pytorch/vision ``torchvision/models/detection/roi_heads.py`` ``paste_masks_in_image``
  (``expand_masks``: one zero cell of padding, scale (M + 2) / M; ``expand_boxes`` about the centre, then
  ``.to(int64)``; ``paste_mask_in_image``: ``F.interpolate(bilinear, align_corners=False)`` to
  (x2 - x1 + 1) x (y2 - y1 + 1) and placed at (x1, y1), clipped) and
  ``transform.py`` ``resize_boxes`` (boxes times original / resized size); masks thresholded ``> 0.5``
  as torchvision's detection references do.

Boxes are clipped to [0, width] x [0, height] of the original image, as MMDetection's bbox head
clips to the image before rescaling (the SDK clips to width - 1).
"""

from __future__ import annotations

import numpy as np


def clear_outputs(dets: np.ndarray, labels: np.ndarray, score_thr: float = 0.0) -> np.ndarray:
    """Indices of the rows MMDeploy keeps: score above ``score_thr`` (``__clear_outputs``: > 0;
    the SDK's ResizeBBox: > score_thr), in the exporter's order."""
    return np.flatnonzero(dets[:, 4] > score_thr)


def rescale_boxes(boxes: np.ndarray, image_hw: tuple[int, int], resized_hw: tuple[int, int]) -> np.ndarray:
    """Boxes from the (keep-ratio, top-left) model input back to the original image: divided by
    MMDetection's ``scale_factor`` (resized / original per axis, float32), clipped to the image."""
    h, w = image_hw
    sx, sy = np.float32(resized_hw[1] / w), np.float32(resized_hw[0] / h)
    out = boxes.astype(np.float32) / np.array([sx, sy, sx, sy], np.float32)
    out[:, 0::2] = np.clip(out[:, 0::2], 0, w)
    out[:, 1::2] = np.clip(out[:, 1::2], 0, h)
    return out


def _bilinear_zeros(mask: np.ndarray, sy: np.ndarray, sx: np.ndarray) -> np.ndarray:
    """grid_sample's bilinear sampling of ``mask`` at rows ``sy`` x columns ``sx`` (outer product),
    with zeros outside the mask (padding_mode="zeros")."""
    mh, mw = mask.shape
    y0 = np.floor(sy).astype(np.int64)
    x0 = np.floor(sx).astype(np.int64)
    wy1, wx1 = (sy - y0).astype(np.float32), (sx - x0).astype(np.float32)
    wy0, wx0 = np.float32(1) - wy1, np.float32(1) - wx1
    out = np.zeros((len(sy), len(sx)), np.float32)
    for dy, wy in ((0, wy0), (1, wy1)):
        yy = y0 + dy
        vy = (yy >= 0) & (yy < mh)
        for dx, wx in ((0, wx0), (1, wx1)):
            xx = x0 + dx
            vx = (xx >= 0) & (xx < mw)
            vals = mask[np.clip(yy, 0, mh - 1)][:, np.clip(xx, 0, mw - 1)]
            out += np.where(vy[:, None] & vx[None, :], vals, 0) * (wy[:, None] * wx[None, :])
    return out


def mmdet_paste(mask: np.ndarray, box: np.ndarray, image_hw: tuple[int, int], thr: float = 0.5) -> np.ndarray:
    """One RoI mask pasted into a full (H, W) bool image as ``_do_paste_mask(skip_empty=True)``
    then ``>= thr``. A box of zero width divides by zero in the reference; it pastes nothing here."""
    h, w = image_hw
    out = np.zeros((h, w), bool)
    x1, y1, x2, y2 = (np.float32(v) for v in box)
    if not (x2 > x1 and y2 > y1):
        return out
    xa = int(max(np.floor(x1) - 1, 0))
    ya = int(max(np.floor(y1) - 1, 0))
    xb = int(min(np.ceil(x2) + 1, w))
    yb = int(min(np.ceil(y2) + 1, h))
    if xb <= xa or yb <= ya:
        return out
    img_x = np.arange(xa, xb, dtype=np.float32) + np.float32(0.5)
    img_y = np.arange(ya, yb, dtype=np.float32) + np.float32(0.5)
    gx = (img_x - x1) / (x2 - x1) * np.float32(2) - np.float32(1)
    gy = (img_y - y1) / (y2 - y1) * np.float32(2) - np.float32(1)
    mh, mw = mask.shape
    sx = (gx + np.float32(1)) * np.float32(mw / 2) - np.float32(0.5)  # grid_sample unnormalize
    sy = (gy + np.float32(1)) * np.float32(mh / 2) - np.float32(0.5)
    out[ya:yb, xa:xb] = _bilinear_zeros(mask.astype(np.float32), sy, sx) >= thr
    return out


def _resize_bilinear(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """``F.interpolate(mode="bilinear", align_corners=False)`` of a 2-D array."""

    def axis(in_len: int, out_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        scale = np.float32(in_len) / np.float32(out_len)
        s = np.maximum(scale * (np.arange(out_len, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5), 0)
        i0 = np.minimum(s.astype(np.int64), in_len - 1)
        i1 = np.minimum(i0 + 1, in_len - 1)
        return i0, i1, np.clip(s - i0, 0, 1).astype(np.float32)

    y0, y1, wy = axis(src.shape[0], out_h)
    x0, x1, wx = axis(src.shape[1], out_w)
    top = src[y0][:, x0] * (1 - wx) + src[y0][:, x1] * wx
    bottom = src[y1][:, x0] * (1 - wx) + src[y1][:, x1] * wx
    return top * (1 - wy)[:, None] + bottom * wy[:, None]


def torchvision_paste(mask: np.ndarray, box: np.ndarray, image_hw: tuple[int, int], thr: float = 0.5) -> np.ndarray:
    """One RoI mask pasted as ``paste_masks_in_image(padding=1)``, then ``> thr``."""
    h, w = image_hw
    m = mask.shape[-1]
    padded = np.pad(mask.astype(np.float32), 1)
    scale = np.float32((m + 2) / m)
    b = box.astype(np.float32)
    w_half, h_half = (b[2] - b[0]) * np.float32(0.5) * scale, (b[3] - b[1]) * np.float32(0.5) * scale
    xc, yc = (b[2] + b[0]) * np.float32(0.5), (b[3] + b[1]) * np.float32(0.5)
    bx = np.trunc(np.array([xc - w_half, yc - h_half, xc + w_half, yc + h_half], np.float32)).astype(np.int64)
    out = np.zeros((h, w), bool)
    if not (box[2] > box[0] and box[3] > box[1]):
        return out
    bw, bh = max(int(bx[2] - bx[0] + 1), 1), max(int(bx[3] - bx[1] + 1), 1)
    resized = _resize_bilinear(padded, bh, bw)
    x0, x1 = max(int(bx[0]), 0), min(int(bx[2]) + 1, w)
    y0, y1 = max(int(bx[1]), 0), min(int(bx[3]) + 1, h)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = resized[y0 - bx[1] : y1 - bx[1], x0 - bx[0] : x1 - bx[0]] > thr
    return out


def nearest_resize(src: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """``F.interpolate(mode="nearest")``: output o reads min(floor(o * (in / out)), in - 1), float scale."""

    def idx(in_len: int, out_len: int) -> np.ndarray:
        if in_len == out_len:
            return np.arange(out_len)
        scale = np.float32(in_len) / np.float32(out_len)
        return np.minimum(np.floor(np.arange(out_len, dtype=np.float32) * scale).astype(np.int64), in_len - 1)

    return src[..., idx(src.shape[-2], out_h)[:, None], idx(src.shape[-1], out_w)[None, :]]


def frame_masks(
    masks: np.ndarray, image_hw: tuple[int, int], resized_hw: tuple[int, int], thr: float = 0.5
) -> np.ndarray:
    """MMDeploy's full-frame masks (``export_postprocess_mask``): cut to the resized image, nearest
    resize to the original, ``>= thr`` (binary masks: non-zero)."""
    content = masks[:, : resized_hw[0], : resized_hw[1]]
    big = nearest_resize(content, *image_hw)
    return big >= thr if big.dtype != np.bool_ else big


def postprocess_mmdeploy(
    dets: np.ndarray,
    labels: np.ndarray,
    masks: np.ndarray,
    image_hw: tuple[int, int],
    resized_hw: tuple[int, int],
    score_thr: float = 0.05,
    max_det: int = 100,
    mask_thr: float = 0.5,
    roi: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One image of an MMDeploy end-to-end export (``dets [K, 5]``, ``labels [K]``, ``masks [K, M, M]``
    RoI (``roi``) or ``[K, H, W]`` full frame): boxes, scores, labels and (N, H, W) bool masks."""
    keep = clear_outputs(dets, labels, score_thr)[:max_det]
    boxes = rescale_boxes(dets[keep, :4], image_hw, resized_hw)
    if not roi:
        full = frame_masks(masks[keep], image_hw, resized_hw, mask_thr)
    elif len(keep):
        full = np.stack([mmdet_paste(masks[k], b, image_hw, mask_thr) for k, b in zip(keep, boxes)])
    else:
        full = np.zeros((0, *image_hw), bool)
    return boxes, dets[keep, 4].astype(np.float32), labels[keep].astype(np.int64), full


def postprocess_torchvision(
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    masks: np.ndarray,
    image_hw: tuple[int, int],
    resized_hw: tuple[int, int],
    score_thr: float = 0.05,
    max_det: int = 100,
    mask_thr: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A torchvision Mask R-CNN export (``boxes [N, 4]``, ``labels [N]``, ``scores [N]``, ``masks
    [N, 1, M, M]``): boxes resized to the original (``resize_boxes``), masks pasted, ``> mask_thr``."""
    keep = np.flatnonzero(scores > score_thr)[:max_det]
    h, w = image_hw
    ratio = np.array(
        [np.float32(w) / np.float32(resized_hw[1]), np.float32(h) / np.float32(resized_hw[0])] * 2, np.float32
    )
    out = boxes[keep].astype(np.float32) * ratio
    out[:, 0::2] = np.clip(out[:, 0::2], 0, w)
    out[:, 1::2] = np.clip(out[:, 1::2], 0, h)
    if len(keep):
        full = np.stack([torchvision_paste(masks[k, 0], b, image_hw, mask_thr) for k, b in zip(keep, out)])
    else:
        full = np.zeros((0, *image_hw), bool)
    return out, scores[keep].astype(np.float32), labels[keep].astype(np.int64), full
