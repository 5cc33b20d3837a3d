"""A numpy transcription of the YOLOv5-seg predict postprocess (``segment/predict.py --retina-masks``), written
from reading the official code (ultralytics/yolov5 ``utils/general.py`` ``non_max_suppression`` and
``scale_boxes``, ``utils/segment/general.py`` ``process_mask_native`` and ``crop_mask``) without copying or
importing it (it is AGPL) and without torch:

- ``non_max_suppression`` (predict.py's settings: conf 0.25, IoU 0.45, max_det 1000, ``multi_label`` False,
  ``nm`` 32): rows whose objectness (column 4) is above conf; everything after it multiplied by the objectness
  (float32): the class probabilities, and the mask coefficients too, which leaves binary masks unchanged;
  cx, cy, w, h to x1, y1, x2, y2; each row's best class (the first maximum) kept when its score is above conf;
  best first (``max_nms`` 30000 at most, PyTorch's ``argsort(descending=True)``); torchvision NMS on boxes
  offset by ``class * max_wh`` (7680); the first ``max_det`` kept.
- ``scale_boxes``: one gain ``min(input / image)``, padding ``(input - image * gain) / 2`` (unrounded)
  subtracted, divided by the gain, clipped to the image. predict.py then rounds the boxes to whole pixels
  (``.round()``) before cropping the masks with them; ``Prediction.boxes`` keeps them unrounded for comparison
  (edgeseg does not round), the masks are cropped with the rounded ones, as YOLOv5 does.
- ``process_mask_native``: coefficients @ prototypes (sigmoid > 0.5 is logit > 0); the letterbox padding cropped
  at prototype resolution (gain ``min(mh / h0, mw / w0)``, padding ``(m - side * gain) / 2``, ``int()`` of it
  before and of ``m - pad`` after); bilinear resize (``align_corners=False``) to the original image;
  ``crop_mask`` zeroes everything outside the box (column ``r`` kept where ``x1 <= r < x2``, rows likewise).
- YOLOv5 keeps instances whose mask is empty; ``postprocess(drop_empty=True)`` drops them as edgeseg does.

Helpers shared with the YOLOv8 transcription (sort order, torchvision NMS, bilinear resize) come from
``reference_yolo``.
"""

from __future__ import annotations

import numpy as np

import reference_yolo
from reference_yolo import MAX_NMS, MAX_WH, Prediction, crop_mask, nms, resize, torch_argsort_desc, xywh2xyxy

CONF, IOU, MAX_DET = 0.25, 0.45, 1000  # segment/predict.py defaults


def non_max_suppression(
    pred: np.ndarray, nm: int = 32, conf: float = CONF, iou: float = IOU, max_det: int = MAX_DET
) -> np.ndarray:
    """Rows x1, y1, x2, y2, score, class, mask coefficients (input pixels), best first, from one image's
    output ``pred`` [anchors, 5 + nc + nm] (float32, boxes cx, cy, w, h in input pixels)."""
    x = np.asarray(pred, np.float32)
    nc = x.shape[1] - nm - 5
    x = x[x[:, 4] > np.float32(conf)].copy()
    if not len(x):
        return np.zeros((0, 6 + nm), np.float32)
    x[:, 5:] *= x[:, 4:5]  # score = obj * cls; YOLOv5 scales the mask coefficients by obj too (a positive
    # factor: the sign of every mask logit, so the binary mask, is unchanged)
    box = xywh2xyxy(x[:, :4])
    mask = x[:, 5 + nc :]
    cls = x[:, 5 : 5 + nc]
    score = cls.max(axis=1)
    j = cls.argmax(axis=1)  # the first maximum, as torch.max
    rows = np.concatenate([box, score[:, None], j[:, None].astype(np.float32), mask], axis=1)
    rows = rows[score > np.float32(conf)]
    if not len(rows):
        return rows
    rows = rows[torch_argsort_desc(rows[:, 4])[:MAX_NMS]]
    offsets = rows[:, 5:6] * np.float32(MAX_WH)
    keep = nms(rows[:, :4] + offsets, rows[:, 4], iou)[:max_det]
    return rows[keep]


def scale_boxes(input_hw: tuple[int, int], boxes: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """YOLOv5's ``scale_boxes``: from the letterboxed input to the image with one gain, clipped."""
    h0, w0 = image_hw
    gain = min(input_hw[0] / h0, input_hw[1] / w0)
    pad_x, pad_y = (input_hw[1] - w0 * gain) / 2, (input_hw[0] - h0 * gain) / 2
    boxes = boxes.astype(np.float32).copy()
    boxes[:, [0, 2]] -= np.float32(pad_x)
    boxes[:, [1, 3]] -= np.float32(pad_y)
    boxes[:, :4] /= np.float32(gain)
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, w0)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, h0)
    return boxes


def process_mask_native(protos: np.ndarray, coeffs: np.ndarray, boxes: np.ndarray, image_hw: tuple[int, int]):
    """Full-image boolean masks from prototypes [nm, mh, mw], coefficients (n, nm) and boxes in image pixels."""
    nm, mh, mw = protos.shape
    h0, w0 = image_hw
    logits = (coeffs.astype(np.float32) @ protos.astype(np.float32).reshape(nm, -1)).reshape(-1, mh, mw)
    gain = min(mh / h0, mw / w0)
    pad_w, pad_h = (mw - w0 * gain) / 2, (mh - h0 * gain) / 2
    top, left = int(pad_h), int(pad_w)
    bottom, right = int(mh - pad_h), int(mw - pad_w)
    logits = resize(logits[:, top:bottom, left:right], image_hw)
    return crop_mask(logits, boxes) > 0


def postprocess(
    pred: np.ndarray,
    protos: np.ndarray,
    input_hw: tuple[int, int],
    image_hw: tuple[int, int],
    drop_empty: bool = True,
    geometry: str = "yolov5",
    **settings: float,
) -> Prediction:
    """YOLOv5-seg's predict postprocess with ``--retina-masks`` for one image.

    Args:
        pred: output0 of one image [anchors, 5 + nc + nm], float32, boxes cx, cy, w, h in input pixels.
        protos: prototypes [nm, mh, mw], float32.
        input_hw: the letterboxed model input (height, width).
        image_hw: the original image (height, width).
        drop_empty: drop instances whose mask is empty (edgeseg does; YOLOv5 does not).
        geometry: ``"yolov5"``: boxes and masks brought to the image as YOLOv5 does (``scale_boxes`` with one
            gain and the unrounded padding, boxes rounded for the mask crop, the padding cropped at prototype
            resolution with ``int()``); ``"exact"``: the exact inverse of the letterbox, as Ultralytics 8 does
            it (``reference_yolo.scale_boxes`` and ``reference_yolo.process_mask_native``, unrounded boxes).
            YOLOv5's inverse is off by up to a pixel of the input for boxes and up to a prototype pixel (4 input
            pixels) for masks; edgeseg's is exact.
        settings: ``conf``, ``iou``, ``max_det`` overrides.
    """
    nm = protos.shape[0]
    rows = non_max_suppression(pred, nm, **settings)
    h0, w0 = image_hw
    if not len(rows):
        return Prediction(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                          np.zeros((0, h0, w0), bool))  # fmt: skip
    if geometry == "exact":
        boxes = reference_yolo.scale_boxes(input_hw, rows[:, :4], image_hw)
        masks = reference_yolo.process_mask_native(protos, rows[:, 6:], boxes, input_hw, image_hw)
    else:
        boxes = scale_boxes(input_hw, rows[:, :4], image_hw)
        masks = process_mask_native(protos, rows[:, 6:], np.round(boxes), image_hw)
    keep = masks.any(axis=(1, 2)) if drop_empty else np.ones(len(rows), bool)
    return Prediction(boxes[keep], rows[keep, 4], rows[keep, 5].astype(np.int64), masks[keep])
