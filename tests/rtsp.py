"""A real RTSP server on 127.0.0.1 for the tests: tests/rtsp_serve.py (GStreamer's RTSP server) in a subprocess.

    with RtspServer(make_video(tmp_path / "in.mp4")) as server:
        cap = cv2.VideoCapture(server.url, cv2.CAP_FFMPEG, [...])
        server.kill()      # a crash: clients see the connection drop
        server.restart()   # the same port and path

The server runs under Debian's /usr/bin/python3 (where python3-gi and the GStreamer typelibs are installed;
``.ci/system-packages`` installs them), not the venv's interpreter. ``EDGESEG_RTSP_PYTHON`` overrides it.

What OpenCV 5's FFmpeg client does against it (measured on loopback, 320x240 MJPEG at 30 fps):
- open takes ~0.67 s (stream probing), and about 6 frames (~0.2 s) are then buffered ahead of live;
- OpenCV asks for RTP over TCP first unless OPENCV_FFMPEG_CAPTURE_OPTIONS is set (setting it to anything
  drops that preference: UDP first, TCP after a 461 reply);
- a killed or stopped server: the buffered frames come out, then read() returns False at once (ms);
- a stalled server (SIGSTOP, freeze()): read() returns False after CAP_PROP_READ_TIMEOUT_MSEC (default 30 s);
  opening against it fails after CAP_PROP_OPEN_TIMEOUT_MSEC (default 30 s); nobody listening fails in ~1 ms;
- a failed capture never recovers; a new VideoCapture (or open()) on the same URL after restart() works.
"""

from __future__ import annotations

import contextlib
import functools
import os
import selectors
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

SERVE = Path(__file__).with_name("rtsp_serve.py")
PYTHON = os.environ.get("EDGESEG_RTSP_PYTHON", "/usr/bin/python3")
HOST = "127.0.0.1"
INDEX_BITS = 8  # frames carry their index as a bar code of this many bits along the top (read_index)

_CHECK = """
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gst, GstRtsp, GstRtspServer
Gst.init(None)
missing = [e for e in ("filesrc", "decodebin", "videoconvert", "videoscale", "jpegenc", "appsrc", "appsink",
                       "rtpjpegpay", "qtdemux", "avdec_mpeg4") if Gst.ElementFactory.find(e) is None]
if missing:
    raise SystemExit("GStreamer elements missing: " + ", ".join(missing))
"""


@functools.cache
def rtsp_available() -> str | None:
    """None when the RTSP server can run here, else why not (to skip with)."""
    if not Path(PYTHON).is_file():
        return f"{PYTHON} not found (the RTSP server runs under Debian's python3 with python3-gi)"
    try:
        check = subprocess.run([PYTHON, "-c", _CHECK], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"cannot run {PYTHON}: {error}"
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["?"])[-1]
        return f"GStreamer's RTSP server is not usable from {PYTHON} ({last}); run .ci/system-packages"
    return None


def require_rtsp() -> None:
    """Skip (with the reason) where the RTSP server cannot run; in CI that is a failure."""
    reason = rtsp_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"RTSP server unavailable in CI: {reason}")
        pytest.skip(reason)


def make_video(path: Path, frames: int = 90, size: tuple[int, int] = (320, 240), fps: float = 30.0) -> Path:
    """Write a generated mp4v video of moving shapes; each frame carries its index (see read_index)."""
    width, height = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"cv2.VideoWriter cannot write {path}")
    try:
        for index in range(frames):
            writer.write(draw_frame(index, width, height))
    finally:
        writer.release()
    return path


def draw_frame(index: int, width: int = 320, height: int = 240) -> np.ndarray:
    """The generated frame number ``index``: shapes moving over a gradient, the index coded along the top."""
    frame = np.empty((height, width, 3), np.uint8)
    frame[:] = np.linspace(40, 140, width, dtype=np.uint8)[None, :, None]
    frame[..., 2] = 90
    cx = int((0.1 + 0.8 * ((index * 4) % width) / width) * width)
    cv2.circle(frame, (cx, height // 2), max(4, height // 8), (0, 220, 255), -1)
    top = (index * 3) % max(1, height - height // 4 - 20) + 20
    cv2.rectangle(frame, (width // 3, top), (width // 3 + width // 6, top + height // 6), (230, 60, 20), -1)
    bar = width // INDEX_BITS
    for bit in range(INDEX_BITS):
        frame[: max(8, height // 15), bit * bar : (bit + 1) * bar] = 255 if index >> bit & 1 else 0
    return frame


def read_index(frame: np.ndarray) -> int:
    """The index that draw_frame coded into a frame (robust to lossy coding), modulo 2**INDEX_BITS."""
    height, width = frame.shape[:2]
    bar = width // INDEX_BITS
    rows = frame[: max(8, height // 15) - 2, :, :].mean(axis=(0, 2))
    return sum(1 << bit for bit in range(INDEX_BITS) if rows[bit * bar + 2 : (bit + 1) * bar - 2].mean() > 128)


class RtspServer:
    """tests/rtsp_serve.py serving ``video`` at rtsp://127.0.0.1:PORT/PATH, as a context manager.

    ``port=None`` takes a free port at the first start and keeps it for restarts. ``loop=True`` plays the
    file forever as one shared live stream (a camera); ``loop=False`` gives each client one playback that
    ends (RTCP BYE) after the last frame. ``udp=True`` offers RTP over UDP as well as interleaved in the
    RTSP connection (the default, and what OpenCV asks for unless OPENCV_FFMPEG_CAPTURE_OPTIONS is set).
    """

    def __init__(
        self,
        video: Path,
        port: int | None = None,
        path: str = "stream",
        loop: bool = True,
        *,
        fps: float | None = None,
        udp: bool = False,
        start_timeout: float = 60.0,
    ) -> None:
        self.video = Path(video)
        self.port = port
        self.path = path.strip("/")
        self.loop = loop
        self.fps = fps
        self.udp = udp
        self.start_timeout = start_timeout
        self.process: subprocess.Popen[str] | None = None
        self._stderr = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the server has no port before its first start()")
        return f"rtsp://{HOST}:{self.port}/{self.path}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> str:
        """Start the server and wait until it listens; returns the URL. Raises with the server's stderr."""
        if self.running:
            raise RuntimeError("the RTSP server is already running")
        deadline = time.monotonic() + self.start_timeout
        while True:
            try:
                return self._start_once(deadline)
            except _ListenError:
                # The same port right after a kill: retry briefly while the old socket goes away.
                if time.monotonic() > min(deadline, self._started + 5):
                    raise
                time.sleep(0.1)

    def _start_once(self, deadline: float) -> str:
        command = [PYTHON, str(SERVE), str(self.video), "--port", str(self.port or 0), "--path", self.path]
        command += ["--watch-stdin"] + (["--loop"] if self.loop else []) + (["--udp"] if self.udp else [])
        if self.fps:
            command += ["--fps", str(self.fps)]
        if self._stderr is not None:
            self._stderr.close()
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (lives as long as the server)
        self._started = time.monotonic()
        # stdin stays open: the server exits when it closes, so a test process that dies leaves no server.
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, text=True
        )
        line = self._read_line(deadline)
        if line.startswith("ready "):
            url = line.split()[1]
            self.port = int(url.split(":")[2].split("/")[0])
            return url
        if self.process.poll() is None:
            self.process.kill()  # no ready line in time
        code = self._reap()
        message = f"RTSP server did not start (exit {code}): {line.strip() or 'no ready line'}\n{self.stderr()}"
        if code == 3:
            raise _ListenError(message)
        raise RuntimeError(message)

    def _read_line(self, deadline: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return ""
        return self.process.stdout.readline()

    def stderr(self) -> str:
        """What the server wrote on stderr so far."""
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read()

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM (the server closes its clients' connections and exits 0), SIGKILL after ``timeout``."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # in case it was frozen
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self._reap()

    def kill(self) -> int | None:
        """SIGKILL: a crash, the connections drop without any RTSP teardown."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.kill()
        return self._reap()

    def freeze(self) -> None:
        """SIGSTOP: a stalled source; connections stay open but nothing more arrives (thaw() resumes)."""
        if self.running:
            os.kill(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        if self.running:
            os.kill(self.process.pid, signal.SIGCONT)

    def restart(self) -> str:
        """Stop the server if it runs, and start it again on the same port and path."""
        self.stop()
        return self.start()

    def _reap(self) -> int | None:
        process = self.process
        if process is None:
            return None
        code = process.wait()
        for stream in (process.stdin, process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):  # stdin to a dead server: broken pipe on flush
                    stream.close()
        return code

    def __enter__(self) -> RtspServer:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None


class _ListenError(RuntimeError):
    """The server could not listen on its port (exit code 3)."""
