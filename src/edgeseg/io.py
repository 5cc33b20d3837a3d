"""Reading images: file paths and numpy arrays become contiguous BGR uint8 (H, W, 3) arrays."""

from __future__ import annotations

import contextlib
import os
import tempfile
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
        try:
            data = np.fromfile(path, dtype=np.uint8)  # fromfile + imdecode: any path bytes work (imread's don't)
        except OSError as exc:
            raise ImageError(f"{path}: cannot read this file ({exc.strerror or exc})") from exc
        return decode_image(data, str(path))
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


def decode_image(data: bytes | np.ndarray, name: str = "image") -> np.ndarray:
    """Decode encoded image bytes (JPEG, PNG, ...) to BGR uint8, or raise ``ImageError`` naming ``name``.

    A truncated JPEG or PNG is refused even where the decoder would return a partial image (OpenCV
    4.x fills a JPEG cut mid-scan with grey and only prints a libjpeg warning): a bad file must be
    reported as bad, not segmented.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if buf.size == 0:
        raise ImageError(f"{name}: the file is empty")
    truncated = _truncation(buf)
    if truncated:
        raise ImageError(f"{name}: {truncated} (the file is truncated or corrupt; copy it again)")
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"{name}: cannot decode this file as an image (corrupt or unsupported format)")
    return image


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _truncation(buf: np.ndarray) -> str | None:
    """Why an encoded JPEG or PNG ends before its last byte, or None (other formats: the decoder's job)."""
    if buf.size >= 2 and buf[0] == 0xFF and buf[1] == 0xD8:
        return None if _jpeg_complete(buf) else "JPEG data ends before its end-of-image marker"
    if buf[:8].tobytes() == _PNG_MAGIC:
        return None if _png_complete(buf) else "PNG data ends before its IEND chunk"
    return None


def _jpeg_complete(b: np.ndarray) -> bool:
    """Whether the JPEG's markers lead to an end-of-image marker within the data.

    Segments are walked by their lengths (their payloads may hold any bytes); inside entropy-coded
    data the next marker is the first 0xFF not followed by a stuffed 0x00, a restart marker or fill,
    found for the whole file at once. Bytes after the end-of-image marker (motion-photo videos,
    maker notes) do not matter.
    """
    n = int(b.size)
    ff = np.flatnonzero(b[:-1] == 0xFF)
    code = b[ff + 1]
    scan_markers = ff[(code != 0x00) & (code != 0xFF) & ((code < 0xD0) | (code > 0xD7))]
    pos = 2
    while pos + 1 < n:
        if b[pos] != 0xFF:
            return False  # not a marker where one must be: corrupt
        marker = int(b[pos + 1])
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
        elif marker == 0xD9:
            return True
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
        elif pos + 3 >= n:
            return False
        else:
            end = pos + 2 + (int(b[pos + 2]) << 8 | int(b[pos + 3]))
            if marker == 0xDA:  # start of scan: entropy-coded data runs to the next real marker
                k = int(np.searchsorted(scan_markers, end))
                if k == scan_markers.size:
                    return False
                end = int(scan_markers[k])
            pos = end
    return False


def _png_complete(b: np.ndarray) -> bool:
    """Whether the PNG's chunks lead to an IEND chunk within the data."""
    pos, n = 8, int(b.size)
    while pos + 8 <= n:
        length = int.from_bytes(b[pos : pos + 4].tobytes(), "big")
        if b[pos + 4 : pos + 8].tobytes() == b"IEND":
            return True
        pos += 12 + length  # length, type, data, CRC
    return False


def write_image(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Encode ``image`` (BGR uint8) by the file name's suffix and write it to ``path``; return the path.

    Written through ``imencode`` and Python file I/O because ``cv2.imwrite`` crashes on file names
    that are not valid UTF-8 (common on Linux filesystems); written to a temporary name first and
    renamed, so a failed write never leaves a half image under the final name.
    """
    path = Path(os.fsdecode(path))
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        kinds = ", ".join(IMAGE_SUFFIXES)
        raise ImageError(f"{path}: cannot write images with suffix {suffix or '(none)'!r}; use one of {kinds}")
    ok, encoded = cv2.imencode(suffix, image)
    if not ok:
        raise ImageError(f"{path}: OpenCV could not encode a {image.shape} {image.dtype} image as {suffix}")
    if path.is_dir():
        raise ImageError(f"{path}: is a folder; give an image file name")
    try:
        write_atomic(path, encoded.tobytes())
    except OSError as exc:
        raise ImageError(f"{path}: cannot write the image ({exc.strerror or exc})") from exc
    return path


def write_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` through a fresh temporary file in the same folder and a rename.

    A crash or a full disk never leaves a partial file under the final name; the temporary file is
    created exclusively (no link followed) and the rename replaces a link at ``path`` rather than
    writing through it. An existing file keeps its permissions. Raises ``OSError``.
    """
    path = Path(os.fsdecode(path))
    try:
        mode = os.lstat(path).st_mode & 0o777
    except OSError:
        mode = 0o644  # mkstemp makes 0600 files: outputs and records stay readable as plain writes would
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    root = Path(folder)
    if not root.is_dir():
        raise ImageError(f"{root}: not a folder")
    return sorted(p for p in root.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
