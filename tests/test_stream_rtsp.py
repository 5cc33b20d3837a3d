"""model.stream() on a real RTSP server on 127.0.0.1: reconnection after the server dies, and a clean end."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeseg
from edgeseg.synthparts import BeltConfig, render_belt

from rtsp import RtspServer, require_rtsp


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rtsp") / "belt.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (320, 256))
    for frame in render_belt(50, seed=4, config=BeltConfig(width=320, height=256, part_size=(40.0, 72.0))):
        writer.write(frame.image)
    writer.release()
    return path


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("edgeseg-stream")]


def test_rtsp_stream_reconnects_after_the_server_restarts_and_ends_when_it_never_returns(video: Path) -> None:
    require_rtsp()
    model = edgeseg.load("partseg")
    with RtspServer(video, loop=True) as server:
        stream = model.stream(server.url, track=False, reconnect=4, timeout=2.0, keep_images=False)
        phases: list[list[int]] = [[], [], []]
        phase = 0
        restarted = threading.Event()

        def restart_later() -> None:
            time.sleep(1.0)
            server.restart()
            restarted.set()

        with stream:
            for result in stream:
                phases[phase].append(result.frame_index)
                if phase == 0 and len(phases[0]) == 15:
                    server.kill()  # a crash, not a clean shutdown
                    threading.Thread(target=restart_later, daemon=True).start()
                    phase = 1
                elif phase == 1 and restarted.is_set() and len(phases[1]) >= 15:
                    server.kill()  # and this time it never comes back
                    phase = 2
            ended = time.monotonic()
        stats = stream.stats
    assert len(phases[0]) == 15
    assert len(phases[1]) >= 15, "the stream did not go on after the server came back"
    assert stats.reconnects == 1 and stats.gap_seconds > 0
    frames = [i for p in phases for i in p]
    assert frames == sorted(frames) and len(set(frames)) == len(frames)  # indices keep counting across the gap
    assert stats.frames == stats.processed + stats.dropped
    deadline = ended + 1.0
    while stream_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not stream_threads()


def test_rtsp_frames_are_the_served_video(video: Path) -> None:
    require_rtsp()
    model = edgeseg.load("partseg")
    cap = cv2.VideoCapture(str(video))
    ok, first = cap.read()
    assert ok
    with RtspServer(video, loop=True) as server, model.stream(server.url, track=False, timeout=5.0) as stream:
        for result in stream:
            assert result.image.shape == first.shape and result.image.dtype == np.uint8
            assert result.timestamp == pytest.approx(time.time(), abs=5.0)  # live sources: capture time
            if result.frame_index >= 5:
                break


def test_a_stalled_rtsp_source_is_reopened_after_its_timeout(video: Path) -> None:
    require_rtsp()
    model = edgeseg.load("partseg")
    with RtspServer(video, loop=True) as server:
        before, after = [], []
        with model.stream(server.url, track=False, reconnect=6, timeout=1.0, keep_images=False) as stream:
            for result in stream:
                if len(before) < 10:
                    before.append(result.frame_index)
                    if len(before) == 10:
                        server.freeze()  # the connection stays open but no frame comes: a stall, not a drop
                        threading.Timer(2.5, server.thaw).start()
                    continue
                after.append(result.frame_index)
                if len(after) == 10:
                    break
        stats = stream.stats
    assert len(after) == 10 and after[0] > before[-1]
    assert stats.reconnects >= 1 and stats.gap_seconds >= 1.0
