"""Reading images: file paths and numpy arrays become contiguous BGR uint8 (H, W, 3) arrays."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Union

import cv2
import numpy as np

from .errors import ImageError

ImageSource = Union[str, bytes, os.PathLike, np.ndarray]
"""A path to an image file, or an (H, W, 3) / (H, W) uint8 array (BGR unless ``rgb=True``)."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image(source: ImageSource, rgb: bool = False) -> np.ndarray:
    """Return ``source`` as a BGR uint8 (H, W, 3) array, or raise ``ImageError`` saying what is wrong.

    Args:
        source: an image file path or a uint8 array: (H, W, 3) colour or (H, W) / (H, W, 1) grey.
        rgb: the array is RGB (PIL, imageio) rather than OpenCV's BGR.
    """
    if isinstance(source, (str, bytes, os.PathLike)):
        path = Path(os.fsdecode(source))
        if not path.is_file():
            raise ImageError(f"{path}: no such image file")
        data = np.fromfile(str(path), dtype=np.uint8)  # fromfile + imdecode: non-ASCII paths work too
        image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
        if image is None:
            raise ImageError(f"{path}: cannot decode this file as an image (corrupt or unsupported format)")
        return image
    if not isinstance(source, np.ndarray):
        raise ImageError(f"expected an image path or a numpy array, got {type(source).__name__}")
    image = source
    if image.dtype != np.uint8:
        raise ImageError(
            f"image array has dtype {image.dtype}; expected uint8 pixels 0..255 "
            "(convert with (img * 255).clip(0, 255).astype(np.uint8) if it holds 0..1 floats)"
        )
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (1, 3, 4)):
        raise ImageError(
            f"image array has shape {image.shape}; expected (H, W, 3) colour, (H, W, 4) with alpha, or (H, W) grey"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ImageError(f"image array has shape {image.shape}; it has no pixels")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_RGBA2BGR if rgb else cv2.COLOR_BGRA2BGR)
    if rgb:
        return np.ascontiguousarray(image[:, :, ::-1])
    return np.ascontiguousarray(image)


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageError(f"{root}: not a folder")
    return sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
