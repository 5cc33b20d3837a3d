"""Reading images: file paths and numpy arrays become contiguous BGR uint8 (H, W, 3) arrays."""

from __future__ import annotations

import contextlib
import os
import shutil
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
    reported as bad, not segmented. So is one that declares more than ``MAX_IMAGE_PIXELS`` pixels.
    """
    buf = np.frombuffer(data, dtype=np.uint8) if isinstance(data, (bytes, bytearray, memoryview)) else data
    if buf.size == 0:
        raise ImageError(f"{name}: the file is empty")
    problem = _structure_problem(buf)
    if problem:
        raise ImageError(f"{name}: {problem}")
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageError(f"{name}: cannot decode this file as an image (corrupt or unsupported format)")
    return image


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MAX_IMAGE_PIXELS = 1 << 28
"""Most pixels an image file may declare (268 MP, e.g. 16384 x 16384): a few hundred bytes of corrupt or
hostile header can otherwise make the decoder allocate gigabytes."""
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _structure_problem(buf: np.ndarray) -> str | None:
    """What is wrong with an encoded JPEG's or PNG's structure, or None (other formats: the decoder's job)."""
    if buf.size >= 2 and buf[0] == 0xFF and buf[1] == 0xD8:
        return _jpeg_problem(buf)
    if buf[:8].tobytes() == _PNG_MAGIC:
        return _png_problem(buf)
    return None


def _too_large(width: int, height: int) -> str | None:
    if width * height > MAX_IMAGE_PIXELS:
        return f"the file declares {width}x{height} pixels, more than edgeseg's limit of {MAX_IMAGE_PIXELS}"
    return None


def _jpeg_problem(b: np.ndarray) -> str | None:
    """Walk the JPEG's markers to its end-of-image marker, checking the declared size on the way.

    Segments are walked by their lengths (their payloads may hold any bytes); inside entropy-coded
    data the next marker is the first 0xFF not followed by a stuffed 0x00, a restart marker or fill,
    found for the whole file at once. Bytes after the end-of-image marker (motion-photo videos,
    maker notes) do not matter.
    """
    n = int(b.size)
    ff = np.flatnonzero(b[:-1] == 0xFF)
    code = b[ff + 1]
    scan_markers = ff[(code != 0x00) & (code != 0xFF) & ((code < 0xD0) | (code > 0xD7))]
    truncated = "JPEG data ends before its end-of-image marker (the file is truncated or corrupt)"
    pos = 2
    while pos + 1 < n:
        if b[pos] != 0xFF:
            return truncated  # not a marker where one must be
        marker = int(b[pos + 1])
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
        elif marker == 0xD9:
            return None
        elif marker == 0x01 or 0xD0 <= marker <= 0xD7:  # markers without a length
            pos += 2
        elif pos + 3 >= n:
            return truncated
        else:
            end = pos + 2 + (int(b[pos + 2]) << 8 | int(b[pos + 3]))
            if marker in _JPEG_SOF and pos + 8 < n:  # length, precision, height, width
                height, width = int(b[pos + 5]) << 8 | int(b[pos + 6]), int(b[pos + 7]) << 8 | int(b[pos + 8])
                big = _too_large(width, height)
                # Huffman-coded scans spend at least one bit per 8x8 block (the DC code): a file far
                # smaller than that is a header claiming an image its data cannot hold, which libjpeg
                # would decode to a huge grey array with only a warning.
                if not big and marker in (0xC0, 0xC1, 0xC2) and n * 8 < -(-width // 8) * -(-height // 8):
                    big = f"the file declares {width}x{height} pixels but holds only {n} bytes of data"
                if big:
                    return big
            if marker == 0xDA:  # start of scan: entropy-coded data runs to the next real marker
                k = int(np.searchsorted(scan_markers, end))
                if k == scan_markers.size:
                    return truncated
                end = int(scan_markers[k])
            pos = end
    return truncated


def _png_problem(b: np.ndarray) -> str | None:
    """Walk the PNG's chunks to IEND: each must fit in the data, and IHDR's size must be within the limit."""
    pos, n = 8, int(b.size)
    raw_bytes, idat_bytes = 0, 0
    while pos + 8 <= n:
        length = int.from_bytes(b[pos : pos + 4].tobytes(), "big")
        kind = b[pos + 4 : pos + 8].tobytes()
        if pos + 12 + length > n:
            break  # a chunk longer than the data: cut short, or a length meant to make the decoder allocate
        if kind == b"IHDR" and length >= 13:
            width = int.from_bytes(b[pos + 8 : pos + 12].tobytes(), "big")
            height = int.from_bytes(b[pos + 12 : pos + 16].tobytes(), "big")
            big = _too_large(width, height)
            if big:
                return big
            channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(int(b[pos + 17]), 1)
            raw_bytes = height * (1 + -(-width * channels * int(b[pos + 16]) // 8))  # filter byte + row
        elif kind == b"IDAT":
            idat_bytes += length
        elif kind == b"IEND":
            # Deflate expands at most about 1032 times: less image data than that is a corrupt header.
            if idat_bytes * 1032 + 1024 < raw_bytes:
                return f"the file declares {raw_bytes} bytes of pixels but holds only {idat_bytes} bytes of image data"
            return None
        pos += 12 + length  # length, type, data, CRC
    return "PNG data ends before its IEND chunk (the file is truncated or corrupt)"


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


class AtomicFile:
    """A file written under a temporary name and renamed to ``path`` only when the ``with`` block succeeds.

    For outputs written bit by bit over a long run (MOT lines, JSON of every frame): a crash or Ctrl-C never
    leaves a truncated file under the final name, and memory stays flat however long the run.
    """

    def __init__(self, path: str | os.PathLike, mode: str = "w") -> None:
        self.path = Path(os.fsdecode(path))
        if self.path.is_dir():
            raise OSError(f"{self.path}: is a folder; give a file name")
        fd, self._tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        os.close(fd)
        self.file = open(self._tmp, mode, encoding=None if "b" in mode else "utf-8")  # noqa: SIM115

    def __enter__(self) -> AtomicFile:
        return self

    def write(self, text: str | bytes) -> None:
        self.file.write(text)

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(commit=exc_type is None)

    def close(self, commit: bool = True) -> None:
        """Finish: rename into place when ``commit``, else delete the temporary file."""
        if self.file.closed:
            return
        try:
            self.file.flush()
            if commit:
                os.fsync(self.file.fileno())
                os.chmod(self._tmp, 0o644)
        finally:
            self.file.close()
        if commit:
            os.replace(self._tmp, self.path)
        else:
            with contextlib.suppress(OSError):
                os.unlink(self._tmp)


VIDEO_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}


class VideoWriter:
    """Frames to a video file (``.mp4``/``.mov``/``.mkv``: MPEG-4; ``.avi``: MJPEG), renamed into place on close.

    Frames of another size than the first are an error. The file appears under its name only after
    ``close()`` (or the ``with`` block) succeeds; an abandoned writer leaves nothing behind.
    """

    def __init__(self, path: str | os.PathLike, fps: float) -> None:
        self.path = Path(os.fsdecode(path))
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_FOURCC:
            raise ValueError(f"{self.path}: cannot write video with suffix {suffix or '(none)'!r}; use .mp4 or .avi")
        if not (isinstance(fps, (int, float)) and 0 < fps <= 1000):
            raise ValueError(f"video fps must be in (0, 1000], got {fps!r}")
        if self.path.is_dir():
            raise ValueError(f"{self.path}: is a folder; give a video file name")
        self.fps = float(fps)
        self.frames = 0
        self._fourcc = VIDEO_FOURCC[suffix]
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        # OpenCV cannot open names that are not valid UTF-8: such folders get the temporary file elsewhere.
        parent = self.path.parent
        try:
            str(parent.resolve()).encode("utf-8")
            tmp_dir = parent
        except UnicodeEncodeError:
            tmp_dir = Path(tempfile.gettempdir())
        fd, tmp = tempfile.mkstemp(dir=tmp_dir, prefix=".edgeseg-video-", suffix=suffix)
        os.close(fd)
        self._tmp = Path(tmp)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self.close(commit=exc_type is None)

    def write(self, image: np.ndarray) -> None:
        """Append one BGR uint8 frame."""
        h, w = image.shape[:2]
        if self._writer is None:
            self._size = (w, h)
            writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*self._fourcc), self.fps, (w, h))
            if not writer.isOpened():
                self.close(commit=False)
                raise OSError(f"{self.path}: OpenCV cannot write {self._fourcc} video here")
            self._writer = writer
        elif (w, h) != self._size:
            raise ValueError(f"{self.path}: frame of {w}x{h} after frames of {self._size[0]}x{self._size[1]}")
        self._writer.write(image)
        self.frames += 1

    def close(self, commit: bool = True) -> None:
        """Finish the file and move it into place (``commit``), or discard it."""
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        if not self._tmp.exists():
            return
        if commit and self.frames:
            os.chmod(self._tmp, 0o644)
            shutil.move(str(self._tmp), self.path)
        else:
            with contextlib.suppress(OSError):
                self._tmp.unlink()
