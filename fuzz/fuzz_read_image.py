#!/usr/bin/env python3
"""Fuzz ``edgeseg.io.read_image`` on mutated image files and on fuzzed arrays.

The input is an image file (seeds: small JPEG, PNG, BMP and WebP files cut from COCO images); it is
written to a temporary file and read back with ``read_image(path)``, which must return a C-contiguous
(H, W, 3) uint8 array or raise ``ImageError``. The same bytes also drive an array of fuzzed dtype,
shape and layout through ``read_image(array, rgb=...)``, with the same contract.

    python fuzz/fuzz_read_image.py fuzz/corpus/read_image -max_total_time=60
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
with atheris.instrument_imports(include=["fuzzlib"]):
    import fuzzlib

# A decoded image may not take more than this (a few hundred bytes of header can claim gigapixels).
MAX_PIXELS = 1 << 26
if fuzzlib.known("F12", True):
    # Step around the decompression bomb: OpenCV then refuses such headers itself (with cv2.error).
    os.environ["OPENCV_IO_MAX_IMAGE_PIXELS"] = str(MAX_PIXELS)

with atheris.instrument_imports(include=["edgeseg.io", "edgeseg.errors"]):
    from edgeseg.errors import ImageError
    from edgeseg.io import read_image

import cv2  # noqa: E402
import numpy as np  # noqa: E402

TMP = Path(tempfile.mkdtemp(prefix="edgeseg-fuzz-image-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
IMAGE = TMP / "image.jpg"  # the suffix does not matter: OpenCV sniffs the content


@atheris.instrument_func
def test_one_input(data: bytes) -> None:
    """read_image on ``data`` as a file, then on an array built from it."""
    if fuzzlib.known("F13", png_chunk_past_end(data)):
        return
    IMAGE.write_bytes(data)
    try:
        image = read_image(IMAGE)
    except ImageError as exc:
        assert str(IMAGE) in str(exc), "ImageError does not name the file"
        image = None
    except cv2.error as exc:
        if fuzzlib.known("F12", "CV_IO_MAX_IMAGE_PIXELS" in str(exc)):
            return
        raise
    if image is not None:
        check(image)
        assert image.shape[0] * image.shape[1] <= MAX_PIXELS

    fdp = atheris.FuzzedDataProvider(data)
    ndim = fuzzlib.pick(fdp, (3, 2, 3, 1, 4))
    dims = [fuzzlib.fuzz_dim(fdp, 40) for _ in range(ndim)]
    if ndim == 3 and not fuzzlib.rarely(fdp, 4):
        dims[2] = fuzzlib.pick(fdp, (3, 1, 4))
    array = fuzzlib.fuzz_array(fdp, (np.uint8, np.uint8, np.float32, np.int16), tuple(dims))
    rgb = fdp.ConsumeBool()
    try:
        image = read_image(array, rgb=rgb)
    except ImageError:
        return
    check(image)
    src = np.asarray(array)
    assert image.shape[:2] == src.shape[:2]
    if src.ndim == 3 and src.shape[2] == 3:  # colour arrays keep their pixels (channels swapped for rgb)
        assert np.array_equal(image, src[:, :, ::-1] if rgb else src)


def png_chunk_past_end(data: bytes) -> bool:
    """A PNG whose chunk walk reaches IEND through, or at, a chunk longer than the file: finding F13."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return False
    pos = 8
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == b"IEND":
            return pos + 12 + length > len(data)
        pos += 12 + length
    return False


def check(image: object) -> None:
    """What read_image promises."""
    assert isinstance(image, np.ndarray), type(image)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, (image.dtype, image.shape)
    assert image.shape[0] >= 1 and image.shape[1] >= 1
    assert image.flags.c_contiguous


def main() -> None:
    """libFuzzer entry point."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
