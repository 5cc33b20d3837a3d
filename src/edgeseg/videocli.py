"""The video subcommands of ``edgeseg``: track, synth-video, and the video forms of predict, demo and bench."""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .cliargs import (
    add_detection_options,
    add_model_options,
    detection_kwargs,
    load_model,
    make_output_dir,
    refuse_overwriting_sources,
    shown,
)
from .io import AtomicFile, VideoWriter
from .model import Model
from .result import Result
from .zoo import DEFAULT_MODEL


class StatusLine:
    """One self-updating status line on a terminal (a plain line every 10 s when stderr is not a terminal)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._tty = sys.stderr.isatty()
        self._last = 0.0
        self._width = 0

    def update(self, text: str | Callable[[], str], force: bool = False) -> None:
        """Show ``text`` (or what the callable returns, computed only when the line is due)."""
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < (0.5 if self._tty else 10.0)):
            return
        self._last = now
        text = text() if callable(text) else text
        if self._tty:
            sys.stderr.write("\r" + text.ljust(self._width))
            self._width = len(text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled and self._tty and self._width:
            sys.stderr.write("\n")
            sys.stderr.flush()


def _status(stream: Any) -> str:
    s = stream.stats
    return (
        f"frame {s.frames}  processed {s.processed}  {s.fps:.1f} fps  latency p50 {s.latency_ms['p50']:.0f} ms "
        f"p99 {s.latency_ms['p99']:.0f} ms  dropped {s.dropped}  skipped {s.skipped}  reconnects {s.reconnects}"
    )


def parse_line(text: str) -> tuple[float, float, float, float]:
    """``"x1,y1,x2,y2"`` in pixels -> a tuple, or a ValueError saying what is expected."""
    parts = text.replace(" ", "").split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(np.isfinite(values)):
        raise ValueError(f"--line must be four numbers x1,y1,x2,y2 in pixels, got {text!r}")
    if values[:2] == values[2:]:
        raise ValueError(f"--line {text!r} has two equal end points: a line needs two distinct points")
    return values  # type: ignore[return-value]


def parse_polygon(text: str) -> np.ndarray:
    """``"x1,y1,x2,y2,x3,y3,..."`` in pixels -> a (K, 2) array with K >= 3, or a ValueError."""
    try:
        values = np.array([float(p) for p in text.replace(" ", "").split(",")], np.float64)
    except ValueError:
        values = np.zeros(0)
    if values.size < 6 or values.size % 2 or not np.isfinite(values).all():
        raise ValueError(f"--zone must be at least three x,y points in pixels (x1,y1,x2,y2,x3,y3,...), got {text!r}")
    return values.reshape(-1, 2)


def _source_arg(text: str) -> Any:
    return int(text) if text.isdigit() else text


def _outputs(args: argparse.Namespace) -> list[Path]:
    return [p for p in (args.out, args.save_mot, args.save_json) if p is not None]


def _check_outputs(source: Any, outputs: Sequence[Path]) -> None:
    if len({p.resolve() for p in outputs}) != len(outputs):
        raise ValueError("--out, --save-mot and --save-json must be different files")
    if isinstance(source, str) and Path(source).is_file():
        refuse_overwriting_sources([Path(source)], outputs)
    for p in outputs:
        if p.parent and not p.parent.exists():
            make_output_dir(p.parent)


def _mot_lines(result: Result) -> str:
    """MOTChallenge lines ``frame,id,x,y,w,h,score,-1,-1,-1`` (1-based frames) of the tracked instances."""
    lines = []
    for tid, box, score in zip(result.track_ids.tolist(), result.boxes.tolist(), result.scores.tolist()):
        if tid > 0:
            x1, y1, x2, y2 = box
            lines.append(
                f"{result.frame_index + 1},{tid},{x1:.2f},{y1:.2f},{x2 - x1:.2f},{y2 - y1:.2f},{score:.4f},-1,-1,-1\n"
            )
    return "".join(lines)


def _json_records(result: Result) -> list[dict]:
    records = result.to_coco(image_id=int(result.frame_index))
    ids = result.track_ids if result.track_ids is not None else np.full(len(result), -1)
    for record, tid in zip(records, ids.tolist()):
        record["frame"] = int(result.frame_index)
        record["timestamp"] = round(float(result.timestamp), 6)
        record["track_id"] = int(tid)
    return records


class _Show:
    """An OpenCV window, when this OpenCV and this machine can show one."""

    def __init__(self) -> None:
        import cv2

        try:
            cv2.namedWindow("edgeseg", cv2.WINDOW_NORMAL)
        except cv2.error as exc:
            raise ValueError(
                "--show needs a display and an OpenCV with GUI support (opencv-python, not opencv-python-headless): "
                f"{str(exc).strip().splitlines()[-1]}"
            ) from exc
        self._cv2 = cv2

    def show(self, image: np.ndarray) -> bool:
        """Show a frame; False when the user pressed q or Esc."""
        self._cv2.imshow("edgeseg", image)
        return self._cv2.waitKey(1) & 0xFF not in (ord("q"), 27)

    def close(self) -> None:
        self._cv2.destroyAllWindows()


def run_tracking(
    model: Model,
    source: Any,
    *,
    detection: dict,
    out: Path | None = None,
    save_mot: Path | None = None,
    save_json: Path | None = None,
    line: tuple[float, float, float, float] | None = None,
    zone: np.ndarray | None = None,
    show: bool = False,
    realtime: bool | None = None,
    max_frames: int | None = None,
    tracker: Any = None,
    track: bool = True,
    status: StatusLine | None = None,
    reconnect: int = 5,
    timeout: float = 10.0,
) -> dict:
    """Stream ``source`` through ``model`` with tracking and counting, writing the requested outputs.

    Returns the stream's ``summary()``. Outputs appear under their names only when the run ends normally
    (Ctrl-C included: what was processed so far is kept).
    """
    from .counting import LineCounter, ZoneCounter
    from .draw import Trails, draw_caption, draw_line, draw_zone

    counters = {}
    if line is not None:
        counters["line"] = LineCounter(line, names=model.names)
    if zone is not None:
        counters["zone"] = ZoneCounter(zone, names=model.names)
    window = _Show() if show else None  # before opening the source: a missing display fails fast
    stream = model.stream(
        source,
        **detection,
        track=track,
        tracker=tracker,
        counters=counters or None,
        realtime=realtime,
        keep_images=out is not None or show,
        reconnect=reconnect,
        timeout=timeout,
    )
    try:
        writer = VideoWriter(out, stream.source.fps or 30.0) if out is not None else None
        mot = AtomicFile(save_mot) if save_mot is not None else None
        js = AtomicFile(save_json) if save_json is not None else None
    except BaseException:
        stream.close()
        raise
    trails = Trails() if track else None
    status = status or StatusLine(False)
    first_record = True
    committed = False
    try:
        if js is not None:
            js.write("[")
        with stream:
            for result in stream:
                if mot is not None:
                    mot.write(_mot_lines(result))
                if js is not None:
                    for record in _json_records(result):
                        js.write(("\n" if first_record else ",\n") + json.dumps(record))
                        first_record = False
                if writer is not None or window is not None:
                    image = result.draw(result.image)
                    if trails is not None:
                        trails.update(result)
                        trails.draw(image, result)
                    if line is not None:
                        counts = stream.counters["line"].total
                        draw_line(image, line, " ".join(f"{k} {v}" for k, v in counts.items()))
                    if zone is not None:
                        total = stream.counters["zone"].total
                        draw_zone(image, zone, f"entered {total['entered']} inside {total['occupancy']}")
                    _, _, dropped, fps = stream.progress()
                    latency = result.timings["latency"]
                    caption = f"frame {result.frame_index}  {fps:.1f} fps  {latency:.0f} ms  dropped {dropped}"
                    draw_caption(image, caption)
                    if writer is not None:
                        writer.write(image)
                    if window is not None and not window.show(image):
                        break
                status.update(lambda: _status(stream))
                if max_frames is not None and result.frame_index + 1 >= max_frames:
                    break
        committed = True
    except KeyboardInterrupt:
        committed = True  # keep what was processed so far
        status.update("interrupted", force=True)
    finally:
        status.update(_status(stream), force=True)
        status.done()
        if js is not None and committed:
            js.write("\n]\n")
        for f in (writer, mot, js):
            if f is not None:
                f.close(commit=committed)
        if window is not None:
            window.close()
    return stream.summary()


def _print_summary(summary: dict, names: Sequence[str], as_json: bool, quiet: bool) -> None:
    if as_json:
        print(json.dumps(summary))
        return
    if quiet:
        return
    lat = summary["latency_ms"]
    print(
        f"{summary['processed']} of {summary['frames']} frames processed at {summary['fps']:.1f} FPS; "
        f"dropped {summary['dropped']}, skipped {summary['skipped']}, reconnects {summary['reconnects']}; "
        f"latency p50 {lat['p50']:.1f} ms, p90 {lat['p90']:.1f} ms, p99 {lat['p99']:.1f} ms"
    )
    print("mean ms per frame: " + ", ".join(f"{k} {v:.2f}" for k, v in summary["stage_ms"].items()))
    print(f"{summary['tracks']} tracks")
    for name, counter in summary["counts"].items():
        if counter.get("type") == "zone":
            print(f"{name}: tracks entered, and inside at the end:")
            print(f"  {'class':<22}{'entered':>8}{'inside':>7}")
            for cls, n in counter["counts"].items():
                print(f"  {cls:<22}{n:>8}{counter['occupancy'].get(cls, 0):>7}")
            continue
        print(f"{name} crossings:")
        print(f"  {'class':<22}{'in':>6}{'out':>6}")
        for cls, c in counter["counts"].items():
            print(f"  {cls:<22}{c['in']:>6}{c['out']:>6}")


def cmd_track(args: argparse.Namespace) -> int:
    from .track import TrackerConfig

    args.model = args.model or DEFAULT_MODEL
    source = _source_arg(args.source)
    line = parse_line(args.line) if args.line else None
    zone = parse_polygon(args.zone) if args.zone else None
    outputs = _outputs(args)
    _check_outputs(source, outputs)
    model = load_model(args)
    config = TrackerConfig(association=args.association, cmc=args.cmc)
    config.validate()
    summary = run_tracking(
        model,
        source,
        detection=detection_kwargs(args),
        out=args.out,
        save_mot=args.save_mot,
        save_json=args.save_json,
        line=line,
        zone=zone,
        show=args.show,
        realtime=True if args.realtime else None,
        max_frames=args.max_frames,
        tracker=config,
        status=StatusLine(not args.quiet and not args.json),
        reconnect=args.reconnect,
        timeout=args.timeout,
    )
    _print_summary(summary, model.names, args.json, args.quiet)
    if not args.json and not args.quiet:
        for label, path in (("annotated video", args.out), ("MOT tracks", args.save_mot), ("JSON", args.save_json)):
            if path is not None:
                print(f"saved {label} to {shown(path)}")
    return 0


def predict_video(model: Model, args: argparse.Namespace, source: Path) -> int:
    """``edgeseg predict VIDEO``: per-frame instances (no tracking) to an annotated video and COCO JSON."""
    out_dir: Path = args.out
    video = None if args.no_images else out_dir / f"{source.stem}.mp4"
    js = out_dir / "predictions.json" if args.save_json else None
    outputs = [p for p in (video, js) if p is not None]
    refuse_overwriting_sources([source], outputs)
    make_output_dir(out_dir)
    summary = run_tracking(
        model,
        str(source),
        detection=detection_kwargs(args),
        out=video,
        save_json=js,
        track=False,
        status=StatusLine(not args.quiet),
    )
    _print_summary(summary, model.names, False, args.quiet)
    if not args.quiet:
        for label, path in (("annotated video", video), ("predictions.json (COCO results, image_id = frame)", js)):
            if path is not None:
                print(f"saved {label} to {shown(path)}")
    return 1 if summary["skipped"] else 0


def cmd_synth_video(args: argparse.Namespace) -> int:
    from .synthparts import BeltConfig, write_belt_video

    config = BeltConfig(width=args.width, height=args.height, fps=args.fps, speed=args.speed)
    video = write_belt_video(args.out, args.frames, seed=args.seed, config=config, overwrite=args.overwrite)
    print(f"wrote {video.frames} frames ({config.width}x{config.height}, {config.fps:g} fps) to {shown(video.path)}")
    print(f"ground truth: {shown(video.mot_path)} (MOTChallenge), {shown(video.coco_path)} (COCO, RLE masks)")
    print(f"true line crossings ({shown(video.counts_path)}): {json.dumps(video.counts)}")
    return 0


def demo_video(model: Model, args: argparse.Namespace) -> int:
    """``edgeseg demo --video``: render a belt sequence, track and count it, compare with the true counts."""
    from .synthparts import BeltConfig, write_belt_video

    seed = args.seed if args.seed is not None else int(np.random.default_rng().integers(0, 2**31))
    config = BeltConfig(width=args.width, height=args.height)
    out = args.out if args.out.suffix.lower() in (".mp4", ".avi") else args.out.with_suffix(".mp4")
    _check_outputs(None, [out])
    with tempfile.TemporaryDirectory(prefix="edgeseg-demo-") as tmp:
        video = write_belt_video(Path(tmp) / "belt.mp4", args.frames, seed=seed, config=config)
        print(f"belt sequence seed {seed}: {video.frames} frames {config.width}x{config.height}, model {model}")
        summary = run_tracking(
            model,
            str(video.path),
            detection={"conf": args.conf},
            out=out,
            line=tuple(video.line),
            status=StatusLine(True),
        )
    found = summary["counts"]["line"]["counts"]
    truth = video.counts
    print(f"{'class':<22}{'found':>7}{'true':>6}   (parts crossing the line, left to right)")
    direction = "in"
    total_found = total_true = 0
    for name in sorted(set(truth) | set(found)):
        f = found.get(name, {}).get(direction, 0)
        t = truth.get(name, {}).get(direction, 0)
        total_found, total_true = total_found + f, total_true + t
        print(f"{name:<22}{f:>7}{t:>6}")
    print(f"{'total':<22}{total_found:>7}{total_true:>6}")
    print(f"{summary['tracks']} tracks; {summary['fps']:.1f} FPS; latency p50 {summary['latency_ms']['p50']:.0f} ms")
    print(f"saved {shown(out)} (masks, boxes, track ids, trails and the counting line)")
    return 0


def bench_stream(model: Model, args: argparse.Namespace) -> int:
    """``edgeseg bench MODEL --source VIDEO``: the stream's throughput, latency and drops, per stage."""
    summary = run_tracking(
        model,
        _source_arg(str(args.source)),
        detection={"conf": args.conf},
        realtime=True if args.realtime else None,
        max_frames=args.max_frames or None,
        track=not args.no_track,
        status=StatusLine(not args.quiet and not args.json),
    )
    if args.json:
        print(json.dumps(summary))
        return 0
    lat = summary["latency_ms"]
    print(f"stream of {shown(str(args.source))}: model {Path(model.spec.path).name}, {model.runtime.name}")
    print(f"{'stage':<14}{'mean ms':>9}")
    for k, v in summary["stage_ms"].items():
        print(f"{k:<14}{v:>9.2f}")
    print(
        f"{summary['processed']} frames at {summary['fps']:.1f} FPS; capture-to-result latency p50 {lat['p50']:.1f} "
        f"p90 {lat['p90']:.1f} p99 {lat['p99']:.1f} ms; dropped {summary['dropped']} of {summary['frames']}"
    )
    return 0


def add_parsers(sub: Any) -> None:
    """Add ``track`` and ``synth-video`` to the ``edgeseg`` subcommands."""
    p = sub.add_parser(
        "track",
        help="track and count instances in a video, camera or stream",
        description="Segment every frame of SOURCE, give instances stable track ids (ByteTrack-style, associated "
        "by mask IoU) and optionally count them crossing a line. SOURCE: a video file, a camera index or "
        "/dev/videoN, an rtsp:// or http(s):// URL, a GStreamer pipeline ending in appsink, or an image folder. "
        "Live sources drop stale frames (the newest wins) so latency never builds up; files never drop frames "
        "unless --realtime. A status line shows FPS, latency and drops. Ctrl-C stops cleanly and keeps the "
        "outputs written so far.",
    )
    add_model_options(p, positional=False)
    p.add_argument("source", help="video file, camera index, /dev/videoN, URL, GStreamer pipeline or image folder")
    add_detection_options(p)
    p.add_argument("--out", type=Path, default=None, help="write the annotated video here (.mp4 or .avi)")
    p.add_argument(
        "--save-mot",
        type=Path,
        default=None,
        help="write MOTChallenge lines frame,id,x,y,w,h,score,-1,-1,-1 (1-based frames) of tracked instances",
    )
    p.add_argument(
        "--save-json",
        type=Path,
        default=None,
        help="write a JSON array of instances: COCO result fields (RLE masks) plus frame, timestamp, track_id",
    )
    p.add_argument("--line", default=None, help="count crossings of the line x1,y1,x2,y2 (pixels), per class and way")
    p.add_argument(
        "--zone",
        default=None,
        help="count tracks entering the polygon x1,y1,x2,y2,x3,y3,... (pixels), per class, and its occupancy",
    )
    p.add_argument("--show", action="store_true", help="show the annotated frames in a window (needs a display)")
    p.add_argument("--realtime", action="store_true", help="play files at their own speed, dropping stale frames")
    p.add_argument("--max-frames", type=int, default=None, help="stop after this many frames")
    p.add_argument(
        "--association",
        choices=("mask", "box"),
        default="mask",
        help="match detections to tracks by mask IoU (default; robust for touching parts) or box IoU",
    )
    p.add_argument("--cmc", action="store_true", help="camera-motion compensation (moving cameras)")
    p.add_argument("--reconnect", type=int, default=5, help="network streams: reconnection attempts (default 5)")
    p.add_argument("--timeout", type=float, default=10.0, help="network streams: seconds before a stall (default 10)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON summary as the last line: frames, processed, dropped, skipped, reconnects, "
        "gap_seconds, fps, latency_ms (p50, p90, p99), stage_ms, tracks, counts",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no status line or summary")
    p.set_defaults(func=cmd_track)

    p = sub.add_parser(
        "synth-video",
        help="write a synthetic conveyor-belt video with tracking ground truth",
        description="Render a conveyor-belt sequence of factory parts entering, travelling, touching and leaving, "
        "and write it as OUT (.mp4 or .avi) with its ground truth next to it: OUT.gt.txt (MOTChallenge), "
        "OUT.gt.json (COCO with RLE masks and track ids) and OUT.counts.json (true per-class line crossings). "
        "The same seed always gives the same video.",
    )
    p.add_argument("out", type=Path, help="output video (.mp4 or .avi)")
    p.add_argument("--frames", type=int, default=300, help="number of frames (default 300)")
    p.add_argument("--seed", type=int, default=0, help="sequence seed (default 0)")
    p.add_argument("--width", type=int, default=512, help="frame width (default 512)")
    p.add_argument("--height", type=int, default=384, help="frame height (default 384)")
    p.add_argument("--fps", type=float, default=30.0, help="frame rate (default 30)")
    p.add_argument("--speed", type=float, default=6.0, help="belt speed in pixels per frame (default 6)")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    p.set_defaults(func=cmd_synth_video)
