"""Frame sources for ``model.stream()``: video files, cameras, network streams, GStreamer, folders, iterables.

Every source is opened by ``open_source`` and read from one thread (the stream's capture thread) through
the ``FrameSource`` protocol. A source says whether it is *live* (frames keep coming whether or not they
are read: cameras, network streams) or *paced by its reader* (files, folders, iterables): the stream drops
stale frames of live sources only.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, Union

import cv2
import numpy as np

from .errors import ImageError, SourceError
from .io import list_images, read_image

log = logging.getLogger("edgeseg")

VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv")
NETWORK_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")

StreamSource = Union[str, os.PathLike, int, Iterable[Any]]


@dataclass
class Frame:
    """One frame read from a source.

    Attributes:
        index: position in the source, 0-based, counting every frame read (dropped ones included).
        image: (H, W, 3) uint8 BGR.
        timestamp: seconds: presentation time for files and folders, capture time (``time.time()``)
            for live sources and iterables (or the time an iterable gave with the frame).
        captured: ``time.perf_counter()`` when the frame was read, for capture-to-result latency.
    """

    index: int
    image: np.ndarray
    timestamp: float
    captured: float


class FrameSource(Protocol):
    """What the stream needs of a source. ``read`` is only ever called from one thread."""

    name: str
    live: bool  # frames arrive whether or not they are read (cameras, network streams)
    fps: float | None  # nominal frame rate, when the source tells one

    def read(self) -> Frame | None:
        """The next frame; None at the end of the source. Raises ``SourceError`` when it cannot go on."""
        ...

    def close(self) -> None:
        """Release the device or file; safe to call twice. Called by the thread that reads."""
        ...

    def stop(self) -> None:
        """Ask a read under way to give up as soon as it can (a reconnection backoff ends at once).

        Thread-safe: the stream calls it from the thread that closes it, while another thread may be reading.
        """
        ...


@dataclass
class SourceCounters:
    """What a source went through: undecodable frames skipped, reconnections and the time lost to them."""

    skipped: int = 0
    reconnects: int = 0
    gap_seconds: float = 0.0


def _has_gstreamer() -> bool:
    info = cv2.getBuildInformation()
    return re.search(r"GStreamer:\s*YES", info) is not None


def _describe_capture_failure(what: str, backend_hint: str) -> str:
    return f"cannot open {what}: {backend_hint}"


class _Capture:
    """A cv2.VideoCapture source: video files, cameras, network streams and GStreamer pipelines."""

    def __init__(
        self,
        target: str | int,
        *,
        name: str,
        live: bool,
        api: int,
        params: list[int] | None = None,
        requests: dict[int, float] | None = None,
        reconnect: int = 0,
        timeout: float = 10.0,
        max_skips: int = 30,
    ) -> None:
        self.name = name
        self.live = live
        self.counters = SourceCounters()
        self._target = target
        self._api = api
        self._params = params or []
        self._requests = requests or {}
        self._reconnect = reconnect
        self._timeout = timeout
        self._max_skips = max_skips
        self._index = 0
        self._closed = threading.Event()
        self._cap = self._open()
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and np.isfinite(fps) and 0 < fps < 1000 else None

    def _open(self) -> cv2.VideoCapture:
        cap = cv2.VideoCapture(self._target, self._api, self._params)
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.name}: {self._open_hint()}")
        for prop, value in self._requests.items():
            cap.set(prop, value)  # requests: a camera may pick the nearest mode it has
        return cap

    def _open_hint(self) -> str:
        if isinstance(self._target, int) or str(self._target).startswith("/dev/video"):
            return "no such camera, or it is busy (another program has it open) or not permitted"
        if self._api == cv2.CAP_GSTREAMER:
            return "GStreamer could not start the pipeline (run it with gst-launch-1.0 to see why)"
        if self.live:
            return f"no answer within {self._timeout:g} s, or the server refused the stream"
        return "not a video OpenCV's FFmpeg backend can decode (or the file is unreadable)"

    def read(self) -> Frame | None:
        misses = 0
        while not self._closed.is_set():
            ok, image = self._cap.read()
            if ok and image is not None and image.size:
                return self._frame(image)
            if self.live:
                if not self._reopen():
                    return None
                continue
            # A file: False is the end, or a frame FFmpeg could not decode. Past the end the position
            # stops moving; a bad frame is skipped with a warning and reading goes on.
            misses += 1
            pos, count = self._cap.get(cv2.CAP_PROP_POS_FRAMES), self._cap.get(cv2.CAP_PROP_FRAME_COUNT)
            if count <= 0 or pos >= count - 1 or misses > self._max_skips:
                return None
            self.counters.skipped += 1
            self._index += 1
            log.warning("%s: frame %d could not be decoded; skipped", self.name, self._index - 1)
        return None

    def _frame(self, image: np.ndarray) -> Frame:
        captured = time.perf_counter()
        if self.live:
            timestamp = time.time()
        else:
            msec = self._cap.get(cv2.CAP_PROP_POS_MSEC)
            timestamp = msec / 1e3 if np.isfinite(msec) and msec >= 0 else self._index / (self.fps or 30.0)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        elif image.shape[2] == 4:
            image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
        frame = Frame(self._index, image, timestamp, captured)
        self._index += 1
        return frame

    def _reopen(self) -> bool:
        """Reopen a live source that stalled or disconnected, with exponential backoff; False when it stays gone."""
        self._cap.release()
        if self._reconnect <= 0:
            return False
        lost = time.perf_counter()
        delay = 0.25
        for attempt in range(1, self._reconnect + 1):
            if self._closed.wait(delay):
                return False
            log.warning("%s: stream lost; reconnecting (attempt %d of %d)", self.name, attempt, self._reconnect)
            try:
                self._cap = self._open()
            except SourceError:
                delay = min(delay * 2, 5.0)
                continue
            gap = time.perf_counter() - lost
            self.counters.reconnects += 1
            self.counters.gap_seconds += gap
            log.warning("%s: reconnected after %.1f s", self.name, gap)
            return True
        log.error("%s: gone after %d reconnection attempts", self.name, self._reconnect)
        return False

    def stop(self) -> None:
        self._closed.set()

    def close(self) -> None:
        self._closed.set()
        self._cap.release()


class _Folder:
    """Images of a folder or glob, sorted by name, played as a sequence at ``fps``."""

    live = False

    def __init__(self, paths: list[Path], name: str, fps: float) -> None:
        self.name = name
        self.fps = fps
        self.counters = SourceCounters()
        self._paths = iter(paths)
        self._index = 0

    def read(self) -> Frame | None:
        for path in self._paths:
            index = self._index
            self._index += 1
            try:
                image = read_image(path)
            except (ImageError, OSError) as e:
                self.counters.skipped += 1
                log.warning("%s: skipped: %s", path, e)
                continue
            return Frame(index, image, index / self.fps, time.perf_counter())
        return None

    def stop(self) -> None:
        pass  # reads are short: the stream's closed channels end the loop

    def close(self) -> None:
        self._paths = iter(())


class _Iterable:
    """Frames from any iterable of BGR arrays, or of ``(array, timestamp)`` pairs (ROS, vendor SDKs)."""

    def __init__(self, items: Iterable[Any], name: str, live: bool, fps: float | None) -> None:
        self.name = name
        self.live = live
        self.fps = fps
        self.counters = SourceCounters()
        self._items: Iterator[Any] = iter(items)
        self._index = 0

    def read(self) -> Frame | None:
        for item in self._items:
            index = self._index
            self._index += 1
            stamp = None
            if isinstance(item, tuple) and len(item) == 2:
                item, stamp = item
            image = np.asarray(item) if not isinstance(item, np.ndarray) else item
            problem = _frame_problem(image)
            if problem is None and stamp is not None and not isinstance(stamp, (int, float, np.integer, np.floating)):
                problem = f"its timestamp must be a number of seconds, got {type(stamp).__name__}"
            if problem is not None:
                self.counters.skipped += 1
                log.warning("%s: item %d skipped: %s", self.name, index, problem)
                continue
            if image.ndim == 2:
                image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
            return Frame(index, image, float(stamp) if stamp is not None else time.time(), time.perf_counter())
        return None

    def stop(self) -> None:
        pass  # a blocked next() cannot be interrupted from outside; the capture thread ends when it returns

    def close(self) -> None:
        close = getattr(self._items, "close", None)  # a generator: run its finally blocks now
        self._items = iter(())
        if callable(close):
            close()


def _frame_problem(image: np.ndarray) -> str | None:
    if image.dtype != np.uint8:
        return f"expected a uint8 BGR image, got dtype {image.dtype}"
    if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)) or image.size == 0:
        return f"expected an (H, W, 3) BGR or (H, W) gray image, got shape {image.shape}"
    return None


def open_source(
    source: StreamSource,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    reconnect: int = 5,
    timeout: float = 10.0,
    live: bool | None = None,
) -> FrameSource:
    """Open a frame source.

    Args:
        source: a video file; a camera (an int index, or ``/dev/videoN``); a network URL (``rtsp://``,
            ``rtsps://``, ``http(s)://`` MJPEG or HLS, as OpenCV's FFmpeg backend reads them); a GStreamer
            pipeline ending in ``appsink`` (needs an OpenCV built with GStreamer, as on Jetson); an image
            folder or glob (sorted by name); or any iterable of BGR uint8 arrays or ``(array, seconds)`` pairs.
        width, height, fps: requested camera mode (cameras pick the nearest they have); for folders, ``fps``
            sets the timestamps (default 30); for iterables, their nominal rate.
        reconnect: network streams: reopen attempts after a stall or disconnect (exponential backoff);
            0 ends the stream at the first loss.
        timeout: network streams: seconds to wait when opening and for each frame before the stream counts
            as stalled.
        live: override whether the source is live (its stale frames may be dropped); default: cameras and
            network streams are, files, folders and iterables are not.

    Raises:
        SourceError: the source does not exist or cannot be opened, with what to do about it.
    """
    if isinstance(source, bool):
        raise SourceError(f"not a source: {source!r}")
    if isinstance(source, (int, np.integer)):
        return _camera(int(source), f"camera {int(source)}", width, height, fps, live)
    if isinstance(source, bytes):
        source = os.fsdecode(source)
    if isinstance(source, (str, os.PathLike)):
        text = os.fspath(source)
        lowered = text.lower()
        if lowered.startswith(NETWORK_SCHEMES):
            return _network(text, reconnect, timeout, live)
        if "appsink" in text and "!" in text:
            return _gstreamer(text, live)
        if re.fullmatch(r"/dev/video\d+", text):
            return _camera(text, text, width, height, fps, live)
        path = Path(text)
        if path.is_dir():
            paths = list_images(path)
            if not paths:
                raise SourceError(f"{text}: no images in this folder")
            return _Folder(paths, text, fps or 30.0)
        if any(c in text for c in "*?["):
            paths = sorted(Path(p) for p in glob.glob(text) if Path(p).is_file())
            if not paths:
                raise SourceError(f"{text}: the pattern matches no files")
            return _Folder(paths, text, fps or 30.0)
        if not path.exists():
            raise SourceError(f"{text}: no such file, folder, camera or URL")
        if not path.is_file():
            raise SourceError(f"{text}: not a regular file")
        cap = _Capture(text, name=text, live=bool(live), api=cv2.CAP_FFMPEG, params=[], reconnect=0, timeout=timeout)
        return cap
    if isinstance(source, np.ndarray):
        raise SourceError("a single image is not a stream: call the model on it, or pass a list of frames")
    if isinstance(source, Iterable):
        return _Iterable(source, type(source).__name__, bool(live), fps)
    raise SourceError(
        f"unsupported source {type(source).__name__}: pass a video file, a camera index or /dev/videoN, "
        "an rtsp:// or http(s):// URL, a GStreamer pipeline, an image folder or glob, or an iterable of frames"
    )


def _camera(
    target: str | int, name: str, width: int | None, height: int | None, fps: float | None, live: bool | None
) -> _Capture:
    requests: dict[int, float] = {}
    for prop, value, label in (
        (cv2.CAP_PROP_FRAME_WIDTH, width, "width"),
        (cv2.CAP_PROP_FRAME_HEIGHT, height, "height"),
        (cv2.CAP_PROP_FPS, fps, "fps"),
    ):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 100000:
                raise SourceError(f"camera {label} must be a positive number, got {value!r}")
            requests[prop] = float(value)
    api = cv2.CAP_V4L2 if os.name == "posix" and not _is_macos() else cv2.CAP_ANY
    return _Capture(target, name=name, live=True if live is None else live, api=api, requests=requests)


def _is_macos() -> bool:
    return os.uname().sysname == "Darwin" if hasattr(os, "uname") else False


def _network(url: str, reconnect: int, timeout: float, live: bool | None) -> _Capture:
    if isinstance(reconnect, bool) or not isinstance(reconnect, int) or reconnect < 0:
        raise SourceError(f"reconnect must be a number of attempts >= 0, got {reconnect!r}")
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
        raise SourceError(f"timeout must be seconds in (0, 3600], got {timeout!r}")
    ms = int(timeout * 1000)
    params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
    shown = re.sub(r"//[^/@]*@", "//***@", url)  # never print credentials
    return _Capture(
        url,
        name=shown,
        live=True if live is None else live,
        api=cv2.CAP_FFMPEG,
        params=params,
        reconnect=reconnect,
        timeout=timeout,
    )


def _gstreamer(pipeline: str, live: bool | None) -> _Capture:
    if not _has_gstreamer():
        raise SourceError(
            "this OpenCV build has no GStreamer support (cv2.getBuildInformation() says GStreamer: NO), so it "
            "cannot run a GStreamer pipeline; use an OpenCV built with GStreamer (on Jetson: the system's "
            "python3-opencv, not the pip wheel) or read the device another way"
        )
    return _Capture(pipeline, name="GStreamer pipeline", live=True if live is None else live, api=cv2.CAP_GSTREAMER)


def is_video_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a video file by its suffix."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


__all__ = ["Frame", "FrameSource", "SourceCounters", "is_video_file", "open_source"]
