"""The RTSP fixture itself (tests/rtsp.py), read through OpenCV's FFmpeg client as stream() reads it.

Only generous upper bounds on time, to catch hangs; the measured timings are in tests/rtsp.py's docstring.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from rtsp import RtspServer, draw_frame, make_video, read_index, require_rtsp

FRAMES = 90
OPEN_MS = 5000
READ_MS = 2000
PARAMS = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_MS]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require_rtsp()
    return make_video(tmp_path_factory.mktemp("rtsp") / "moving.mp4", frames=FRAMES)


def open_capture(url: str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(url, cv2.CAP_FFMPEG, PARAMS)
    assert capture.isOpened(), f"cannot open {url}"
    return capture


def read_until_failure(capture: cv2.VideoCapture, limit_s: float) -> tuple[int, float]:
    """Read until read() fails: (frames read, seconds taken); fails the test past ``limit_s``."""
    start = time.monotonic()
    count = 0
    while capture.read()[0]:
        count += 1
        assert time.monotonic() - start < limit_s, f"read() still returns frames after {limit_s} s"
    return count, time.monotonic() - start


def test_index_code_survives_coding() -> None:
    for index in (0, 1, 37, 89, 255):
        frame = draw_frame(index)
        lossy = cv2.imdecode(cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], cv2.IMREAD_COLOR)
        assert read_index(frame) == read_index(lossy) == index


def test_serves_the_video_in_order(video: Path) -> None:
    source = cv2.VideoCapture(str(video))
    reference = [source.read()[1] for _ in range(FRAMES)]
    source.release()
    with RtspServer(video) as server:
        assert server.url.startswith("rtsp://127.0.0.1:")
        capture = open_capture(server.url)
        try:
            assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(30, abs=0.5)
            frames = []
            for _ in range(45):
                ok, frame = capture.read()
                assert ok
                frames.append(frame)
        finally:
            capture.release()
    assert frames[0].shape == (240, 320, 3)
    indices = [read_index(frame) for frame in frames]
    steps = np.diff(indices) % FRAMES
    assert np.all(steps == 1), indices  # consecutive frames, none dropped or repeated on loopback
    for index, frame in zip(indices, frames):
        assert np.abs(frame.astype(np.int16) - reference[index]).mean() < 12  # MJPEG of the mp4v frames


def test_kill_ends_reads_and_restart_serves_again(video: Path) -> None:
    with RtspServer(video) as server:
        url = server.url
        capture = open_capture(url)
        for _ in range(10):
            assert capture.read()[0]
        server.kill()
        # What was already received is still delivered, then read() fails at once (the TCP connection dropped).
        _, seconds = read_until_failure(capture, limit_s=READ_MS / 1000 + 8)
        assert seconds < READ_MS / 1000 + 8
        assert not capture.read()[0]  # and stays failed: the old capture never recovers by itself
        capture.release()

        start = time.monotonic()
        down = cv2.VideoCapture(url, cv2.CAP_FFMPEG, PARAMS)  # nobody listening: refused, fails quickly
        assert not down.isOpened()
        assert time.monotonic() - start < OPEN_MS / 1000 + 5

        assert server.restart() == url  # same port and path
        again = open_capture(url)
        try:
            indices = []
            for _ in range(20):
                ok, frame = again.read()
                assert ok
                indices.append(read_index(frame))
            assert np.all(np.diff(indices) % FRAMES == 1), indices
        finally:
            again.release()


def test_stalled_server_read_times_out(video: Path) -> None:
    with RtspServer(video) as server:
        capture = open_capture(server.url)
        try:
            assert capture.read()[0]
            server.freeze()
            # No data and no disconnection: read() fails only through CAP_PROP_READ_TIMEOUT_MSEC.
            _, seconds = read_until_failure(capture, limit_s=READ_MS / 1000 + 10)
            assert seconds < READ_MS / 1000 + 10
        finally:
            server.thaw()
            capture.release()


def test_stop_is_clean_and_ends_the_stream(video: Path) -> None:
    server = RtspServer(video)
    server.start()
    capture = open_capture(server.url)
    try:
        assert capture.read()[0]
        assert server.stop() == 0  # SIGTERM: exit status 0
        read_until_failure(capture, limit_s=READ_MS / 1000 + 8)
    finally:
        capture.release()
        server.stop()


def test_without_loop_the_stream_ends_after_the_file(video: Path) -> None:
    with RtspServer(video, loop=False) as server:
        capture = open_capture(server.url)
        try:
            count, _ = read_until_failure(capture, limit_s=FRAMES / 30 + 10)
        finally:
            capture.release()
        assert count == FRAMES
        assert server.running  # the end of one playback is not the end of the server


def test_start_failure_reports_stderr(tmp_path: Path) -> None:
    require_rtsp()
    bad = tmp_path / "not-a-video.mp4"
    bad.write_bytes(b"\x00" * 1000)
    with pytest.raises(RuntimeError, match="did not start"):
        RtspServer(bad, start_timeout=30).start()
