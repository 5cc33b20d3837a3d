"""Letterboxing images into the model's input tensor, exactly as the Ultralytics reference does.

The image is resized (bilinear, aspect ratio kept, size by round-half-even) and centred on a
canvas of grey 114 with the padding split ``round(pad / 2 - 0.1)`` before and the rest after.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from ._core import Letterbox, make_letterbox

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


def letterbox(image: np.ndarray, input_hw: tuple[int, int]) -> tuple[np.ndarray, Letterbox]:
    """Resize and pad a BGR uint8 image to ``input_hw``; returns the (H, W, 3) canvas and its geometry."""
    h, w = image.shape[:2]
    lb = make_letterbox(h, w, input_hw[0], input_hw[1])
    canvas = np.full((input_hw[0], input_hw[1], 3), PAD_VALUE, dtype=np.uint8)
    if (lb.new_h, lb.new_w) != (h, w):
        image = cv2.resize(image, (lb.new_w, lb.new_h), interpolation=cv2.INTER_LINEAR)
    canvas[lb.pad_top : lb.pad_top + lb.new_h, lb.pad_left : lb.pad_left + lb.new_w] = image
    return canvas, lb


def to_input(canvas: np.ndarray, out: np.ndarray, layout: str = "NCHW", quant: tuple[float, int] | None = None) -> None:
    """Write a letterboxed BGR canvas into one input slot: RGB, in ``layout`` order, in ``out``'s dtype.

    ``out`` is (3, H, W) for NCHW or (H, W, 3) for NHWC. Float inputs get pixel / 255 (division,
    not multiplication by 1/255, keeps the values bit-identical to the reference). Quantized
    inputs get the quantized value of pixel / 255 straight from a 256-entry table, so no float
    image is ever made.
    """
    rgb = canvas[:, :, ::-1]
    src = rgb.transpose(2, 0, 1) if layout == "NCHW" else rgb
    if out.dtype == np.float32:
        np.divide(src, np.float32(255.0), out=out, dtype=np.float32)
    else:
        if quant is None:
            raise ValueError(f"a {out.dtype} input needs its quantization (scale, zero_point)")
        np.take(quantize_table(quant[0], quant[1], out.dtype), src, out=out)


@functools.lru_cache(maxsize=16)
def quantize_table(scale: float, zero_point: int, dtype: np.dtype) -> np.ndarray:
    """Quantized value of each pixel value 0..255 (as pixel / 255), computed as the reference does:
    in float32, clipped to the type's range, then truncated."""
    info = np.iinfo(dtype)
    real = np.arange(256, dtype=np.float32) / np.float32(255.0)
    q = real / np.float32(scale) + np.float32(zero_point)
    return np.clip(q, info.min, info.max).astype(dtype)
