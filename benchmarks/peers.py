"""Adapters that run the peers' postprocessing on the same raw YOLO-seg outputs edgeseg gets.

Two peers (see ``../shared/docs/PEERS.md``), each called only through its public API:

* :class:`UltralyticsPost`: the Ultralytics reference postprocess on CPU torch, one thread:
  ``ultralytics.utils.nms.non_max_suppression`` then ``ops.scale_boxes`` and
  ``ops.process_mask_native`` and the empty-mask drop, i.e. what the segmentation predictor does with
  ``retina_masks=True``. For int8 outputs it first dequantizes and denormalizes the boxes to input
  pixels, as Ultralytics' LiteRT/TFLite backends do.
* :class:`EdgefirstPost`: edgefirst-hal's ``Decoder.decode_proto`` (int8 decoded natively) and
  ``ImageProcessor.materialize_masks`` with ``MaskResolution.Scaled``: masks as box-sized tiles at
  original resolution. :func:`to_dense` turns the tiles into full-image masks, outside any timing.

Both take ``det`` (1, 4 + nc + nm, N) and ``protos`` (1, nm, h, w) or (1, h, w, nm), float32 or
int8, and return ``(boxes, scores, class_ids, masks)`` with boxes xyxy in original-image pixels.
Import this module in the peer environment only (never install the peers into edgeseg's own)::

    PYTHONPATH=../shared/tools/reference-env YOLO_OFFLINE=1 YOLO_CONFIG_DIR=$(mktemp -d) \\
        EDGEFIRST_DISABLE_GL=1 ../.peer-venv/bin/python benchmarks/peers.py [--time]

Run as a script it checks both adapters against the stored Ultralytics predictions
(``../shared/reference/ultralytics``) and, with ``--time``, times them.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from common import box_iou, median_ms

# Before any peer is imported: Ultralytics must neither phone home nor write settings to ~, and the
# HAL's rayon pool is sized once, at first use (one thread, like the other postprocessors here).
os.environ.setdefault("YOLO_OFFLINE", "1")
if "YOLO_CONFIG_DIR" not in os.environ:
    os.environ["YOLO_CONFIG_DIR"] = tempfile.mkdtemp(prefix="yolo-config-")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

Quant = dict[str, tuple[float, int]]

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@functools.cache
def available() -> dict[str, bool]:
    """Which peers import in this environment: ``{"ultralytics": bool, "edgefirst-hal": bool}``."""
    found = {}
    for name, modules in (("ultralytics", ("torch", "ultralytics.utils.nms")), ("edgefirst-hal", ("edgefirst_hal",))):
        try:
            for module in modules:
                __import__(module)
            found[name] = True
        except Exception:  # any import failure means "not usable here"
            found[name] = False
    return found


def letterbox_geometry(image_hw: tuple[int, int], input_hw: tuple[int, int]) -> tuple[int, int, int, int]:
    """``(new_h, new_w, pad_top, pad_left)`` of the Ultralytics letterbox of ``image_hw`` into ``input_hw``."""
    h, w = image_hw
    r = min(input_hw[0] / h, input_hw[1] / w)
    new_h, new_w = max(round(h * r), 1), max(round(w * r), 1)
    return new_h, new_w, round((input_hw[0] - new_h) / 2 - 0.1), round((input_hw[1] - new_w) / 2 - 0.1)


def _protos_nhwc(det_shape: tuple[int, ...], protos_shape: tuple[int, ...], num_classes: int) -> bool:
    """Whether ``protos`` is (1, h, w, nm): its channel count ``nm`` is what ``det`` has after box and classes."""
    nm = det_shape[1] - 4 - num_classes
    if protos_shape[1] == nm:
        return False
    if protos_shape[3] == nm:
        return True
    raise ValueError(f"protos {protos_shape} do not have the {nm} channels that det {det_shape} implies")


class UltralyticsPost:
    """The Ultralytics segmentation predictor's postprocess (``retina_masks=True``) on CPU torch.

    Args:
        num_classes: classes in the head (``nc`` passed to NMS; the rest after them are mask coefficients).
        input_hw: model input (height, width) the image was letterboxed into.
        quant: ``{"det": (scale, zero_point), "protos": (scale, zero_point)}`` for integer outputs, which
            are dequantized to float32 first as Ultralytics' LiteRT backend does; None for float outputs.
        normalized_boxes: boxes in ``det`` are 0..1 of the input (TFLite exports) and are multiplied by
            the input size first. Default: True when ``quant`` is given.
        protos_nhwc: layout of ``protos``; None guesses it from the shapes.
        threads: torch intra-op threads (process-wide setting).
        torchvision_nms: import torchvision, as the predictor does (``AutoBackend.warmup``), which makes
            ``non_max_suppression`` call ``torchvision.ops.nms``; in the reference environment that is the
            stand-in's Python loop. False leaves the choice to whatever is already imported (else
            Ultralytics' own ``TorchNMS.nms``).
    """

    def __init__(
        self,
        num_classes: int,
        input_hw: tuple[int, int],
        quant: Quant | None = None,
        normalized_boxes: bool | None = None,
        protos_nhwc: bool | None = None,
        threads: int = 1,
        torchvision_nms: bool = True,
    ) -> None:
        import torch

        if torchvision_nms:
            import torchvision  # noqa: F401  (switches ultralytics' NMS to torchvision.ops.nms)
        from ultralytics.utils import nms, ops

        torch.set_num_threads(threads)
        self.torch, self.nms, self.ops = torch, nms, ops
        self.num_classes = num_classes
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.quant = quant
        self.normalized_boxes = quant is not None if normalized_boxes is None else normalized_boxes
        self.protos_nhwc = protos_nhwc

    def __call__(
        self, det: np.ndarray, protos: np.ndarray, image_hw: tuple[int, int], conf: float, iou: float, max_det: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Boxes (K, 4) xyxy in original pixels, scores (K,), class ids (K,), masks (K, H, W) bool."""
        torch, ops = self.torch, self.ops
        nhwc = _protos_nhwc(det.shape, protos.shape, self.num_classes) if self.protos_nhwc is None else self.protos_nhwc
        if self.quant is not None:  # what the LiteRT backend does to full-integer outputs
            scale, zero_point = self.quant["det"]
            det = (det.astype(np.float32) - zero_point) * np.float32(scale)
            scale, zero_point = self.quant["protos"]
            protos = (protos.astype(np.float32) - zero_point) * np.float32(scale)
        elif self.normalized_boxes:
            det = det.copy()  # denormalized in place below: not the caller's array
        if self.normalized_boxes:
            det[:, [0, 2]] *= self.input_hw[1]
            det[:, [1, 3]] *= self.input_hw[0]
        if nhwc:
            protos = np.transpose(protos, (0, 3, 1, 2))  # NHWC -> NCHW view, as the backend does
        image_hw = (int(image_hw[0]), int(image_hw[1]))
        with torch.inference_mode():
            pred = self.nms.non_max_suppression(
                torch.as_tensor(det), conf, iou, None, False, max_det=max_det, nc=self.num_classes
            )[0]
            if pred.shape[0] == 0:
                return (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros(0, np.int64),
                        np.zeros((0, *image_hw), bool))  # fmt: skip
            pred[:, :4] = ops.scale_boxes(self.input_hw, pred[:, :4], image_hw)
            masks = ops.process_mask_native(torch.as_tensor(protos)[0], pred[:, 6:], pred[:, :4], image_hw)
            keep = masks.amax((-2, -1)) > 0  # the predictor keeps only detections with a mask
            if not keep.all():
                pred, masks = pred[keep], masks[keep]
        out = pred.numpy()
        return out[:, :4], out[:, 4], out[:, 5].astype(np.int64), masks.numpy().view(np.bool_)


class EdgefirstPost:
    """edgefirst-hal: ``Decoder.decode_proto`` then ``ImageProcessor.materialize_masks`` at original resolution.

    Integer outputs are decoded natively (no dequantization in Python). NMS is class-aware like
    Ultralytics' default (the HAL's own default is class-agnostic). The HAL keeps its pre-NMS top-k
    (300 by default) unless ``pre_nms_top_k`` is given (0 = no limit).

    Args:
        num_classes: classes in the head.
        input_hw: model input (height, width) the image was letterboxed into.
        quant: ``{"det": (scale, zero_point), "protos": (scale, zero_point)}`` for integer outputs.
        normalized_boxes: boxes in ``det`` are 0..1 of the input. Default: True when ``quant`` is given.
        protos_nhwc: layout of ``protos``; None guesses it from the shapes.
        pre_nms_top_k: the HAL's cap on candidates entering NMS; None keeps the HAL default.
        class_aware: class-aware NMS (Ultralytics' default) rather than class-agnostic.
    """

    def __init__(
        self,
        num_classes: int,
        input_hw: tuple[int, int],
        quant: Quant | None = None,
        normalized_boxes: bool | None = None,
        protos_nhwc: bool | None = None,
        pre_nms_top_k: int | None = None,
        class_aware: bool = True,
    ) -> None:
        import edgefirst_hal as ef

        self.ef = ef
        self.num_classes = num_classes
        self.input_hw = (int(input_hw[0]), int(input_hw[1]))
        self.quant = quant
        self.normalized_boxes = quant is not None if normalized_boxes is None else normalized_boxes
        self.protos_nhwc = protos_nhwc
        self.pre_nms_top_k = pre_nms_top_k
        self.nms = ef.Nms.ClassAware if class_aware else ef.Nms.ClassAgnostic
        self.processor = ef.ImageProcessor()
        self._pipes: dict[tuple, list] = {}
        # Build the decoder for the usual head now (strides 8/16/32, protos at 1/4), not in the first call.
        ih, iw = self.input_hw
        n = sum((ih // s) * (iw // s) for s in (8, 16, 32))
        dtype = np.dtype(np.int8 if quant is not None else np.float32)
        nhwc = bool(protos_nhwc) if protos_nhwc is not None else quant is not None
        pshape = (1, ih // 4, iw // 4, 32) if nhwc else (1, 32, ih // 4, iw // 4)
        self._pipe((1, 4 + num_classes + 32, n), pshape, dtype, dtype)

    def _pipe(self, det_shape: tuple, protos_shape: tuple, det_dtype: np.dtype, protos_dtype: np.dtype) -> list:
        """Decoder, input tensors and last thresholds for one output geometry (cached)."""
        key = (det_shape, protos_shape, det_dtype, protos_dtype)
        pipe = self._pipes.get(key)
        if pipe is not None:
            return pipe
        ef, dn = self.ef, self.ef.DimName
        nhwc = self.protos_nhwc
        if nhwc is None:
            nhwc = _protos_nhwc(det_shape, protos_shape, self.num_classes)
        _, features, boxes = det_shape
        if nhwc:
            _, ph, pw, nm = protos_shape
            pdims = [(dn.Batch, 1), (dn.Height, ph), (dn.Width, pw), (dn.NumProtos, nm)]
        else:
            _, nm, ph, pw = protos_shape
            pdims = [(dn.Batch, 1), (dn.NumProtos, nm), (dn.Height, ph), (dn.Width, pw)]
        # Named dims (a plain shape= is read as NHWC). The decoder divides pixel boxes by input_dims
        # before cropping masks: without it they come back 1x1.
        det_out = ef.Output.detection(dshape=[(dn.Batch, 1), (dn.NumFeatures, features), (dn.NumBoxes, boxes)])
        det_out = det_out.with_normalized(self.normalized_boxes)
        protos_out = ef.Output.protos(dshape=pdims)
        if self.quant is not None:
            det_out = det_out.with_quantization(float(self.quant["det"][0]), int(self.quant["det"][1]))
            protos_out = protos_out.with_quantization(float(self.quant["protos"][0]), int(self.quant["protos"][1]))
        ih, iw = self.input_hw
        decoder = ef.Decoder.new_from_outputs([det_out, protos_out], nms=self.nms, input_dims=(iw, ih))
        if self.pre_nms_top_k is not None:
            decoder.pre_nms_top_k = self.pre_nms_top_k
        tensors = [
            ef.Tensor(list(det_shape), dtype=np.dtype(det_dtype).name),
            ef.Tensor(list(protos_shape), dtype=np.dtype(protos_dtype).name),
        ]
        pipe = self._pipes[key] = [decoder, tensors, None]
        return pipe

    def __call__(
        self, det: np.ndarray, protos: np.ndarray, image_hw: tuple[int, int], conf: float, iou: float, max_det: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[np.ndarray]]:
        """Boxes (K, 4) xyxy in original pixels (clipped), scores (K,), class ids (K,), and the HAL's masks.

        The masks are what the HAL returns: a list of K uint8 (h, w, 1) tiles, 0 or 255, each covering
        its box (rounded) at original resolution; :func:`to_dense` places them on full-size masks.
        """
        ef = self.ef
        pipe = self._pipe(det.shape, protos.shape, det.dtype, protos.dtype)
        decoder, (det_t, protos_t), last = pipe
        if last != (conf, iou, max_det):
            decoder.score_threshold, decoder.iou_threshold, decoder.max_det = conf, iou, max_det
            pipe[2] = (conf, iou, max_det)
        det_t.from_numpy(det)
        protos_t.from_numpy(protos)
        boxes, scores, classes, proto_data = decoder.decode_proto([det_t, protos_t], max_boxes=max_det)

        h, w = int(image_hw[0]), int(image_hw[1])
        ih, iw = self.input_hw
        new_h, new_w, top, left = letterbox_geometry((h, w), self.input_hw)
        tiles: list[np.ndarray] = []
        if len(boxes) and proto_data is not None:
            letterbox = (left / iw, top / ih, (left + new_w) / iw, (top + new_h) / ih)
            tiles = self.processor.materialize_masks(
                boxes, scores, classes, proto_data, letterbox=letterbox, resolution=ef.MaskResolution.Scaled(w, h)
            )
        # Boxes come back normalized to the model input and unclipped: undo the letterbox, then clip.
        px = boxes * np.array([iw, ih, iw, ih], np.float32) - np.array([left, top, left, top], np.float32)
        px /= np.array([new_w / w, new_h / h, new_w / w, new_h / h], np.float32)
        np.clip(px[:, 0::2], 0, w, out=px[:, 0::2])
        np.clip(px[:, 1::2], 0, h, out=px[:, 1::2])
        return px, scores, classes, tiles


def to_dense(boxes: np.ndarray, tiles: list[np.ndarray], image_hw: tuple[int, int]) -> np.ndarray:
    """Full-size (K, H, W) bool masks from the HAL's box-sized tiles (not part of any timing).

    A tile starts at the rounded (half away from zero) top-left corner of its box in original pixels,
    which is where ``materialize_masks`` cut it.
    """
    h, w = int(image_hw[0]), int(image_hw[1])
    dense = np.zeros((len(tiles), h, w), bool)
    for i, (box, tile) in enumerate(zip(boxes, tiles)):
        th, tw = tile.shape[:2]
        x0 = min(max(int(np.floor(float(box[0]) + 0.5)), 0), max(w - tw, 0))
        y0 = min(max(int(np.floor(float(box[1]) + 0.5)), 0), max(h - th, 0))
        dense[i, y0 : y0 + th, x0 : x0 + tw] = tile[: h - y0, : w - x0, 0] > 127
    return dense


# ---------------------------------------------------------------------------------------------------
# Self-check: both adapters against the stored Ultralytics predictions, and optional timings.
# ---------------------------------------------------------------------------------------------------


def _letterbox_image(image: np.ndarray, input_hw: tuple[int, int]) -> np.ndarray:
    """BGR uint8 image letterboxed Ultralytics-style (bilinear, centred, grey 114)."""
    import cv2

    new_h, new_w, top, left = letterbox_geometry(image.shape[:2], input_hw)
    canvas = np.full((*input_hw, 3), 114, np.uint8)
    if (new_h, new_w) != image.shape[:2]:
        image = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas[top : top + new_h, left : left + new_w] = image
    return canvas


class _Model:
    """Raw outputs of one model (ONNX Runtime or LiteRT) and how to read them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.quant: Quant | None = None
        if path.suffix == ".onnx":
            import onnxruntime as ort

            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            shape = self.session.get_inputs()[0].shape
            self.input_hw = (int(shape[2]), int(shape[3]))
        else:
            from ai_edge_litert.interpreter import Interpreter

            self.interpreter = Interpreter(model_path=str(path))
            self.interpreter.allocate_tensors()
            self.input = self.interpreter.get_input_details()[0]
            self.input_hw = (int(self.input["shape"][1]), int(self.input["shape"][2]))
            outs = self.interpreter.get_output_details()
            self.det_index = next(o["index"] for o in outs if len(o["shape"]) == 3)
            self.protos_index = next(o["index"] for o in outs if len(o["shape"]) == 4)
            if np.dtype(outs[0]["dtype"]).kind == "i":
                q = {o["index"]: o["quantization"] for o in outs}
                self.quant = {"det": q[self.det_index], "protos": q[self.protos_index]}

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(det, protos) for a BGR image, letterboxed and scaled to 0..1 RGB as Ultralytics feeds it."""
        x = _letterbox_image(image, self.input_hw)[None, :, :, ::-1] / np.float32(255)  # NHWC RGB
        if self.path.suffix == ".onnx":
            det, protos = self.session.run(
                None, {self.session.get_inputs()[0].name: np.ascontiguousarray(x.transpose(0, 3, 1, 2))}
            )
            return det, protos
        dtype = np.dtype(self.input["dtype"])
        if dtype.kind == "i":  # full-integer input, quantized as Ultralytics' LiteRT backend does
            scale, zero_point = self.input["quantization"]
            x = (x / scale + zero_point).clip(np.iinfo(dtype).min, np.iinfo(dtype).max)
        self.interpreter.set_tensor(self.input["index"], np.ascontiguousarray(x).astype(dtype))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.det_index), self.interpreter.get_tensor(self.protos_index)


def _reference(path: Path, names: list[str]) -> dict[int, list[tuple[int, np.ndarray, float, np.ndarray]]]:
    """Stored predictions per image id: (class index, xyxy box, score, mask) from a COCO results file."""
    import json

    from pycocotools import mask as mask_utils

    categories = json.loads((SHARED / "data" / "coco-val-mini" / "instances_val2017.json").read_text())["categories"]
    to_index = {c["id"]: i for i, c in enumerate(sorted(categories, key=lambda c: c["id"]))}
    wanted = {int(Path(n).stem) for n in names}
    out: dict[int, list] = {i: [] for i in wanted}
    for r in json.loads(path.read_text()):
        if r["image_id"] in wanted:
            x, y, bw, bh = r["bbox"]
            rle = r["segmentation"]
            mask = mask_utils.decode({"size": rle["size"], "counts": rle["counts"].encode()}).astype(bool)
            out[r["image_id"]].append((to_index[r["category_id"]], np.array([x, y, x + bw, y + bh]), r["score"], mask))
    return out


def _compare(
    ref: list, boxes: np.ndarray, classes: np.ndarray, masks: np.ndarray
) -> tuple[int, list[float], list[float]]:
    """Greedy same-class matching by box IoU: (matched count, box errors in px, mask IoUs) of the matches."""
    if not ref or not len(boxes):
        return 0, [], []
    ious = box_iou(np.stack([r[1] for r in ref]), boxes.astype(np.float64))
    ious[np.array([r[0] for r in ref])[:, None] != classes[None, :].astype(np.int64)] = -1
    matched, errors, mask_ious = 0, [], []
    while ious.size and ious.max() > 0.5:
        i, j = np.unravel_index(np.argmax(ious), ious.shape)
        ious[i, :], ious[:, j] = -1, -1
        matched += 1
        errors.append(float(np.abs(ref[i][1] - boxes[j]).max()))
        union = np.logical_or(ref[i][3], masks[j]).sum()
        mask_ious.append(float(np.logical_and(ref[i][3], masks[j]).sum() / union) if union else 1.0)
    return matched, errors, mask_ious


def _verify(runs: list, ref: dict, peers: dict[str, Callable], conf: float, iou: float, max_det: int) -> list[tuple]:
    """Per peer: (peer, images, same count, ref dets, peer dets, matched, max / >1 px box error, mask IoUs)."""
    rows = []
    for name, post in peers.items():
        same = n_ref = n_out = matched = 0
        errors, mask_ious = [], []
        for path, hw, det, protos in runs:
            boxes, _, classes, masks = post(det, protos, hw, conf, iou, max_det)
            if isinstance(post, EdgefirstPost):
                masks = to_dense(boxes, masks, hw)
            r = ref[int(path.stem)]
            m, e, ious = _compare(r, boxes, classes, masks)
            same, n_ref, n_out, matched = same + (len(r) == len(boxes)), n_ref + len(r), n_out + len(boxes), matched + m
            errors, mask_ious = errors + e, mask_ious + ious
        rows.append((name, len(runs), same, n_ref, n_out, matched, max(errors, default=0.0),
                     sum(e > 1 for e in errors), float(np.mean(mask_ious)), float(np.min(mask_ious))))  # fmt: skip
    return rows


def _time(runs: list, peers: dict[str, Callable], conf: float, iou: float, max_det: int, repeats: int) -> list[tuple]:
    """Per peer: (peer, images, detections per image, mean and median of the per-image medians in ms)."""
    rows = []
    for name, post in peers.items():
        ms, dets = [], []
        for _, hw, det, protos in runs:
            dets.append(len(post(det, protos, hw, conf, iou, max_det)[0]))
            call = functools.partial(post, det, protos, hw, conf, iou, max_det)
            ms.append(median_ms(call, repeats, warmup=True))
        rows.append((name, len(runs), float(np.mean(dets)), float(np.mean(ms)), float(np.median(ms))))
    return rows


def main() -> int:
    """Verify both adapters against the reference predictions; with ``--time`` also time them."""
    import cv2

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=SHARED / "data" / "coco-val-mini" / "images")
    parser.add_argument("--check", type=int, default=5, help="images to check against the reference (first N)")
    parser.add_argument("--time", action="store_true", help="also time the adapters")
    parser.add_argument("--time-images", type=int, default=20, help="images to time on (first N)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per image (median)")
    parser.add_argument(
        "--no-torchvision", action="store_true", help="let Ultralytics use its own TorchNMS, not torchvision.ops.nms"
    )
    args = parser.parse_args()

    have = available()
    print("peers available:", have)
    if not all(have.values()):
        return 1
    # label: (model, stored Ultralytics predictions at conf 0.25)
    models = {
        "fp32 yolov8n-seg.onnx": ("yolov8n-seg.onnx", "yolov8n-seg_conf0.25.json"),
        "int8 yolo11n-seg-int8.tflite": ("yolo11n-seg-int8.tflite", "yolo11n-seg-int8_conf0.25.json"),
    }
    paths = sorted(p for p in args.images.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    paths = paths[: max(args.check, args.time_images if args.time else 0)]
    nc, iou, max_det = 80, 0.7, 300

    checks, timings = [], []
    for label, (model_name, ref_name) in models.items():
        model = _Model(SHARED / "models" / model_name)
        runs = []
        for path in paths:
            image = cv2.imread(str(path))
            runs.append((path, image.shape[:2], *model(image)))
        peers: dict[str, Callable] = {
            "ultralytics": UltralyticsPost(
                nc, model.input_hw, quant=model.quant, torchvision_nms=not args.no_torchvision
            ),
            "edgefirst-hal": EdgefirstPost(nc, model.input_hw, quant=model.quant),
        }
        ref = _reference(SHARED / "reference" / "ultralytics" / ref_name, [p.name for p in paths[: args.check]])
        checks += [(label, *row) for row in _verify(runs[: args.check], ref, peers, 0.25, iou, max_det)]
        if args.time:
            for setting, conf in (("conf 0.25", 0.25), ("conf 0.001, max_det 300", 0.001)):
                if conf < 0.01:
                    peers["edgefirst-hal, no pre-NMS top-k"] = EdgefirstPost(
                        nc, model.input_hw, quant=model.quant, pre_nms_top_k=0
                    )
                rows = _time(runs[: args.time_images], peers, conf, iou, max_det, args.repeats)
                timings += [(label, setting, *row) for row in rows]

    print(f"\nagreement with the stored Ultralytics predictions (conf 0.25, iou {iou}, first {args.check} images)\n")
    print("| outputs | peer | images with same count | detections ref / peer | matched | max box err px "
          "| boxes > 1 px off | mean mask IoU | min mask IoU |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for label, name, n, same, n_ref, n_out, matched, err, off, mean_iou, min_iou in checks:
        print(f"| {label} | {name} | {same}/{n} | {n_ref} / {n_out} | {matched} | {err:.3f} | {off} "
              f"| {mean_iou:.4f} | {min_iou:.4f} |")  # fmt: skip
    if timings:
        print(f"\npostprocess time per image, 1 thread (median of {args.repeats} repeats per image)\n")
        print("| outputs | setting | peer | images | detections/img | mean of medians ms | median ms |")
        print("|---|---|---|---|---|---|---|")
        for label, setting, name, n, dets, mean_ms, med_ms in timings:
            print(f"| {label} | {setting} | {name} | {n} | {dets:.1f} | {mean_ms:.2f} | {med_ms:.2f} |")
    # Same detections everywhere; a box may differ by one int8 step where quantized scores tie (see above).
    ok = all(same == n and matched == n_ref == n_out and mean_iou > 0.95 for _, _, n, same, n_ref, n_out, matched, _,
             _, mean_iou, _ in checks)  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
