"""A straightforward numpy transcription of Rockchip's yolov8_seg demo postprocess (the way users of these boards
decode today), written for benchmarks/split_heads.py from a reading of rknn_model_zoo
``examples/yolov8_seg/python/yolov8_seg.py`` (``post_process``, ``box_process``, ``dfl``, ``filter_boxes``,
``_crop_mask``) and ``py_utils/coco_utils.py`` (``get_real_box``, ``get_real_seg``). Nothing is copied; the torch
calls become numpy (softmax, a greedy NMS in place of ``torchvision.ops.nms``) and ``cv2.resize`` (bilinear, half
pixel centres, as ``F.interpolate(..., align_corners=False)`` when upsampling).

What the demo does, in order, on float outputs (the RKNN Python API dequantizes by default):
1. per stride: DFL (softmax over 16 bins, expectation) and box decode for EVERY cell; the per-cell score is a
   tensor of ones (the score-sum output is not used); flatten NCHW to (cells, channels);
2. best class per cell, keep ``score >= conf``; coefficients multiplied by the (unit) score;
3. sort by score, class-offset NMS (``max_wh`` 7680), keep at most ``max_det``;
4. masks: coefficients @ prototypes, sigmoid at 160x160, bilinear upsample of all survivors to 640x640, crop to
   the box, ``> 0.5``;
5. back to the source image: boxes un-letterboxed and clipped, masks cut out of the padding and resized (uint8,
   bilinear) to the source resolution, one full-image mask per detection.
"""

from __future__ import annotations

import cv2
import numpy as np

MAX_WH = 7680  # the demo's class offset for class-aware NMS
MAX_NMS = 30000


def dfl(position: np.ndarray) -> np.ndarray:
    """(1, 4*bins, H, W) distribution logits -> (1, 4, H, W) expected distances (in cells)."""
    n, c, h, w = position.shape
    bins = c // 4
    y = position.reshape(n, 4, bins, h, w)
    y = np.exp(y - y.max(axis=2, keepdims=True))
    y /= y.sum(axis=2, keepdims=True)
    return (y * np.arange(bins, dtype=np.float32).reshape(1, 1, bins, 1, 1)).sum(axis=2)


def box_process(position: np.ndarray, imgsz: tuple[int, int]) -> np.ndarray:
    """Decode one stride's DFL logits into (1, 4, H, W) x1 y1 x2 y2 input pixels, for every cell."""
    grid_h, grid_w = position.shape[2:4]
    col, row = np.meshgrid(np.arange(grid_w), np.arange(grid_h))
    grid = np.stack((col, row))[None].astype(np.float32)
    stride = np.array([imgsz[1] // grid_w, imgsz[0] // grid_h], dtype=np.float32).reshape(1, 2, 1, 1)
    dist = dfl(position)
    lt = grid + 0.5 - dist[:, 0:2]
    rb = grid + 0.5 + dist[:, 2:4]
    return np.concatenate((lt * stride, rb * stride), axis=1)


def _flatten(x: np.ndarray) -> np.ndarray:
    return x.transpose(0, 2, 3, 1).reshape(-1, x.shape[1])


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float) -> np.ndarray:
    """Greedy NMS (boxes sorted or not): indices kept, by descending score; suppress IoU > ``iou``."""
    x1, y1, x2, y2 = boxes.T
    areas = (x2 - x1) * (y2 - y1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        order = rest[inter / (areas[i] + areas[rest] - inter) <= iou]
    return np.array(keep, dtype=np.int64)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def _resize_stack(masks: np.ndarray, size_wh: tuple[int, int]) -> np.ndarray:
    """(N, h, w) -> (N, H, W) bilinear, through cv2 (channels last, at most 512 channels per call)."""
    out = []
    for start in range(0, len(masks), 512):
        chunk = cv2.resize(masks[start : start + 512].transpose(1, 2, 0), size_wh, interpolation=cv2.INTER_LINEAR)
        out.append(chunk.reshape(size_wh[1], size_wh[0], -1).transpose(2, 0, 1))
    return np.concatenate(out)


def post_process(
    outputs: list[np.ndarray],
    imgsz: tuple[int, int] = (640, 640),
    conf: float = 0.25,
    iou: float = 0.45,
    max_det: int = 300,
):
    """The demo's ``post_process`` on float NCHW outputs in Rockchip's order (per stride: box, class, score sum,
    coefficients; then prototypes). Returns boxes (input pixels), classes, scores and (N, H, W) bool masks at the
    input size, or Nones when nothing is found."""
    proto = outputs[-1]
    per = len(outputs) // 3
    boxes, classes_conf, scores, seg_part = [], [], [], []
    for i in range(3):
        boxes.append(_flatten(box_process(outputs[per * i], imgsz)))
        classes_conf.append(_flatten(outputs[per * i + 1]))
        scores.append(_flatten(np.ones_like(outputs[per * i + 1][:, :1], dtype=np.float32)))
        seg_part.append(_flatten(outputs[per * i + 3]))
    boxes = np.concatenate(boxes)
    classes_conf = np.concatenate(classes_conf)
    box_conf = np.concatenate(scores).reshape(-1)
    seg_part = np.concatenate(seg_part)

    # filter_boxes
    best = classes_conf.max(axis=-1)
    classes = classes_conf.argmax(axis=-1)
    keep = np.where(best * box_conf >= conf)
    scores = (best * box_conf)[keep]
    boxes, classes = boxes[keep], classes[keep]
    seg_part = (seg_part * box_conf.reshape(-1, 1))[keep]
    if not len(boxes):
        return None, None, None, None

    order = np.argsort(-scores, kind="stable")[:MAX_NMS]
    boxes, classes, scores, seg_part = boxes[order], classes[order], scores[order], seg_part[order]
    kept = nms(boxes + (classes * MAX_WH).astype(np.float32)[:, None], scores, iou)[:max_det]
    boxes, classes, scores, seg_part = boxes[kept], classes[kept], scores[kept], seg_part[kept]

    ph, pw = proto.shape[-2:]
    seg = sigmoid(seg_part @ proto.reshape(seg_part.shape[-1], -1)).reshape(-1, ph, pw).astype(np.float32)
    seg = _resize_stack(seg, (imgsz[1], imgsz[0]))
    # _crop_mask: zero outside the box (columns r in [x1, x2), rows c in [y1, y2))
    r = np.arange(imgsz[1], dtype=np.float32)[None, None, :]
    c = np.arange(imgsz[0], dtype=np.float32)[None, :, None]
    x1, y1, x2, y2 = (boxes[:, k, None, None] for k in range(4))
    seg = seg * ((r >= x1) * (r < x2) * (c >= y1) * (c < y2))
    return boxes, classes, scores, seg > 0.5


def real_box(boxes: np.ndarray, ratio: float, dw: float, dh: float, src_hw: tuple[int, int]) -> np.ndarray:
    """``get_real_box``: input pixels -> source pixels, clipped."""
    out = boxes.copy()
    out[:, [0, 2]] = np.clip((out[:, [0, 2]] - dw) / ratio, 0, src_hw[1])
    out[:, [1, 3]] = np.clip((out[:, [1, 3]] - dh) / ratio, 0, src_hw[0])
    return out


def real_seg(seg: np.ndarray, dw: float, dh: float, src_hw: tuple[int, int]) -> np.ndarray:
    """``get_real_seg``: cut the padding off the input-size masks and resize them (uint8) to the source size."""
    dh_i, dw_i = int(dh), int(dw)
    if dh_i == 0 and dw_i != 0:
        seg = seg[:, :, dw_i:-dw_i]
    elif dw_i == 0 and dh_i != 0:
        seg = seg[:, dh_i:-dh_i, :]
    return _resize_stack(np.where(seg, 1, 0).astype(np.uint8), (src_hw[1], src_hw[0]))


def rknn_demo(
    outputs: list[np.ndarray],
    quant: list[tuple[float, int] | None],
    letterbox: tuple[float, float, float],
    src_hw: tuple[int, int],
    conf: float = 0.25,
    iou: float = 0.45,
    max_det: int = 300,
):
    """The whole user-side path on raw int8/uint8 RKNN-order outputs: dequantize every output to float (what the
    RKNN Python API hands back by default), ``post_process``, then boxes and masks back to the source image.
    ``letterbox``: (ratio, dw, dh) of the input; ``quant``: (scale, zero_point) per output (None: float)."""
    real = [o if q is None else (o.astype(np.float32) - q[1]) * np.float32(q[0]) for o, q in zip(outputs, quant)]
    boxes, classes, scores, seg = post_process(real, (640, 640), conf, iou, max_det)
    if boxes is None:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64), np.zeros(0, np.float32), None
    ratio, dw, dh = letterbox
    return real_box(boxes, ratio, dw, dh, src_hw), classes, scores, real_seg(seg, dw, dh, src_hw)


def hailo_to_rknn(outputs: list[np.ndarray], names: list[str] | None = None) -> list[int | None]:
    """Indices of Hailo's NHWC outputs in Rockchip's order (box, class, score-sum slot, coefficients per stride,
    large to small grids; then prototypes), matched by shape; the score-sum slot is None (Hailo has none and the
    demo does not read it)."""
    by_grid: dict[int, dict[int, int]] = {}
    proto = None
    for i, o in enumerate(outputs):
        h, c = o.shape[1], o.shape[3]
        if h == 160 and c == 32:
            proto = i
        else:
            by_grid.setdefault(h, {})[c] = i
    order: list[int | None] = []
    for h in sorted(by_grid, reverse=True):
        ch = by_grid[h]
        box = ch[64]
        coef = ch[32]
        cls = next(i for c, i in ch.items() if c not in (64, 32))
        order += [box, cls, None, coef]
    return [*order, proto]


def hailo_demo(outputs, quant, letterbox, src_hw, conf=0.25, iou=0.45, max_det=300, order=None):
    """The same transcription fed Hailo's outputs: reordered by shape and transposed NHWC -> NCHW (the transpose
    is part of the timed work)."""
    order = hailo_to_rknn(outputs) if order is None else order
    picked = [outputs[i] if i is not None else outputs[order[k - 1]][:, :, :, :1] for k, i in enumerate(order)]
    qs = [quant[i] if i is not None else None for i in order]
    nchw = [o.transpose(0, 3, 1, 2) for o in picked]
    return rknn_demo(nchw, qs, letterbox, src_hw, conf, iou, max_det)
