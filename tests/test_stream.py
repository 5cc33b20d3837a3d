"""model.stream(): real files written by OpenCV, real decoding, real threads; results against model(frame)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

import edgeseg
from edgeseg.errors import SourceError
from edgeseg.sources import open_source
from edgeseg.synthparts import SceneConfig, render_scene

ROOT = Path(__file__).resolve().parents[1]
FRAMES = 24
SIZE = (320, 256)  # width, height: small frames keep the file fast


def stream_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("edgeseg-stream")]


def assert_no_threads_within(seconds: float = 1.0) -> None:
    deadline = time.monotonic() + seconds
    while stream_threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not stream_threads(), f"threads left behind: {stream_threads()}"


@pytest.fixture(scope="module")
def model() -> edgeseg.Model:
    return edgeseg.load("partseg")


@pytest.fixture(scope="module")
def scenes() -> list[np.ndarray]:
    config = SceneConfig(width=SIZE[0], height=SIZE[1], part_size=(40.0, 80.0))
    return [render_scene(i, config).image for i in range(FRAMES)]


@pytest.fixture(scope="module")
def video(tmp_path_factory: pytest.TempPathFactory, scenes: list[np.ndarray]) -> Path:
    path = tmp_path_factory.mktemp("video") / "parts.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, SIZE)
    assert writer.isOpened()
    for image in scenes:
        writer.write(image)
    writer.release()
    return path


def decoded(path: Path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            return frames
        frames.append(frame)


def same(a: edgeseg.Result, b: edgeseg.Result) -> None:
    assert np.array_equal(a.boxes, b.boxes)
    assert np.array_equal(a.scores, b.scores)
    assert np.array_equal(a.class_ids, b.class_ids)
    assert np.array_equal(a.masks.rects, b.masks.rects)
    assert np.array_equal(a.masks.data, b.masks.data)


def test_file_stream_gives_exactly_the_results_of_model_on_each_frame(model: edgeseg.Model, video: Path) -> None:
    frames = decoded(video)
    assert len(frames) == FRAMES
    with model.stream(video, conf=0.3, track=False) as stream:
        results = list(stream)
    assert [r.frame_index for r in results] == list(range(FRAMES))
    for r, frame in zip(results, frames):
        same(r, model(frame, conf=0.3))
        assert np.array_equal(r.image, frame)
        assert r.track_ids is None
        assert {"preprocess", "inference", "postprocess", "latency"} <= set(r.timings)
    stamps = [r.timestamp for r in results]
    assert stamps == pytest.approx([i / 25.0 for i in range(FRAMES)], abs=1e-3)  # presentation times
    summary = stream.summary()
    assert (summary["frames"], summary["processed"], summary["dropped"], summary["skipped"]) == (FRAMES, FRAMES, 0, 0)
    assert set(summary["latency_ms"]) == {"p50", "p90", "p99"}
    assert_no_threads_within()


def test_folder_glob_and_iterable_sources(model: edgeseg.Model, scenes: list[np.ndarray], tmp_path: Path) -> None:
    for i, image in enumerate(scenes[:5]):
        cv2.imwrite(str(tmp_path / f"{i:03d}.png"), image)
    (tmp_path / "002b.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")  # undecodable: skipped, counted
    with model.stream(tmp_path, track=False, fps=10) as stream:
        results = list(stream)
    assert [r.frame_index for r in results] == [0, 1, 2, 4, 5]  # the bad file had index 3
    assert [r.timestamp for r in results] == pytest.approx([0.0, 0.1, 0.2, 0.4, 0.5])
    assert stream.stats.skipped == 1 and stream.stats.frames == 5
    for r, image in zip(results, [*scenes[:3], *scenes[3:5]]):
        same(r, model(image))

    with model.stream(str(tmp_path / "00[0-1].png"), track=False) as stream:
        assert len(list(stream)) == 2

    items = [scenes[0], np.zeros((4, 4), np.float32), (scenes[1], 12.5), "not an image", scenes[2]]
    with model.stream(iter(items), track=False) as stream:
        results = list(stream)
    assert [r.frame_index for r in results] == [0, 2, 4]
    assert results[1].timestamp == 12.5
    assert stream.stats.skipped == 2
    same(results[2], model(scenes[2]))
    assert_no_threads_within()


def test_sources_that_cannot_be_opened_say_why(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        open_source(tmp_path / "missing.mp4")
    bogus = tmp_path / "notavideo.mp4"
    bogus.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="cannot open"):
        open_source(bogus)
    with pytest.raises(SourceError, match="no images"):
        open_source(tmp_path)
    with pytest.raises(SourceError, match="not a stream"):
        open_source(np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(SourceError, match="unsupported source"):
        open_source(3.5)
    if "GStreamer:                   NO" in cv2.getBuildInformation():
        with pytest.raises(SourceError, match="no GStreamer support"):
            open_source("videotestsrc ! videoconvert ! appsink")
    with pytest.raises(SourceError, match=r"cannot open rtsp://127\.0\.0\.1:9/x"):
        open_source("rtsp://127.0.0.1:9/x", timeout=2, reconnect=0)  # nothing listens on port 9
    with pytest.raises(SourceError, match=r"//\*\*\*@"):  # credentials never printed
        open_source("rtsp://user:secret@127.0.0.1:9/x", timeout=2, reconnect=0)


def test_bad_settings_are_refused_before_any_thread(model: edgeseg.Model, video: Path) -> None:
    with pytest.raises(ValueError, match="conf"):
        model.stream(video, conf=2.0)
    with pytest.raises(ValueError, match="tracker"):
        model.stream(video, tracker=object())
    with pytest.raises(ValueError, match="track=True"):
        model.stream(video, track=False, counters=[object()])
    assert not stream_threads()


@pytest.mark.parametrize("how", ["break", "close", "exception", "end", "source-error", "generator-gc"])
def test_every_shutdown_path_ends_every_thread(model: edgeseg.Model, video: Path, how: str) -> None:
    if how == "break":
        with model.stream(video, track=False) as stream:
            for r in stream:
                if r.frame_index == 2:
                    break
    elif how == "close":
        stream = model.stream(video, track=False)
        it = iter(stream)
        next(it)
        stream.close()
        assert list(it) == []
    elif how == "exception":
        with pytest.raises(ZeroDivisionError), model.stream(video, track=False) as stream:
            for _ in stream:
                raise ZeroDivisionError
    elif how == "end":
        assert len(list(model.stream(video, track=False))) == FRAMES
    elif how == "source-error":

        def dying():
            yield np.zeros((64, 64, 3), np.uint8)
            raise OSError("camera unplugged")

        with pytest.raises(OSError, match="unplugged"):
            list(model.stream(dying(), track=False))
    elif how == "generator-gc":
        for r in model.stream(video, track=False):  # no with-block: the generator's close stops the threads
            if r.frame_index == 1:
                break
    assert_no_threads_within()


def test_ctrl_c_stops_a_stream_cleanly(video: Path, tmp_path: Path) -> None:
    script = tmp_path / "run.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, threading, time, itertools
            import numpy as np, edgeseg
            model = edgeseg.load("partseg")
            frames = itertools.cycle([np.full((256, 320, 3), v, np.uint8) for v in (40, 120)])
            try:
                for r in model.stream(frames, track=False):
                    if r.frame_index == 3:
                        print("running", flush=True)
            except KeyboardInterrupt:
                t0 = time.monotonic()
                while any(t.name.startswith("edgeseg-stream") for t in threading.enumerate()):
                    if time.monotonic() - t0 > 1.0:
                        print("threads left", threading.enumerate(), flush=True)
                        sys.exit(3)
                    time.sleep(0.01)
                print("clean", flush=True)
                sys.exit(0)
            """
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "running"
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0 and "clean" in out, out


def test_a_live_source_drops_stale_frames_and_counts_them_exactly(model: edgeseg.Model) -> None:
    # A simulated 60 fps camera, faster than the model here: the newest frame wins, nothing queues up.
    n = 90
    frame = np.full((256, 320, 3), 90, np.uint8)

    def camera():
        t0 = time.perf_counter()
        for i in range(n):
            delay = t0 + i / 60 - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            yield frame

    slow = edgeseg.load(ROOT.parent / "shared" / "models" / "yolov8n-seg.onnx") if _shared_model() else model
    with slow.stream(camera(), track=False, realtime=True) as stream:
        results = list(stream)
    s = stream.stats
    assert s.frames == n
    assert s.processed == len(results) and s.processed + s.dropped == n  # every frame accounted for
    assert s.dropped > 0 if slow is not model else s.dropped >= 0
    assert [r.frame_index for r in results] == sorted(r.frame_index for r in results)
    assert results[-1].frame_index == n - 1  # the last frame is never dropped at the end of a source
    assert_no_threads_within()


def _shared_model() -> bool:
    return (ROOT.parent / "shared" / "models" / "yolov8n-seg.onnx").is_file()


def test_realtime_file_playback_drops_when_the_model_is_slower(video: Path) -> None:
    if not _shared_model():
        pytest.skip("needs ../shared/models/yolov8n-seg.onnx")
    slow = edgeseg.load(ROOT.parent / "shared" / "models" / "yolov8n-seg.onnx")
    with slow.stream(video, track=False, realtime=True) as stream:
        results = list(stream)
    s = stream.stats
    assert s.frames == FRAMES and s.processed + s.dropped == FRAMES and s.processed == len(results)


def test_many_open_close_cycles_leave_no_thread(model: edgeseg.Model, video: Path) -> None:
    for i in range(20):
        with model.stream(video, track=False) as stream:
            for r in stream:
                if r.frame_index == i % 3:
                    break
    assert_no_threads_within()
    assert os.path.exists(video)


class _MjpegServer:
    """A real MJPEG-over-HTTP camera on 127.0.0.1 (multipart/x-mixed-replace, as IP cameras serve it)."""

    def __init__(self, frames: list[np.ndarray], repeat: int) -> None:
        import http.server

        jpegs = [cv2.imencode(".jpg", f)[1].tobytes() for f in frames]

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                try:
                    for _ in range(repeat):
                        for jpg in jpegs:
                            self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                            self.wfile.write(f"Content-Length: {len(jpg)}\r\n\r\n".encode() + jpg + b"\r\n")
                            time.sleep(0.01)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_http_mjpeg_camera_stream(model: edgeseg.Model, scenes: list[np.ndarray]) -> None:
    server = _MjpegServer(scenes[:4], repeat=3)
    try:
        with model.stream(server.url, track=False, reconnect=0, timeout=5.0, realtime=False) as stream:
            results = list(stream)
    finally:
        server.close()
    assert len(results) == 12 and stream.stats.frames == 12  # realtime=False: a live source that drops nothing
    expected = cv2.imdecode(cv2.imencode(".jpg", scenes[1])[1], cv2.IMREAD_COLOR)
    assert np.abs(results[1].image.astype(int) - expected).mean() < 1.0  # the frames the camera sent
    assert_no_threads_within()
