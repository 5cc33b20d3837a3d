#!/usr/bin/env python3
"""Fuzz the model families' core functions: the NMS variants, mask pasting/cropping, dynamic masks, SOLOv2.

Each input picks one of ``fast_nms``, ``matrix_nms``, ``mask_matrix_nms``, ``mask_nms``,
``pairwise_mask_iou``, ``paste_roi_masks``, ``crop_frame_masks``, ``dynamic_masks``, ``decode_solov2``, the split
decoders, and the whole-postprocess entries ``postprocess_yolo`` and ``postprocess_dets`` (fuzzed layouts, output
shapes, dtypes and memory layouts) and the layout parser ``yolo_layout``,
and builds its arguments with fuzzlib: mostly small well-formed values (so that the deep paths run),
sometimes wrong dtypes, shapes, layouts, NaN/inf and huge or negative sizes. A call must raise
ValueError or return a well-formed result: NMS keep indices int64, unique and in range, at most
``max_det``, scores float32 and finite where the inputs were; IoU matrices (N, N) in [0, 1] with a
symmetric off-diagonal; MaskSets with increasing keep indices, crops inside the image, offsets
matching the packed sizes, zero padding bits and areas equal to the set bits. No reference comparison
(the unit tests do that).

    python fuzz/fuzz_families.py fuzz/corpus/families -max_total_time=60
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
with atheris.instrument_imports(include=["fuzzlib"]):
    import fuzzlib

import fuzzcheck
import numpy as np

from edgeseg import _core

FUNCTIONS = (
    "fast_nms",
    "matrix_nms",
    "mask_matrix_nms",
    "mask_nms",
    "pairwise_mask_iou",
    "paste_roi_masks",
    "crop_frame_masks",
    "dynamic_masks",
    "decode_solov2",
    "decode_yolo_split",
    "decode_yolov5_split",
    "decode_yolo_scored",
    "postprocess_yolo",
    "postprocess_dets",
    "yolo_layout",
)
KERNELS = ("gaussian", "linear")


@atheris.instrument_func
def test_one_input(data: bytes) -> None:
    """One call of one family function built from ``data``."""
    fdp = atheris.FuzzedDataProvider(data)
    name = fuzzlib.pick(fdp, FUNCTIONS)
    globals()["fuzz_" + name](fdp)


# ---------------------------------------------------------------------------------------------------
# Arguments
# ---------------------------------------------------------------------------------------------------


def fuzz_boxes(fdp: atheris.FuzzedDataProvider, n: int, w: int = 64, h: int = 64) -> Any:
    """(n, 4) float32 boxes: fuzzed, or mostly proper boxes in (and a little around) a w x h image."""
    boxes = fuzzlib.fuzz_array(fdp, (np.float32,), (n, 4))
    if isinstance(boxes, np.ndarray) and boxes.dtype == np.float32 and boxes.ndim == 2 and fdp.ConsumeBool():
        rng = np.random.default_rng(fdp.ConsumeIntInRange(0, 2**32 - 1))
        xy = rng.uniform(-0.2, 1, (n, 2)) * [w, h]
        wh = rng.uniform(0, 0.8, (n, 2)) * [w, h]
        b = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        if fdp.ConsumeBool():
            b = np.round(b / 4) * 4  # ties and touching boxes
        boxes = b
    return boxes


def fuzz_scores(fdp: atheris.FuzzedDataProvider, shape: tuple[int, ...]) -> Any:
    """float32 scores, mostly probabilities (with ties)."""
    scores = fuzzlib.fuzz_array(fdp, (np.float32,), shape)
    if isinstance(scores, np.ndarray) and scores.dtype == np.float32 and fdp.ConsumeBool():
        rng = np.random.default_rng(fdp.ConsumeIntInRange(0, 2**32 - 1))
        scores = (np.round(rng.random(scores.shape) * 8) / 8).astype(np.float32)
    return scores


def fuzz_classes(fdp: atheris.FuzzedDataProvider, n: int) -> Any:
    """None, or (n,) int32 class ids (mostly a few small ones)."""
    if fdp.ConsumeBool():
        return None
    classes = fuzzlib.fuzz_array(fdp, (np.int32,), (n + 1 if fuzzlib.rarely(fdp, 16) else n,))
    if isinstance(classes, np.ndarray) and classes.dtype == np.int32 and fdp.ConsumeBool():
        classes = np.array(classes) % 3
    return classes


def fuzz_packed(fdp: atheris.FuzzedDataProvider, n: int) -> tuple[Any, Any, Any]:
    """(rects, offsets, bits) of n bit-packed crops in a 48 x 48 image: mostly well formed."""
    rng = np.random.default_rng(fdp.ConsumeIntInRange(0, 2**32 - 1))
    xy = rng.integers(0, 40, (n, 2))
    wh = rng.integers(0, 20, (n, 2))
    wh = np.minimum(wh, 48 - xy)
    rects = np.concatenate([xy, wh], 1).astype(np.int32)
    sizes = (rects[:, 2].astype(np.int64) + 7) // 8 * rects[:, 3]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    density = fuzzlib.pick(fdp, (0.5, 0.9, 0.1, 0.0, 1.0))
    bits = np.packbits(rng.random(int(offsets[-1]) * 8) < density, bitorder="little")
    mistake = fdp.ConsumeIntInRange(0, 15)
    if mistake == 15:
        rects = fuzzlib.fuzz_array(fdp, (np.int32,), (n, 4))
    elif mistake == 14:
        offsets = fuzzlib.fuzz_array(fdp, (np.int64,), (n + 1,))
    elif mistake == 13:
        bits = bits[: fdp.ConsumeIntInRange(0, max(len(bits) - 1, 0))]
    elif mistake == 12 and n:
        offsets = offsets.copy()
        offsets[fdp.ConsumeIntInRange(0, n)] += fuzzlib.fuzz_int(fdp, -9, 9)
    elif mistake == 11:
        bits = fuzzlib.fuzz_array(fdp, (np.uint8,), (len(bits),))
    else:
        rects = fuzzlib.layout_array(fdp, rects.reshape(-1), (n, 4), keep_values=True)
        offsets = fuzzlib.layout_array(fdp, offsets, (n + 1,), keep_values=True)
    return rects, offsets, bits


def fuzz_rows(fdp: atheris.FuzzedDataProvider, n: int, k: int) -> Any:
    """(n,) int64 rows into k masks, sometimes out of range or of another dtype."""
    if fuzzlib.rarely(fdp, 8):
        return fuzzlib.fuzz_array(fdp, (np.int64, np.int32), (n,))
    rng = np.random.default_rng(fdp.ConsumeIntInRange(0, 2**32 - 1))
    return rng.integers(0, max(k, 1), n).astype(np.int64)


def fuzz_letterbox(fdp: atheris.FuzzedDataProvider, dst: tuple[int, int], keep_ratio: bool = True) -> Any:
    """A letterbox of a small source image into ``dst`` (keep_ratio mostly)."""
    src = (fdp.ConsumeIntInRange(1, 80), fdp.ConsumeIntInRange(1, 80))
    mode = "keep_ratio" if keep_ratio and not fuzzlib.rarely(fdp, 8) else fuzzlib.pick(fdp, ("letterbox", "stretch"))
    return _core.make_letterbox(src[0], src[1], dst[0], dst[1], mode)


def good_or_bad(fdp: atheris.FuzzedDataProvider, good: tuple[Any, ...], bad: tuple[Any, ...]) -> Any:
    """One of ``good``, or one time in 8 one of ``bad`` (which must give ValueError or be handled)."""
    return fuzzlib.pick(fdp, bad) if fuzzlib.rarely(fdp, 8) else fuzzlib.pick(fdp, good)


def fuzz_kernel(fdp: atheris.FuzzedDataProvider) -> Any:
    """A Matrix NMS kernel name, now and then not one."""
    return good_or_bad(fdp, KERNELS, ("box", "", None, 1))


def fuzz_threshold(fdp: atheris.FuzzedDataProvider) -> float:
    """Mostly in [0, 1]; sometimes special."""
    return fuzzlib.fuzz_float(fdp) if fuzzlib.rarely(fdp, 8) else fdp.ConsumeFloatInRange(0.0, 1.0)


# ---------------------------------------------------------------------------------------------------
# One function each
# ---------------------------------------------------------------------------------------------------


@atheris.instrument_func
def fuzz_fast_nms(fdp: atheris.FuzzedDataProvider) -> None:
    n = fuzzlib.fuzz_dim(fdp, 60)
    matrix = fdp.ConsumeBool()
    c = fdp.ConsumeIntInRange(1, 4)
    boxes = fuzz_boxes(fdp, n)
    scores = fuzz_scores(fdp, (n, c) if matrix else (n,))
    classes = None if matrix and not fuzzlib.rarely(fdp, 8) else fuzz_classes(fdp, n)
    iou = fuzz_threshold(fdp)
    top_k = fuzzlib.fuzz_int(fdp, -1, 80)
    max_det = fuzzlib.fuzz_int(fdp, -1, 80)
    agnostic = fdp.ConsumeBool()
    conf = None if fdp.ConsumeBool() else fuzz_threshold(fdp)
    fuzzlib.debug("fast_nms", boxes=boxes, scores=scores, classes=classes, iou=iou, top_k=top_k, max_det=max_det)
    out = fuzzlib.value_error_or(lambda: _core.fast_nms(boxes, scores, classes, iou, top_k, max_det, agnostic, conf))
    if out is not None:
        columns = scores.shape[1] if isinstance(scores, np.ndarray) and scores.ndim == 2 else None
        check_nms(out, n, scores, max_det, columns)


@atheris.instrument_func
def fuzz_matrix_nms(fdp: atheris.FuzzedDataProvider) -> None:
    n = fuzzlib.fuzz_dim(fdp, 60)
    boxes = fuzz_boxes(fdp, n)
    scores = fuzz_scores(fdp, (n,))
    classes = fuzz_classes(fdp, n)
    args = matrix_args(fdp)
    fuzzlib.debug("matrix_nms", boxes=boxes, scores=scores, classes=classes, args=args)
    out = fuzzlib.value_error_or(lambda: _core.matrix_nms(boxes, scores, classes, *args))
    if out is not None:
        check_nms(out, n, scores, args[3], None, decayed=True)


def matrix_args(fdp: atheris.FuzzedDataProvider) -> tuple[Any, ...]:
    """kernel, sigma, pre_topk, max_det, filter_thr, agnostic."""
    kernel = fuzz_kernel(fdp)
    sigma = fuzzlib.fuzz_float(fdp) if fuzzlib.rarely(fdp, 6) else fdp.ConsumeFloatInRange(0.1, 4.0)
    pre_topk = fuzzlib.fuzz_int(fdp, -1, 80)
    max_det = fuzzlib.fuzz_int(fdp, -1, 80)
    filter_thr = fuzz_threshold(fdp) if fdp.ConsumeBool() else -1.0
    return kernel, sigma, pre_topk, max_det, filter_thr, fdp.ConsumeBool()


@atheris.instrument_func
def fuzz_mask_matrix_nms(fdp: atheris.FuzzedDataProvider) -> None:
    n = fuzzlib.fuzz_dim(fdp, 30)
    rects, offsets, bits = fuzz_packed(fdp, n)
    scores = fuzz_scores(fdp, (n,))
    classes = fuzz_classes(fdp, n)
    args = matrix_args(fdp)
    fuzzlib.debug("mask_matrix_nms", rects=rects, offsets=offsets, bits=bits, scores=scores, args=args)
    out = fuzzlib.value_error_or(lambda: _core.mask_matrix_nms(rects, offsets, bits, scores, classes, *args))
    if out is not None:
        check_nms(out, n, scores, args[3], None, decayed=True)


@atheris.instrument_func
def fuzz_mask_nms(fdp: atheris.FuzzedDataProvider) -> None:
    n = fuzzlib.fuzz_dim(fdp, 30)
    rects, offsets, bits = fuzz_packed(fdp, n)
    scores = fuzz_scores(fdp, (n,))
    classes = fuzz_classes(fdp, n)
    iou = fuzz_threshold(fdp)
    max_det = fuzzlib.fuzz_int(fdp, -1, 40)
    agnostic = fdp.ConsumeBool()
    fuzzlib.debug("mask_nms", rects=rects, offsets=offsets, bits=bits, scores=scores, iou=iou, max_det=max_det)
    out = fuzzlib.value_error_or(lambda: _core.mask_nms(rects, offsets, bits, scores, classes, iou, max_det, agnostic))
    if out is not None:
        check_nms(out, n, scores, max_det, None)


@atheris.instrument_func
def fuzz_pairwise_mask_iou(fdp: atheris.FuzzedDataProvider) -> None:
    n = fuzzlib.fuzz_dim(fdp, 30)
    rects, offsets, bits = fuzz_packed(fdp, n)
    fuzzlib.debug("pairwise_mask_iou", rects=rects, offsets=offsets, bits=bits)
    out = fuzzlib.value_error_or(lambda: _core.pairwise_mask_iou(rects, offsets, bits))
    if out is not None:
        check_iou(out, n)


@atheris.instrument_func
def fuzz_paste_roi_masks(fdp: atheris.FuzzedDataProvider) -> None:
    k, m = fuzzlib.fuzz_dim(fdp, 6), fuzzlib.fuzz_dim(fdp, 28)
    masks = fuzzlib.fuzz_array(fdp, (np.float32,), (k, m, m))
    if isinstance(masks, np.ndarray) and masks.dtype == np.float32 and masks.ndim == 3 and fdp.ConsumeBool():
        masks = np.clip(np.abs(np.asarray(masks)), 0, 1)  # probabilities
    n = fuzzlib.fuzz_dim(fdp, 12)
    rows = fuzz_rows(fdp, n, k)
    image_hw = (fuzzlib.fuzz_int(fdp, 1, 90), fuzzlib.fuzz_int(fdp, 1, 90))
    if max(image_hw) > 2**16:
        return  # boxes spanning a side of millions of pixels legitimately need memory in proportion
    boxes = fuzz_boxes(fdp, n, max(image_hw[1], 1), max(image_hw[0], 1))
    convention = good_or_bad(fdp, ("mmdet", "torchvision"), ("detectron", "", None))
    threshold, soft = fuzz_threshold(fdp), fdp.ConsumeBool()
    fuzzlib.debug("paste_roi_masks", masks=masks, rows=rows, boxes=boxes, image_hw=image_hw, convention=convention)
    out = fuzzlib.value_error_or(
        lambda: _core.paste_roi_masks(masks, rows, boxes, image_hw, convention, threshold, soft)
    )
    if out is not None:
        check_maskset(out, n, image_hw, soft, keep_all=True, finite_inputs=fuzzcheck_finite(masks))


@atheris.instrument_func
def fuzz_crop_frame_masks(fdp: atheris.FuzzedDataProvider) -> None:
    dst = (fdp.ConsumeIntInRange(1, 48), fdp.ConsumeIntInRange(1, 48))
    lb = fuzz_letterbox(fdp, dst, keep_ratio=fdp.ConsumeBool())
    k = fuzzlib.fuzz_dim(fdp, 5)
    shape = (k, *dst) if not fuzzlib.rarely(fdp, 8) else (k, fuzzlib.fuzz_dim(fdp, 48), fuzzlib.fuzz_dim(fdp, 48))
    masks = fuzzlib.fuzz_array(fdp, (np.float32, np.float32, np.uint8, np.bool_), shape)
    if isinstance(masks, np.ndarray) and masks.dtype == np.float32 and masks.ndim == 3 and fdp.ConsumeBool():
        masks = np.clip(np.asarray(masks), 0, 1)
    n = fuzzlib.fuzz_dim(fdp, 10)
    rows = fuzz_rows(fdp, n, k)
    boxes = fuzz_boxes(fdp, n, lb.src_w, lb.src_h)
    threshold, inclusive, soft = fuzz_threshold(fdp), fdp.ConsumeBool(), fdp.ConsumeBool()
    fuzzlib.debug("crop_frame_masks", masks=masks, rows=rows, boxes=boxes, src=(lb.src_h, lb.src_w), dst=dst)
    out = fuzzlib.value_error_or(lambda: _core.crop_frame_masks(masks, rows, boxes, lb, threshold, inclusive, soft))
    if out is not None:
        finite_inputs = not isinstance(masks, np.ndarray) or masks.dtype != np.float32 or fuzzcheck_finite(masks)
        check_maskset(out, n, (lb.src_h, lb.src_w), soft, keep_all=False, finite_inputs=finite_inputs)


@atheris.instrument_func
def fuzz_dynamic_masks(fdp: atheris.FuzzedDataProvider) -> None:
    feat_stride = good_or_bad(fdp, (8, 4, 8, 2), (0, -8, 257))
    dst = (fdp.ConsumeIntInRange(1, 6) * 8, fdp.ConsumeIntInRange(1, 6) * 8)
    lb = fuzz_letterbox(fdp, dst)
    c = fdp.ConsumeIntInRange(1, 4)
    fh = dst[0] // max(feat_stride, 1) + (fdp.ConsumeIntInRange(-1, 1) if fuzzlib.rarely(fdp, 16) else 0)
    fw = dst[1] // max(feat_stride, 1)
    mask_feat = fuzzlib.fuzz_array(fdp, (np.float32,), (c, max(fh, 0), fw))
    dyconv, num = fdp.ConsumeIntInRange(1, 8), good_or_bad(fdp, (3, 1, 2, 3), (0, 4, -1, 2**31))
    try:
        p = _core.dynconv_num_params(c, dyconv, num)
    except ValueError:
        p = 1
    n = fuzzlib.fuzz_dim(fdp, 6)
    params = fuzzlib.fuzz_array(fdp, (np.float32,), (n, p + 1 if fuzzlib.rarely(fdp, 16) else p))
    if isinstance(params, np.ndarray) and params.dtype == np.float32 and params.ndim == 2 and fdp.ConsumeBool():
        rng = np.random.default_rng(fdp.ConsumeIntInRange(0, 2**32 - 1))
        params = rng.normal(0, fuzzlib.pick(fdp, (0.5, 2.0)), params.shape).astype(np.float32)
    priors = fuzzlib.fuzz_array(fdp, (np.float32,), (n, 3))
    if isinstance(priors, np.ndarray) and priors.dtype == np.float32 and priors.ndim == 2 and fdp.ConsumeBool():
        rng = np.random.default_rng(fdp.ConsumeIntInRange(0, 2**32 - 1))
        priors = np.stack([rng.uniform(0, dst[1], n), rng.uniform(0, dst[0], n), np.full(n, 8.0)], 1)
        priors = priors.astype(np.float32)
    boxes = fuzz_boxes(fdp, n, lb.src_w, lb.src_h)
    coord_offset = fuzzlib.fuzz_float(fdp) if fuzzlib.rarely(fdp, 8) else fuzzlib.pick(fdp, (0.0, 0.5))
    coord_scale = fuzzlib.fuzz_float(fdp) if fuzzlib.rarely(fdp, 8) else fuzzlib.pick(fdp, (8.0, 1.0, 4.0))
    soft, drop_empty = fdp.ConsumeBool(), fdp.ConsumeBool()
    threshold = 0.5 if soft else fdp.ConsumeFloatInRange(0.05, 0.95)
    if fuzzlib.rarely(fdp, 8):
        threshold = fuzzlib.fuzz_float(fdp)
    fuzzlib.debug(
        "dynamic_masks",
        mask_feat=mask_feat,
        params=params,
        priors=priors,
        boxes=boxes,
        src=(lb.src_h, lb.src_w),
        dst=dst,
        feat_stride=feat_stride,
        dyconv=(dyconv, num),
        coord=(coord_offset, coord_scale),
    )
    out = fuzzlib.value_error_or(
        lambda: _core.dynamic_masks(
            mask_feat,
            params,
            priors,
            boxes,
            lb,
            feat_stride,
            dyconv,
            num,
            coord_offset,
            coord_scale,
            threshold,
            soft,
            drop_empty,
        )
    )
    if out is not None:
        finite_inputs = all(fuzzcheck_finite(a) for a in (mask_feat, params, priors))
        check_maskset(
            out, n, (lb.src_h, lb.src_w), soft, not drop_empty, drop_empty=drop_empty, finite_inputs=finite_inputs
        )


@atheris.instrument_func
def fuzz_decode_solov2(fdp: atheris.FuzzedDataProvider) -> None:
    mask_stride = good_or_bad(fdp, (4, 4, 2, 1), (0, -1, 2**40))
    dst = (fdp.ConsumeIntInRange(1, 4) * 8, fdp.ConsumeIntInRange(1, 4) * 8)
    lb = fuzz_letterbox(fdp, dst)
    c, e = fdp.ConsumeIntInRange(1, 4), fdp.ConsumeIntInRange(1, 4)
    levels = fdp.ConsumeIntInRange(0, 3) if fuzzlib.rarely(fdp, 8) else fdp.ConsumeIntInRange(1, 3)
    cates, kernels, strides = [], [], []
    for _ in range(levels):
        s = fdp.ConsumeIntInRange(1, 6)
        cates.append(fuzzlib.fuzz_array(fdp, (np.float32,), (c, s, s)))
        kernels.append(fuzzlib.fuzz_array(fdp, (np.float32,), (e if not fuzzlib.rarely(fdp, 16) else e + 1, s, s)))
        strides.append(good_or_bad(fdp, (8.0, 16.0, 4.0, 32.0), (0.0, -1.0, float("nan"), 1e30)))
    if fuzzlib.rarely(fdp, 16):
        strides.append(8.0)
    fh = -(-dst[0] // max(mask_stride, 1)) + fdp.ConsumeIntInRange(0, 1) - (1 if fuzzlib.rarely(fdp, 16) else 0)
    fw = -(-dst[1] // max(mask_stride, 1))
    mask_feature = fuzzlib.fuzz_array(fdp, (np.float32,), (e, max(fh, 0), fw))
    conf = fuzz_threshold(fdp) * 0.5
    max_det = fuzzlib.fuzz_int(fdp, 0, 30)
    nms = good_or_bad(fdp, ("matrix", "mask", "fast", "box"), ("greedy", None))
    kw: dict[str, Any] = {
        "mask_threshold": fuzz_threshold(fdp),
        "filter_thr": fuzz_threshold(fdp) * 0.2,
        "nms_pre": fuzzlib.fuzz_int(fdp, -1, 40),
        "cate_logits": fdp.ConsumeBool(),
        "kernel": fuzz_kernel(fdp),
        "sigma": fdp.ConsumeFloatInRange(0.1, 4.0),
        "nms": nms,
        "iou": fuzz_threshold(fdp),
        "agnostic": fdp.ConsumeBool(),
        "mask_stride": mask_stride,
        "soft": fdp.ConsumeBool(),
        "class_allowed": None,
    }
    if fuzzlib.rarely(fdp, 4):
        kw["class_allowed"] = fuzzlib.fuzz_array(fdp, (np.uint8, np.bool_), (c,))
    fuzzlib.debug(
        "decode_solov2",
        cates=[getattr(a, "shape", a) for a in cates],
        kernels=[getattr(a, "shape", a) for a in kernels],
        mask_feature=mask_feature,
        strides=strides,
        src=(lb.src_h, lb.src_w),
        dst=dst,
        conf=conf,
        max_det=max_det,
        kw=kw,
    )
    out = fuzzlib.value_error_or(
        lambda: _core.decode_solov2(cates, kernels, mask_feature, strides, lb, conf, max_det, **kw)
    )
    if out is not None:
        finite_inputs = all(fuzzcheck_finite(a) for a in [*cates, *kernels, mask_feature])
        check_solov2(out, (lb.src_h, lb.src_w), c, max_det, kw["soft"], finite_inputs)


def fuzz_split_tensor(fdp: atheris.FuzzedDataProvider, channels: int, cells: int) -> tuple[Any, Any]:
    """A (channels, cells) tensor of any dtype and layout (NCHW rows or an NHWC transposed view) and its quant."""
    a = fuzzlib.fuzz_array(fdp, (np.float32, np.int8, np.uint8), (channels, cells))
    if isinstance(a, np.ndarray) and a.ndim == 2 and fdp.ConsumeBool():
        a = np.ascontiguousarray(a.T).T  # NHWC: classes contiguous per cell
    dtype = a.dtype if isinstance(a, np.ndarray) else np.float32
    return a, fuzzlib.fuzz_quant(fdp, dtype)


def fuzz_decode_yolo_split(fdp: atheris.FuzzedDataProvider) -> None:
    nc, nm = fdp.ConsumeIntInRange(1, 6), fdp.ConsumeIntInRange(0, 5)
    bins = good_or_bad(fdp, (16, 1, 4), (0, 3))
    levels = []
    for _ in range(fdp.ConsumeIntInRange(0, 3) if fuzzlib.rarely(fdp, 8) else fdp.ConsumeIntInRange(1, 3)):
        h, w = fdp.ConsumeIntInRange(1, 6), fdp.ConsumeIntInRange(1, 6)
        cells = h * w if not fuzzlib.rarely(fdp, 16) else h * w + 1
        lv: dict[str, Any] = {
            "grid_hw": (h, w),
            "stride": good_or_bad(fdp, (8.0, 16.0, 32.0), (0.0, -1.0, float("nan"))),
        }
        lv["boxes"], lv["boxes_quant"] = fuzz_split_tensor(fdp, 4 * max(bins, 0) if bins > 0 else 3, cells)
        lv["scores"], lv["scores_quant"] = fuzz_split_tensor(fdp, nc if not fuzzlib.rarely(fdp, 16) else nc + 1, cells)
        lv["coefficients"], lv["coefficients_quant"] = fuzz_split_tensor(fdp, nm, cells)
        if fdp.ConsumeBool():
            lv["score_sum"], lv["score_sum_quant"] = fuzz_split_tensor(fdp, 1, cells)
        levels.append(lv)
    conf, iou = fuzz_threshold(fdp), fuzz_threshold(fdp)
    max_det, topk = fuzzlib.fuzz_int(fdp, 0, 50), fuzzlib.fuzz_int(fdp, 1, 500)
    agnostic = fdp.ConsumeBool()
    fuzzlib.debug("decode_yolo_split", levels=len(levels), nc=nc, nm=nm, conf=conf, max_det=max_det)
    out = fuzzlib.value_error_or(lambda: _core.decode_yolo_split(levels, nc, conf, iou, max_det, topk, agnostic))
    if out is not None:
        check_detections(out, nc, nm, conf, max_det)


def fuzz_decode_yolov5_split(fdp: atheris.FuzzedDataProvider) -> None:
    nc, nm = fdp.ConsumeIntInRange(1, 6), fdp.ConsumeIntInRange(0, 5)
    na = good_or_bad(fdp, (3, 1), (0, 2))
    levels = []
    for _ in range(fdp.ConsumeIntInRange(0, 3) if fuzzlib.rarely(fdp, 8) else fdp.ConsumeIntInRange(1, 3)):
        h, w = fdp.ConsumeIntInRange(1, 6), fdp.ConsumeIntInRange(1, 6)
        cells = h * w if not fuzzlib.rarely(fdp, 16) else h * w + 1
        anchors = [(good_or_bad(fdp, (10.0, 33.0), (0.0, -1.0, float("inf"))), 13.0) for _ in range(max(na, 1))]
        lv: dict[str, Any] = {
            "grid_hw": (h, w),
            "stride": good_or_bad(fdp, (8.0, 16.0, 32.0), (0.0, -1.0, float("nan"))),
            "anchors": anchors if not fuzzlib.rarely(fdp, 16) else anchors[:-1],
        }
        rows = max(na, 1) * (5 + nc) if not fuzzlib.rarely(fdp, 16) else max(na, 1) * (5 + nc) + 1
        lv["preds"], lv["preds_quant"] = fuzz_split_tensor(fdp, rows, cells)
        lv["coefficients"], lv["coefficients_quant"] = fuzz_split_tensor(fdp, max(na, 1) * nm, cells)
        levels.append(lv)
    conf, iou = fuzz_threshold(fdp), fuzz_threshold(fdp)
    max_det, topk = fuzzlib.fuzz_int(fdp, 0, 50), fuzzlib.fuzz_int(fdp, 1, 500)
    agnostic = fdp.ConsumeBool()
    fuzzlib.debug("decode_yolov5_split", levels=len(levels), nc=nc, nm=nm, conf=conf, max_det=max_det)
    out = fuzzlib.value_error_or(lambda: _core.decode_yolov5_split(levels, nc, conf, iou, max_det, topk, agnostic))
    if out is not None:
        check_detections(out, nc, nm, conf, max_det)


def fuzz_decode_yolo_scored(fdp: atheris.FuzzedDataProvider) -> None:
    nc, nm = fdp.ConsumeIntInRange(1, 6), fdp.ConsumeIntInRange(0, 5)
    n = fuzzlib.fuzz_dim(fdp, 300)
    boxes = fuzz_boxes(fdp, n)
    scores = fuzzlib.fuzz_array(fdp, (np.float32, np.int8, np.uint8), (n if not fuzzlib.rarely(fdp, 16) else n + 1,))
    sdt = scores.dtype if isinstance(scores, np.ndarray) else np.float32
    squant = fuzzlib.fuzz_quant(fdp, sdt)
    classes = fuzzlib.fuzz_array(fdp, (np.int32, np.int64, np.uint8), (n,))
    coeffs = fuzzlib.fuzz_array(fdp, (np.float32,), (n, nm))
    conf, iou = fuzz_threshold(fdp), fuzz_threshold(fdp)
    max_det = fuzzlib.fuzz_int(fdp, 0, 50)
    fuzzlib.debug("decode_yolo_scored", n=n, nc=nc, nm=nm, conf=conf, max_det=max_det)
    out = fuzzlib.value_error_or(
        lambda: _core.decode_yolo_scored(
            boxes, scores, classes, coeffs, nc, conf, iou, max_det, 1000, fdp.ConsumeBool(), scores_quant=squant
        )
    )
    if out is not None:
        check_detections(out, nc, nm, conf, max_det)


# ---------------------------------------------------------------------------------------------------
# Checks (not instrumented: numpy comparisons here are fine)
# ---------------------------------------------------------------------------------------------------


class _Options:
    """PostprocessOptions' attributes, fuzzed (the binding reads them by name)."""

    def __init__(self, fdp: atheris.FuzzedDataProvider, nc: int) -> None:
        self.conf = fuzz_threshold(fdp)
        self.iou = fuzz_threshold(fdp)
        self.max_det = fuzzlib.fuzz_int(fdp, -2, 400)
        self.pre_nms_topk = fuzzlib.fuzz_int(fdp, -2, 30000)
        self.agnostic = fdp.ConsumeBool()
        self.class_allowed = None if fdp.ConsumeBool() else fuzzlib.fuzz_array(fdp, (np.uint8,), (nc,))
        self.soft_masks = fdp.ConsumeBool()
        self.nms = fuzzlib.pick(fdp, ("box", "fast", "matrix", "mask", "soft"))
        self.mask_threshold = fuzz_threshold(fdp)


def instance_rows(out: Any, nc: int) -> tuple[Any, Any, Any, Any, int]:
    """(boxes, scores, class_ids, masks, k) of an Instances-like 4-tuple, checked: consistent float32 / int32
    shapes and classes in range."""
    assert isinstance(out, tuple) and len(out) == 4
    boxes, scores, class_ids, masks = out
    k = len(scores)
    fuzzcheck.check_array(boxes, np.float32, (k, 4))
    fuzzcheck.check_array(scores, np.float32, (k,))
    fuzzcheck.check_array(class_ids, np.int32, (k,))
    assert k == 0 or (class_ids.min() >= 0 and class_ids.max() < nc), class_ids.tolist()
    return boxes, scores, class_ids, masks, k


def check_instances(out: Any, image_hw: tuple[int, int], nc: int, max_det: int, soft: bool) -> None:
    """Instances: consistent shapes, classes in range, at most max_det, a well-formed MaskSet of one mask each."""
    _, _, _, masks, k = instance_rows(out, nc)
    assert k <= max(max_det, 0), (k, max_det)
    assert len(masks.rects) == k, "one mask per instance"
    check_maskset(tuple(masks), len(masks.keep) and int(masks.keep.max()) + 1, image_hw, soft, keep_all=False,
                  finite_inputs=False)  # fmt: skip


def fuzz_postprocess_yolo(fdp: atheris.FuzzedDataProvider) -> None:
    nc, nm = fdp.ConsumeIntInRange(1, 4), fdp.ConsumeIntInRange(1, 4)
    anchors = fdp.ConsumeIntInRange(0, 40)
    head = fuzzlib.pick(fdp, ("raw", "e2e", "objectness", "raw"))
    features = {"raw": 4 + nc + nm, "e2e": 6 + nm, "objectness": 5 + nc + nm}[head]
    if fuzzlib.rarely(fdp, 8):
        features += fdp.ConsumeIntInRange(-3, 3)
    anchor_major = head != "raw" or fdp.ConsumeBool()
    dtype = fuzzlib.pick(fdp, (np.float32, np.float32, np.int8, np.uint8))
    pred = fuzzlib.fuzz_array(
        fdp, (dtype,), (anchors, max(features, 0)) if anchor_major else (max(features, 0), anchors)
    )
    if isinstance(pred, np.ndarray) and pred.dtype == np.float32 and fdp.ConsumeBool():
        rng = np.random.default_rng(fdp.ConsumeIntInRange(0, 2**32 - 1))
        pred = (rng.random(pred.shape) * (32 if fdp.ConsumeBool() else 1)).astype(np.float32)
    side = fuzzlib.pick(fdp, (8, 4, 2, 3))
    nhwc = fdp.ConsumeBool()
    protos = fuzzlib.fuzz_array(fdp, (np.float32, np.int8), (side, side, nm) if nhwc else (nm, side, side))
    quants = [fuzzlib.fuzz_quant(fdp, getattr(a, "dtype", np.float32)) for a in (pred, protos)]
    layout = fuzzlib.value_error_or(
        lambda: _core.YoloLayout(
            head=head,
            num_classes=nc,
            num_coeffs=nm,
            detections=0,
            anchor_major=anchor_major,
            prototypes=1,
            prototypes_nhwc=nhwc,
            boxes_normalized=fdp.ConsumeBool(),
        )
    )
    lb = fuzz_letterbox(fdp, (32, 32), keep_ratio=False)
    options = _Options(fdp, nc)
    if layout is None:
        return
    out = fuzzlib.value_error_or(lambda: _core.postprocess_yolo(layout, [pred, protos], quants, lb, options))
    if out is not None:
        check_instances(out, (lb.src_h, lb.src_w), nc, options.max_det, options.soft_masks)


def fuzz_postprocess_dets(fdp: atheris.FuzzedDataProvider) -> None:
    k, nc = fdp.ConsumeIntInRange(0, 8), fdp.ConsumeIntInRange(1, 5)
    torchvision = fdp.ConsumeBool()
    roi = fdp.ConsumeBool()
    boxes = fuzz_boxes(fdp, k, 32, 32)
    if not torchvision and isinstance(boxes, np.ndarray) and boxes.ndim == 2 and boxes.dtype == np.float32:
        rng = np.random.default_rng(fdp.ConsumeIntInRange(0, 2**32 - 1))
        column = (np.round(rng.random((boxes.shape[0], 1)) * 8) / 8).astype(np.float32)  # MMDeploy's score column
        boxes = np.concatenate([boxes, column], 1)
    scores = fuzz_scores(fdp, (k,))
    labels = fuzzlib.fuzz_array(fdp, (np.int64, np.int32, np.float32), (k,))
    if isinstance(labels, np.ndarray) and fdp.ConsumeBool():
        labels = (np.abs(np.nan_to_num(labels.astype(np.float64))) % nc).astype(labels.dtype)
    mh = 28 if roi else 32
    masks = fuzzlib.fuzz_array(fdp, (np.float32, np.uint8), (k, mh, mh))
    outputs = [boxes, labels, masks] + ([scores] if torchvision else [])
    layout = _core.DetsLayout(boxes=0, scores=3 if torchvision else None, labels=1, masks=2, roi_masks=roi,
                              convention=fuzzlib.pick(fdp, ("mmdet", "torchvision")), inclusive=fdp.ConsumeBool(),
                              num_classes=nc)  # fmt: skip
    lb = fuzz_letterbox(fdp, (32, 32))
    options = _Options(fdp, nc)
    out = fuzzlib.value_error_or(lambda: _core.postprocess_dets(layout, outputs, [None] * len(outputs), lb, options))
    if out is not None:
        check_instances(out, (lb.src_h, lb.src_w), nc, options.max_det, options.soft_masks)


def fuzz_yolo_layout(fdp: atheris.FuzzedDataProvider) -> None:
    def dim() -> int | None:
        return None if fuzzlib.rarely(fdp, 8) else fuzzlib.pick(fdp, (1, 3, 32, 38, 116, 160, 8400, 25200, 0, -1))

    shapes = [[dim() for _ in range(fdp.ConsumeIntInRange(2, 4))] for _ in range(fdp.ConsumeIntInRange(0, 3))]
    names = fuzzlib.pick(fdp, ("{0: 'a', 1: 'b'}", "['a']", "{1: 'x'}", "{0: 'a'", "", "[]", "{0: 'a', 0: 'b'}"))
    meta = {"names": names} if fdp.ConsumeBool() else {}
    if fdp.ConsumeBool():
        meta["stride"] = "32"
    if fdp.ConsumeBool():
        meta["end2end"] = "True"
    layout = fuzzlib.value_error_or(lambda: _core.yolo_layout(shapes, [1, 3, dim(), dim()], meta))
    if layout is not None:
        assert layout.num_classes >= 1 and layout.num_coeffs >= 1 and layout.detections != layout.prototypes


def fuzzcheck_finite(a: Any) -> bool:
    """Whether ``a`` is a float array of finite values."""
    return isinstance(a, np.ndarray) and a.dtype.kind == "f" and bool(np.isfinite(a).all())


def check_detections(out: Any, nc: int, nm: int, conf: float, max_det: int) -> None:
    """Detections: consistent shapes, finite boxes, scores above conf and descending, classes in range."""
    boxes, scores, class_ids, coeffs = out
    k = len(scores)
    fuzzlib.bucket(k)
    assert boxes.shape == (k, 4) and class_ids.shape == (k,) and coeffs.shape == (k, nm), (boxes.shape, coeffs.shape)
    assert k <= max_det, (k, max_det)
    assert np.isfinite(boxes).all() and np.isfinite(coeffs).all()
    assert (scores > conf).all() and (np.diff(scores) <= 0).all(), scores
    assert ((class_ids >= 0) & (class_ids < nc)).all(), class_ids


def check_nms(out: Any, n: int, scores: Any, max_det: int, columns: int | None, decayed: bool = False) -> None:
    """An NmsResult: unique in-range keep indices, at most max_det, scores finite where the inputs were."""
    assert isinstance(out, tuple) and len(out) == 3
    keep, kept_scores, class_ids = out
    k = len(keep)
    fuzzlib.bucket(k)
    fuzzcheck.check_array(keep, np.int64, (k,))
    fuzzcheck.check_array(kept_scores, np.float32, (k,))
    fuzzcheck.check_array(class_ids, np.int32, (k,))
    assert k == 0 or (keep.min() >= 0 and keep.max() < n), ("keep out of range", keep.tolist(), n)
    if columns is None:
        assert len(np.unique(keep)) == k, ("keep not unique", keep.tolist())
    else:  # a score matrix: a row may be kept once per column
        assert len({(int(i), int(c)) for i, c in zip(keep, class_ids)}) == k, "(row, class) kept twice"
        assert k == 0 or (class_ids.min() >= 0 and class_ids.max() < columns), class_ids.tolist()
    if 0 <= max_det < 2**62:
        assert k <= max_det, (k, max_det)
    if fuzzcheck_finite(scores):
        assert np.isfinite(kept_scores).all(), "non-finite score from finite inputs"
        if not decayed:
            s = np.asarray(scores, np.float32)
            want = s[keep] if s.ndim == 1 else s[keep, class_ids]
            assert np.array_equal(kept_scores, want), "kept scores are not the inputs'"
            assert (np.diff(kept_scores) <= 0).all(), "not best first"


def check_iou(out: Any, n: int) -> None:
    """(n, n) float32 in [0, 1], symmetric."""
    fuzzcheck.check_array(out, np.float32, (n, n))
    assert ((out >= 0) & (out <= 1)).all(), "IoU outside [0, 1]"
    assert np.array_equal(out, out.T), "IoU not symmetric"


def check_maskset(
    out: Any,
    n: int,
    image_hw: tuple[int, int],
    soft: bool,
    keep_all: bool,
    drop_empty: bool = False,
    finite_inputs: bool = True,
) -> None:
    """A MaskSet: increasing keep in range, crops inside the image, consistent offsets, padding and areas."""
    assert isinstance(out, tuple) and len(out) == 6
    keep, rects, offsets, bits, probs, areas = out
    k = len(keep)
    fuzzlib.bucket(k)
    fuzzcheck.check_array(keep, np.int64, (k,))
    fuzzcheck.check_array(rects, np.int32, (k, 4))
    fuzzcheck.check_array(offsets, np.int64, (k + 1,))
    fuzzcheck.check_array(bits, np.uint8, (None,))
    fuzzcheck.check_array(areas, np.int64, (k,))
    assert (np.diff(keep) > 0).all() and (k == 0 or (keep[0] >= 0 and keep[-1] < n)), keep.tolist()
    if keep_all:
        assert k == n, "a detection lost its mask"
    h, w = image_hw
    r = rects.astype(np.int64)
    assert (r >= 0).all() and (r[:, 0] + r[:, 2] <= w).all() and (r[:, 1] + r[:, 3] <= h).all(), (
        "crop outside the image",
        rects.tolist(),
        image_hw,
    )
    sizes = (r[:, 2] + 7) // 8 * r[:, 3]
    assert offsets[0] == 0 and np.array_equal(np.diff(offsets), sizes) and offsets[-1] == bits.size, "bad offsets"
    if soft:
        fuzzcheck.check_array(probs, np.float32, (int((r[:, 2] * r[:, 3]).sum()),))
        assert not finite_inputs or not np.isnan(probs).any(), "NaN probability from finite inputs"
    else:
        assert probs is None
    for j in range(k):
        cw, ch = int(r[j, 2]), int(r[j, 3])
        packed = bits[offsets[j] : offsets[j + 1]].reshape(ch, (cw + 7) // 8)
        crop = np.unpackbits(packed, axis=1, bitorder="little")
        assert not crop[:, cw:].any(), "padding bits set"
        assert int(crop[:, :cw].sum()) == int(areas[j]), "area is not the pixel count"
        if drop_empty:
            assert areas[j] > 0, "empty mask kept with drop_empty"


def check_solov2(out: Any, image_hw: tuple[int, int], c: int, max_det: int, soft: bool, finite_inputs: bool) -> None:
    """Solov2Instances: finite boxes inside the image, scores, classes in range, a mask each."""
    boxes, scores, _, masks, k = instance_rows(out, c)
    assert np.isfinite(boxes).all() and not np.isnan(scores).any(), "non-finite output"
    if 0 <= max_det < 2**62:
        assert k <= max_det, (k, max_det)
    check_maskset(masks, k, image_hw, soft, keep_all=True, finite_inputs=finite_inputs)
    assert np.array_equal(masks.keep, np.arange(k)), "keep is not 0..K-1"


def main() -> None:
    """libFuzzer entry point."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
