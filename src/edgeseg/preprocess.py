"""Images into the model's input, as each family's reference pipeline does it (``Preprocess``).

One home for resizing, padding, channel order, normalization and quantization: ``Model.preprocess``,
calibration, benchmarks and probes all go through ``make_input`` (or ``fit`` + ``to_input``).
The Ultralytics letterbox: the image is resized (bilinear, aspect ratio kept, size by
round-half-even) and centred on a canvas of grey 114 with the padding split
``round(pad / 2 - 0.1)`` before and the rest after; MMDetection's keep-ratio resize puts the image
top-left (sizes by ``int(x + 0.5)``) and pads bottom-right; YOLACT stretches it to the input.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import cv2
import numpy as np

from ._core import Letterbox, make_letterbox
from .spec import ULTRALYTICS_PREPROCESS, ModelSpec, Preprocess

PAD_VALUE = 114


def fit_input_size(image_hw: tuple[int, int], max_hw: tuple[int, int], stride: int) -> tuple[int, int]:
    """The smallest stride-multiple input that holds the image letterboxed into ``max_hw``.

    For models with dynamic height and width: a 16:9 frame into 640x640 becomes 384x640 instead of
    wasting 40% of the compute on padding.
    """
    lb = make_letterbox(image_hw[0], image_hw[1], max_hw[0], max_hw[1])
    return (
        lb.new_h + (max_hw[0] - lb.new_h) % stride,
        lb.new_w + (max_hw[1] - lb.new_w) % stride,
    )


def fit(
    image: np.ndarray, input_hw: tuple[int, int], pre: Preprocess = ULTRALYTICS_PREPROCESS
) -> tuple[np.ndarray, Letterbox]:
    """Resize and pad a BGR uint8 image into ``input_hw`` as ``pre.resize`` says; returns the (H, W, 3)
    canvas (BGR, padding in ``pre.pad_value`` grey, 0 when it is None) and where the image sits."""
    h, w = image.shape[:2]
    lb = make_letterbox(h, w, input_hw[0], input_hw[1], pre.resize)
    if (lb.new_h, lb.new_w) != (h, w):
        image = cv2.resize(image, (lb.new_w, lb.new_h), interpolation=cv2.INTER_LINEAR)
    if (lb.new_h, lb.new_w) == tuple(input_hw):
        return np.ascontiguousarray(image), lb
    pad = 0 if pre.pad_value is None else round(pre.pad_value)
    canvas = np.full((input_hw[0], input_hw[1], 3), pad, dtype=np.uint8)
    canvas[lb.pad_top : lb.pad_top + lb.new_h, lb.pad_left : lb.pad_left + lb.new_w] = image
    return canvas, lb


def letterbox(image: np.ndarray, input_hw: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """The Ultralytics letterbox of a BGR uint8 image into ``input_hw`` (``fit`` with its preprocessing)."""
    return fit(image, input_hw, ULTRALYTICS_PREPROCESS)


def to_input(
    canvas: np.ndarray,
    out: np.ndarray,
    layout: str = "NCHW",
    quant: tuple[float, int] | None = None,
    pre: Preprocess = ULTRALYTICS_PREPROCESS,
    content: Letterbox | None = None,
) -> None:
    """Write a fitted BGR canvas into one input slot: channel order, layout, normalization and dtype.

    ``out`` is (3, H, W) for NCHW or (H, W, 3) for NHWC. Ultralytics' pixel / 255 is a division,
    not a multiplication by 1/255, which keeps the values bit-identical to the reference. Other
    families get (pixel - mean) / std per channel in float32. Quantized inputs get their quantized
    values straight from a 256-entry table per channel, so no float image is ever made. With
    ``pre.pad_value`` None the padding outside ``content`` (the fit's Letterbox) is zero after
    normalization, as MMDetection's data preprocessor pads.
    """
    src = canvas[:, :, ::-1] if pre.rgb else canvas
    chw = layout == "NCHW"
    if chw:
        src = src.transpose(2, 0, 1)
    if out.dtype == np.float32:
        if pre.scale_only:
            np.divide(src, np.float32(255.0), out=out, dtype=np.float32)
        else:
            shape = (3, 1, 1) if chw else (1, 1, 3)
            mean = np.asarray(pre.mean, np.float32).reshape(shape)
            std = np.asarray(pre.std, np.float32).reshape(shape)
            np.subtract(src, mean, out=out, dtype=np.float32)
            np.divide(out, std, out=out)
    else:
        if quant is None:
            raise ValueError(f"a {out.dtype} input needs its quantization (scale, zero_point)")
        tables = [quantize_table(quant[0], quant[1], out.dtype, pre.mean[c], pre.std[c]) for c in range(3)]
        for c in range(3):
            if chw:
                np.take(tables[c], src[c], out=out[c])
            else:
                np.take(tables[c], src[:, :, c], out=out[:, :, c])
    if pre.pad_value is None and content is not None:
        _zero_padding(out, content, chw, quant)


def _zero_padding(out: np.ndarray, lb: Letterbox, chw: bool, quant: tuple[float, int] | None) -> None:
    zero = 0 if quant is None else int(np.clip(round(quant[1]), np.iinfo(out.dtype).min, np.iinfo(out.dtype).max))
    view = out if not chw else out.transpose(1, 2, 0)
    view[: lb.pad_top] = zero
    view[lb.pad_top + lb.new_h :] = zero
    view[:, : lb.pad_left] = zero
    view[:, lb.pad_left + lb.new_w :] = zero


def make_input(
    images: Sequence[np.ndarray], spec: ModelSpec, input_hw: tuple[int, int], batch: int | None = None
) -> tuple[np.ndarray, list[Letterbox]]:
    """The input tensor of ``spec``'s model for BGR uint8 images fitted into ``input_hw``, and where
    each image sits in it. ``batch`` slots (default: the model's fixed batch, else one per image)."""
    n = batch if batch is not None else (spec.batch if spec.batch is not None else len(images))
    inp = spec.input
    nchw = spec.input_layout == "NCHW"
    h, w = input_hw
    tensor = np.zeros((n, 3, h, w) if nchw else (n, h, w, 3), dtype=inp.dtype)
    quant = None if inp.scale is None else (inp.scale, inp.zero_point)
    boxes = []
    for i, image in enumerate(images):
        canvas, lb = fit(image, input_hw, spec.preprocess)
        to_input(canvas, tensor[i], spec.input_layout, quant, spec.preprocess, lb)
        boxes.append(lb)
    return tensor, boxes


@functools.lru_cache(maxsize=64)
def quantize_table(scale: float, zero_point: int, dtype: np.dtype, mean: float = 0.0, std: float = 255.0) -> np.ndarray:
    """Quantized value of each pixel value 0..255 (as (pixel - mean) / std), computed as the reference
    does: in float32, clipped to the type's range, then truncated."""
    info = np.iinfo(dtype)
    pixels = np.arange(256, dtype=np.float32)
    real = (pixels - np.float32(mean)) / np.float32(std) if mean else pixels / np.float32(std)
    q = real / np.float32(scale) + np.float32(zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)
