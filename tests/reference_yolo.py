"""A numpy transcription of the Ultralytics YOLOv8 / YOLO11-seg predict postprocess (``retina_masks=True``),
written from knowledge of the official code (ultralytics ``utils/nms.py``, ``utils/ops.py`` and
``models/yolo/segment/predict.py``, the version that made ../shared/reference) without copying or importing it
(it is AGPL) and without torch:

- ``non_max_suppression``: candidates whose best class score is above ``conf``; cx, cy, w, h to x1, y1, x2, y2;
  best first (``max_nms`` = 30000 at most); greedy NMS (torchvision ``nms``: IoU strictly above the threshold
  suppresses) on boxes offset by ``class * max_wh`` (7680) so classes never suppress each other; ``max_det`` kept.
- ``scale_boxes``: the letterbox's padding subtracted and its per-axis ratio (resized / original side) divided
  out, clipped to the image.
- ``process_mask_native``: coefficients @ prototypes; ``scale_masks`` crops the letterbox padding (at prototype
  resolution, upsampled first where the padding is not whole prototype pixels) and resizes bilinearly
  (``align_corners=False``) to the original image; ``crop_mask`` zeroes everything outside the scaled box
  (column ``r`` kept where ``x1 <= r < x2``, rows likewise); mask = logit > 0.
- the segment predictor drops instances whose mask is empty.

Checked against the stored predictions on the float model (``test_parity.test_transcription_matches_reference``):
the older ``scale_boxes`` (one gain ``min(in / image)``) and ``scale_masks`` (padding from the unrounded
``side * gain``, no upsampling first) miss them by up to 1% box IoU and 1.4% mean mask IoU.

Everything is float32, as the original runs. Candidates are ordered by descending score with PyTorch's CPU
``argsort(descending=True)``, which is ``std::sort`` (libstdc++ introsort) on (score, index) pairs comparing the
score alone: not stable. Ties are rare in float outputs and common in int8 ones, where the tie order decides
which of two equal-score overlapping boxes NMS keeps, so ``torch_argsort_desc`` reproduces that algorithm
step by step (torchvision's ``nms`` then sorts stably, which keeps this order). The bilinear resizes are
OpenCV's ``INTER_LINEAR`` on float32 (half-pixel centres, as ``F.interpolate(align_corners=False)``).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

MAX_WH = 7680  # class offset of the batched NMS (pixels)
MAX_NMS = 30000  # most candidates entering NMS


@dataclass
class Prediction:
    """One image's predictions in original-image pixels, best first."""

    boxes: np.ndarray  # (n, 4) float32 x1, y1, x2, y2
    scores: np.ndarray  # (n,) float32
    class_ids: np.ndarray  # (n,) int64
    masks: np.ndarray  # (n, h0, w0) bool

    def to_coco(self, image_id: int, category_map) -> list[dict]:
        """COCO results dicts (bbox x, y, w, h; score; RLE segmentation), as ``Result.to_coco`` writes them."""
        from pycocotools import mask as mask_utils

        out = []
        for box, score, cls, mask in zip(self.boxes, self.scores, self.class_ids, self.masks):
            x1, y1, x2, y2 = (float(v) for v in box)
            rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
            rle["counts"] = rle["counts"].decode("ascii")
            out.append(
                {
                    "image_id": int(image_id),
                    "category_id": int(category_map[int(cls)]),
                    "bbox": [round(x1, 3), round(y1, 3), round(x2 - x1, 3), round(y2 - y1, 3)],
                    "score": round(float(score), 5),
                    "segmentation": rle,
                }
            )
        return out


def xywh2xyxy(x: np.ndarray) -> np.ndarray:
    """Centre, width, height to corners."""
    xy, wh = x[:, :2], x[:, 2:4] / np.float32(2)
    return np.concatenate([xy - wh, xy + wh], axis=1).astype(np.float32)


_THRESHOLD = 16  # libstdc++ _S_threshold


def torch_argsort_desc(scores: np.ndarray) -> np.ndarray:
    """Indices of ``scores`` by descending value, ties placed exactly as libstdc++'s ``std::sort`` (introsort:
    median-of-three pivot moved to the front, unguarded Hoare partition, segments of <= 16 left to a final
    insertion sort) places them with the comparator ``a > b`` on indices in ascending order: PyTorch's CPU sort."""
    v = [float(x) for x in scores]
    a = list(range(len(v)))

    def comp(i: int, j: int) -> bool:  # comp(*it_i, *it_j) on positions of `a`
        return v[a[i]] > v[a[j]]

    def swap(i: int, j: int) -> None:
        a[i], a[j] = a[j], a[i]

    def move_median_to_first(result: int, x: int, y: int, z: int) -> None:
        if comp(x, y):
            if comp(y, z):
                swap(result, y)
            elif comp(x, z):
                swap(result, z)
            else:
                swap(result, x)
        elif comp(x, z):
            swap(result, x)
        elif comp(y, z):
            swap(result, z)
        else:
            swap(result, y)

    def unguarded_partition(first: int, last: int, pivot: int) -> int:
        while True:
            while comp(first, pivot):
                first += 1
            last -= 1
            while comp(pivot, last):
                last -= 1
            if not first < last:
                return first
            swap(first, last)
            first += 1

    def introsort_loop(first: int, last: int, depth: int) -> None:
        while last - first > _THRESHOLD:
            if depth == 0:  # heapsort fallback: not transcribed (needs pathological inputs)
                raise NotImplementedError("introsort depth limit reached")
            depth -= 1
            mid = first + (last - first) // 2
            move_median_to_first(first, first + 1, mid, last - 1)
            cut = unguarded_partition(first + 1, last, first)
            introsort_loop(cut, last, depth)
            last = cut

    def insertion_sort(first: int, last: int) -> None:  # stable: later equal elements stay after
        for i in range(first + 1, last):
            val = a[i]
            if v[val] > v[a[first]]:
                a[first + 1 : i + 1] = a[first:i]
                a[first] = val
            else:
                j = i
                while v[val] > v[a[j - 1]]:
                    a[j] = a[j - 1]
                    j -= 1
                a[j] = val

    n = len(a)
    if n > 1:
        introsort_loop(0, n, 2 * (n.bit_length() - 1))
        insertion_sort(0, min(n, _THRESHOLD))
        for i in range(_THRESHOLD, n):  # unguarded linear insert: the first 16 hold an element >= any later one
            val, j = a[i], i
            while v[val] > v[a[j - 1]]:
                a[j] = a[j - 1]
                j -= 1
            a[j] = val
    return np.asarray(a, np.int64)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS as torchvision's: best first (a stable sort), suppress later boxes whose IoU with a kept one
    is > threshold."""
    order = np.argsort(-scores, kind="stable")
    x1, y1, x2, y2 = (boxes[:, k] for k in range(4))
    areas = (x2 - x1) * (y2 - y1)
    suppressed = np.zeros(len(boxes), bool)
    keep = []
    for rank, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[rank + 1 :]
        rest = rest[~suppressed[rest]]
        if not rest.size:
            continue
        w = np.clip(np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]), 0, None)
        h = np.clip(np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]), 0, None)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        suppressed[rest[iou > np.float32(iou_threshold)]] = True
    return np.asarray(keep, np.int64)


def non_max_suppression(
    pred: np.ndarray, nc: int, conf: float = 0.25, iou: float = 0.7, max_det: int = 300, agnostic: bool = False
) -> np.ndarray:
    """Rows x1, y1, x2, y2, score, class, mask coefficients (input pixels), best first, from one image's raw
    head output ``pred`` [4 + nc + nm, anchors] (float32, boxes cx, cy, w, h in input pixels)."""
    pred = np.asarray(pred, np.float32)
    x = pred.T  # (anchors, features)
    x = x[x[:, 4 : 4 + nc].max(axis=1) > np.float32(conf)]
    box = xywh2xyxy(x[:, :4])
    cls = x[:, 4 : 4 + nc]
    score = cls.max(axis=1)
    j = cls.argmax(axis=1)  # first maximum, as torch.max
    rows = np.concatenate([box, score[:, None], j[:, None].astype(np.float32), x[:, 4 + nc :]], axis=1)
    rows = rows[score > np.float32(conf)]
    if not len(rows):
        return rows
    rows = rows[torch_argsort_desc(rows[:, 4])]
    if len(rows) > MAX_NMS:
        rows = rows[:MAX_NMS]
        rows = rows[torch_argsort_desc(rows[:, 4])]
    offsets = rows[:, 5:6] * np.float32(0 if agnostic else MAX_WH)
    keep = nms(rows[:, :4] + offsets, rows[:, 4], iou)[:max_det]
    return rows[keep]


def letterbox_geometry(input_hw: tuple[int, int], image_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """(new_h, new_w, pad_top, pad_left) of the image letterboxed into ``input_hw``, as the LetterBox transform
    computes them: gain ``min(in / image)``, resized size ``round(side * gain)``, padding ``round(pad / 2 - 0.1)``
    before (Python's round: half to even)."""
    h0, w0 = image_hw
    gain = min(input_hw[0] / h0, input_hw[1] / w0)
    new_h, new_w = round(h0 * gain), round(w0 * gain)
    return new_h, new_w, round((input_hw[0] - new_h) / 2 - 0.1), round((input_hw[1] - new_w) / 2 - 0.1)


def scale_boxes(input_hw: tuple[int, int], boxes: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """Boxes from the letterboxed input back to the original image, clipped to it: the letterbox's own
    ``ratio_pad`` (per-axis ratios ``new / original``, the padding before) is subtracted and divided out."""
    h0, w0 = image_hw
    new_h, new_w, pad_y, pad_x = letterbox_geometry(input_hw, image_hw)
    boxes = boxes.astype(np.float32).copy()
    boxes[:, [0, 2]] -= np.float32(pad_x)
    boxes[:, [1, 3]] -= np.float32(pad_y)
    boxes[:, [0, 2]] /= np.float32(new_w / w0)
    boxes[:, [1, 3]] /= np.float32(new_h / h0)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w0)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h0)
    return boxes


def resize(masks: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of (n, h, w) float32 maps (half-pixel centres, as ``F.interpolate(align_corners=False)``)."""
    out = np.empty((len(masks), *hw), np.float32)
    for i, m in enumerate(masks):
        out[i] = cv2.resize(np.ascontiguousarray(m), (hw[1], hw[0]), interpolation=cv2.INTER_LINEAR)
    return out


def scale_masks(masks: np.ndarray, input_hw: tuple[int, int], image_hw: tuple[int, int]) -> np.ndarray:
    """(n, mh, mw) prototype-resolution logits to (n, h0, w0).

    The letterbox padding, ``pad_top`` / ``pad_left`` input pixels before the image, is a fractional number of
    prototype pixels when it is not a multiple of the prototypes' stride: the logits are first upsampled
    (bilinear) by the smallest factor f in 1, 2, 4, ... that puts every edge of the image on a whole pixel,
    then the padding is cropped as ``scale_masks`` does at that size (gain ``min(size / image)``, padding
    ``size - round(side * gain)`` split ``round(pad / 2 - 0.1)`` before, ``round(pad / 2 + 0.1)`` after), and
    the rest is resized bilinearly to the image.
    """
    _, mh, mw = masks.shape
    h0, w0 = image_hw
    stride = input_hw[0] // mh
    new_h, new_w, top, left = letterbox_geometry(input_hw, image_hw)
    edges = (top, left, top + new_h, left + new_w)
    f = next(f for f in range(1, stride + 1) if stride % f == 0 and all(e * f % stride == 0 for e in edges))
    if f > 1:
        masks = resize(masks, (mh * f, mw * f))
        mh, mw = mh * f, mw * f
    gain = min(mh / h0, mw / w0)
    pad_w, pad_h = (mw - round(w0 * gain)) / 2, (mh - round(h0 * gain)) / 2
    top, left = round(pad_h - 0.1), round(pad_w - 0.1)
    bottom, right = mh - round(pad_h + 0.1), mw - round(pad_w + 0.1)
    return resize(masks[:, top:bottom, left:right], image_hw)


def crop_mask(masks: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """Zero each mask outside its box (pixel index r kept where x1 <= r < x2, rows likewise)."""
    _, h, w = masks.shape
    x1, y1, x2, y2 = (boxes[:, k, None, None] for k in range(4))
    r = np.arange(w, dtype=np.float32)[None, None, :]
    c = np.arange(h, dtype=np.float32)[None, :, None]
    return masks * ((r >= x1) & (r < x2) & (c >= y1) & (c < y2))


def process_mask_native(
    protos: np.ndarray, coeffs: np.ndarray, boxes: np.ndarray, input_hw: tuple[int, int], image_hw: tuple[int, int]
) -> np.ndarray:
    """Full-image boolean masks from prototypes [nm, mh, mw], coefficients (n, nm) and boxes in image pixels."""
    nm, mh, mw = protos.shape
    logits = (coeffs.astype(np.float32) @ protos.astype(np.float32).reshape(nm, -1)).reshape(-1, mh, mw)
    logits = scale_masks(logits, input_hw, image_hw)
    return crop_mask(logits, boxes) > 0


def postprocess(
    pred: np.ndarray,
    protos: np.ndarray,
    input_hw: tuple[int, int],
    image_hw: tuple[int, int],
    nc: int,
    conf: float = 0.25,
    iou: float = 0.7,
    max_det: int = 300,
) -> Prediction:
    """The segment predictor's postprocess with ``retina_masks=True`` for one image.

    Args:
        pred: raw head output [4 + nc + nm, anchors], float32, boxes cx, cy, w, h in input pixels.
        protos: prototypes [nm, mh, mw], float32.
        input_hw: the letterboxed model input (height, width).
        image_hw: the original image (height, width).
    """
    rows = non_max_suppression(pred, nc, conf, iou, max_det)
    h0, w0 = image_hw
    if not len(rows):
        return Prediction(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                          np.zeros((0, h0, w0), bool))  # fmt: skip
    boxes = scale_boxes(input_hw, rows[:, :4], image_hw)
    masks = process_mask_native(protos, rows[:, 6:], boxes, input_hw, image_hw)
    keep = masks.any(axis=(1, 2))
    return Prediction(boxes[keep], rows[keep, 4], rows[keep, 5].astype(np.int64), masks[keep])
