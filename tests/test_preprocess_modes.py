"""Preprocessing described by the spec: the three resize modes, mean/std, channel order, padding, quantization.

References are transcriptions of each family's own code: mmcv's ``rescale_size`` (keep-ratio sizes by
``int(side * scale + 0.5)``), a plain ``cv2.resize`` for YOLACT's stretch, and ``(pixel - mean) / std``
per channel as MMDetection's and YOLACT's normalization.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeseg._core import make_letterbox, unletterbox_boxes
from edgeseg.preprocess import fit, quantize_table, to_input
from edgeseg.spec import Preprocess

sides = st.integers(1, 5000)
inputs = st.integers(32, 1344)

MMDET = Preprocess(resize="keep_ratio", pad_value=None, mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))
YOLACT = Preprocess(resize="stretch", pad_value=None, mean=(123.68, 116.78, 103.94), std=(58.40, 57.12, 57.38))
RTMDET = Preprocess(
    resize="keep_ratio", pad_value=114, mean=(103.53, 116.28, 123.675), std=(57.375, 57.12, 58.395), rgb=False
)


def mmcv_keep_ratio(h: int, w: int, dst_h: int, dst_w: int) -> tuple[int, int]:
    """mmcv.rescale_size for a canvas the image must fit: scale = min over the sides, int(x * scale + 0.5)."""
    scale = min(dst_h / h, dst_w / w)
    return int(h * float(scale) + 0.5), int(w * float(scale) + 0.5)


@settings(max_examples=400, deadline=None)
@given(sides, sides, inputs, inputs)
def test_keep_ratio_geometry_is_mmcvs(h: int, w: int, dst_h: int, dst_w: int) -> None:
    lb = make_letterbox(h, w, dst_h, dst_w, "keep_ratio")
    want_h, want_w = mmcv_keep_ratio(h, w, dst_h, dst_w)
    assert (lb.new_h, lb.new_w) == (min(max(want_h, 1), dst_h), min(max(want_w, 1), dst_w))
    assert (lb.pad_top, lb.pad_left, lb.resize) == (0, 0, "keep_ratio")


@settings(max_examples=200, deadline=None)
@given(sides, sides, inputs, inputs)
def test_stretch_fills_the_input(h: int, w: int, dst_h: int, dst_w: int) -> None:
    lb = make_letterbox(h, w, dst_h, dst_w, "stretch")
    assert (lb.new_h, lb.new_w, lb.pad_top, lb.pad_left, lb.resize) == (dst_h, dst_w, 0, 0, "stretch")


def test_boxes_go_back_through_each_mode() -> None:
    boxes = np.array([[55.0, 110.0, 275.0, 330.0]], np.float32)
    stretch = make_letterbox(480, 640, 550, 550, "stretch")  # x by 550/640, y by 550/480
    want = np.array([[55 * 640 / 550, 110 * 480 / 550, 275 * 640 / 550, 330 * 480 / 550]], np.float32)
    np.testing.assert_allclose(unletterbox_boxes(boxes, stretch), want, rtol=1e-6)
    keep = make_letterbox(480, 640, 640, 640, "keep_ratio")  # 480x640 fits as is: top-left, no shift
    np.testing.assert_allclose(unletterbox_boxes(boxes, keep), boxes, rtol=1e-6)
    keep = make_letterbox(960, 1280, 640, 640, "keep_ratio")  # halved
    np.testing.assert_allclose(unletterbox_boxes(boxes, keep), boxes * 2, rtol=1e-6)


def test_unknown_resize_mode_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="resize must be 'letterbox', 'keep_ratio' or 'stretch', got str 'crop'"):
        make_letterbox(10, 10, 20, 20, "crop")
    with pytest.raises(ValueError, match="resize must be one of letterbox, keep_ratio, stretch"):
        Preprocess(resize="crop")
    with pytest.raises(ValueError, match="std positive"):
        Preprocess(std=(1.0, 0.0, 1.0))


def _image(h: int = 37, w: int = 53) -> np.ndarray:
    return np.random.default_rng(h * w).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_normalization_is_per_channel_mean_std_in_the_models_channel_order(layout: str) -> None:
    image = _image()
    for pre in (MMDET, RTMDET):
        canvas, lb = fit(image, (64, 64), pre)
        out = np.zeros((3, 64, 64) if layout == "NCHW" else (64, 64, 3), np.float32)
        to_input(canvas, out, layout, None, pre, lb)
        chans = canvas[:, :, ::-1] if pre.rgb else canvas
        want = (chans.astype(np.float32) - np.float32(pre.mean)) / np.float32(pre.std)
        if pre.pad_value is None:
            want[lb.new_h :] = 0  # MMDetection pads after normalization, with zeros
            want[:, lb.new_w :] = 0
        got = out.transpose(1, 2, 0) if layout == "NCHW" else out
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def test_stretch_is_a_plain_resize() -> None:
    image = _image(120, 200)
    canvas, lb = fit(image, (55, 55), YOLACT)
    assert canvas.shape == (55, 55, 3) and (lb.new_h, lb.new_w) == (55, 55)
    np.testing.assert_array_equal(canvas, cv2.resize(image, (55, 55), interpolation=cv2.INTER_LINEAR))


def test_keep_ratio_pads_bottom_right_with_its_grey() -> None:
    image = _image(30, 60)
    canvas, lb = fit(image, (64, 64), RTMDET)
    assert (lb.new_h, lb.new_w) == (32, 64)
    np.testing.assert_array_equal(canvas[:32], cv2.resize(image, (64, 32), interpolation=cv2.INTER_LINEAR))
    assert (canvas[32:] == 114).all()


def test_quantized_input_follows_mean_and_std_per_channel() -> None:
    image = _image()
    scale, zero = 0.0186, 3
    canvas, lb = fit(image, (48, 48), MMDET)
    out = np.zeros((3, 48, 48), np.int8)
    to_input(canvas, out, "NCHW", (scale, zero), MMDET, lb)
    for c in range(3):
        table = quantize_table(scale, zero, np.dtype(np.int8), MMDET.mean[c], MMDET.std[c])
        real = (np.arange(256, dtype=np.float32) - np.float32(MMDET.mean[c])) / np.float32(MMDET.std[c])
        np.testing.assert_array_equal(table, np.clip(real / np.float32(scale) + zero, -128, 127).astype(np.int8))
        content = canvas[: lb.new_h, : lb.new_w, 2 - c]  # RGB input from a BGR canvas
        np.testing.assert_array_equal(out[c, : lb.new_h, : lb.new_w], table[content])
        assert (out[c, lb.new_h :] == zero).all()  # padding is real 0: the zero point
