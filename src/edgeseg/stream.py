"""Live video: a pipeline of threads from a frame source to tracked, counted per-frame Results.

Stages run in their own threads and hand work on through small bounded channels, so throughput approaches
the slowest stage (inference) rather than the sum of the stages, and memory stays bounded whatever the
source does::

    capture -> [frames] -> preprocess -> [tensors] -> inference -> [outputs] -> postprocess + track + count
            -> [results] -> your loop

Sources paced by their reader (files, folders, iterables) block the capture thread when the pipeline is
full, so no frame is lost. Live sources (cameras, network streams, or any source with ``realtime=True``)
write into a one-frame mailbox instead: the newest frame replaces an unread one (counted as dropped), and
preprocessing and inference run in one stage that takes the newest frame the moment inference is free, so
latency never builds up behind a slow model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable, Union

import numpy as np

from .errors import SourceError
from .heads import PostprocessOptions
from .result import Result
from .sources import Frame, FrameSource, SourceCounters

log = logging.getLogger("edgeseg")

_WAIT = 0.1  # seconds between checks while blocked, so Ctrl-C and close() are seen promptly
_LATENCY_WINDOW = 10_000  # latencies kept for percentiles: memory stays flat on endless streams


class _ClosedError(Exception):
    """The channel was closed: the stream is shutting down."""


class _EndError(Exception):
    """The channel is finished and drained: no more items."""


class _Channel:
    """A bounded hand-off between two threads; ``put_latest`` makes it a mailbox that keeps the newest."""

    def __init__(self, capacity: int) -> None:
        self._items: deque[Any] = deque()
        self._capacity = capacity
        self._cond = threading.Condition()
        self._finished = False
        self._closed = False
        self._error: BaseException | None = None

    def put(self, item: Any) -> None:
        with self._cond:
            while len(self._items) >= self._capacity and not self._closed:
                self._cond.wait(_WAIT)
            if self._closed:
                raise _ClosedError
            self._items.append(item)
            self._cond.notify_all()

    def put_latest(self, item: Any) -> Any:
        """Put without blocking; when full, the oldest item is replaced. Returns it (or None)."""
        with self._cond:
            if self._closed:
                raise _ClosedError
            dropped = self._items.popleft() if len(self._items) >= self._capacity else None
            self._items.append(item)
            self._cond.notify_all()
            return dropped

    def get(self) -> Any:
        with self._cond:
            while not self._items and not (self._finished or self._closed or self._error):
                self._cond.wait(_WAIT)
            if self._closed:
                raise _ClosedError
            if self._error is not None:
                raise self._error
            if not self._items:
                raise _EndError
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def finish(self) -> None:
        """No more items will come; ``get`` raises ``_EndError`` once the channel is drained."""
        with self._cond:
            self._finished = True
            self._cond.notify_all()

    def fail(self, error: BaseException) -> None:
        """Make the next ``get`` raise ``error`` (an upstream stage failed)."""
        with self._cond:
            if self._error is None:
                self._error = error
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._items.clear()
            self._cond.notify_all()


def _percentiles(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0}
    p = np.percentile(np.asarray(values, dtype=np.float64), [50, 90, 99])
    return {"p50": round(float(p[0]), 2), "p90": round(float(p[1]), 2), "p99": round(float(p[2]), 2)}


@dataclass
class StreamStats:
    """A stream's counters so far (``stream.stats``); a snapshot, safe to read from any thread.

    Attributes:
        frames: frames read from the source (dropped ones included).
        processed: frames whose Result was handed to the caller.
        dropped: frames of a live source replaced by a newer one before inference was free for them.
        skipped: frames or images that could not be decoded (each logged as a warning).
        reconnects: times a network stream was lost and reopened; ``gap_seconds`` is the time it was gone.
        fps: processed frames per second since the first frame was read.
        latency_ms: capture-to-result latency percentiles (``p50``, ``p90``, ``p99``) in milliseconds,
            over the last 10,000 frames.
        stage_ms: mean milliseconds per frame of each stage (``preprocess``, ``inference``, ``postprocess``,
            ``track``).
    """

    frames: int = 0
    processed: int = 0
    dropped: int = 0
    skipped: int = 0
    reconnects: int = 0
    gap_seconds: float = 0.0
    fps: float = 0.0
    latency_ms: dict[str, float] = field(default_factory=dict)
    stage_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class _Work:
    """A frame on its way through the pipeline."""

    frame: Frame
    tensor: np.ndarray | None = None
    letterboxes: list[Any] | None = None
    outputs: list[np.ndarray] | None = None
    timings: dict[str, float] = field(default_factory=dict)


Counter = Any  # a LineCounter or ZoneCounter: anything with update(result) and summary()
Counters = Union[Mapping[str, Counter], Sequence[Counter], None]


class Stream:
    """Per-frame Results of a source, computed by a pipeline of threads. Create with ``model.stream()``.

    Iterate it (once) for Results; use it as a context manager, or call ``close()``, to stop every thread
    and release the source early. Breaking out of the loop, an exception in the loop, Ctrl-C, the end of
    the source and a source that fails for good all stop the pipeline within a fraction of a second (a
    network read already under way may take up to its ``timeout`` to return; that thread then ends alone).
    """

    def __init__(
        self,
        model: Any,
        source: FrameSource,
        options: PostprocessOptions,
        *,
        conf: float,
        tracker: Any = None,
        counters: Counters = None,
        realtime: bool | None = None,
        keep_images: bool = True,
        queue_size: int = 2,
    ) -> None:
        self.model = model
        self.source = source
        self.tracker = tracker
        if counters and tracker is None:
            raise ValueError("counters count tracks: use them with track=True")
        self.counters: dict[str, Counter] = _name_counters(counters)
        self._options = options
        self._conf = conf
        self._keep_images = keep_images
        self._live = source.live if realtime is None else bool(realtime)  # False: never drop, even live
        self._pace = bool(realtime) and not source.live  # a file played at its own speed
        self._queue_size = max(1, int(queue_size))
        self._lock = threading.Lock()
        self._stats = StreamStats()
        self._latencies: deque[float] = deque(maxlen=_LATENCY_WINDOW)
        self._stage_totals: dict[str, float] = {}
        self._tracks_seen = 0
        self._threads: list[threading.Thread] = []
        self._channels: list[_Channel] = []
        self._started = False
        self._closed = False
        self._t0: float | None = None
        self._t_end: float | None = None  # when the last result was handed over: fps stops counting there

    # ---- public ---------------------------------------------------------------------------------------

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Result]:
        if self._started:
            raise RuntimeError("a Stream can be iterated once; open a new one with model.stream()")
        if self._closed:
            raise RuntimeError("this Stream is closed")
        self._started = True
        out = self._start()
        try:
            while True:
                try:
                    result = out.get()
                except (_EndError, _ClosedError):
                    return
                latency = (time.perf_counter() - result.timings.pop("_captured")) * 1e3
                result.timings["latency"] = latency
                with self._lock:
                    self._stats.processed += 1
                    self._latencies.append(latency)
                yield result
        finally:
            with self._lock:
                self._t_end = time.perf_counter()
            self.close()

    def close(self) -> None:
        """Stop every thread and release the source. Safe to call more than once, from any thread."""
        if self._closed:
            return
        self._closed = True
        self.source.stop()  # ends a reconnection backoff at once
        for channel in self._channels:
            channel.close()
        me = threading.current_thread()
        deadline = time.monotonic() + 1.0
        for thread in self._threads:
            if thread is not me:
                thread.join(max(0.0, deadline - time.monotonic()))
        if not self._started:
            self.source.close()  # otherwise the capture thread owns the source and closes it

    @property
    def stats(self) -> StreamStats:
        """Counters so far (a copy)."""
        counters: SourceCounters = getattr(self.source, "counters", SourceCounters())
        with self._lock:
            s = self._stats
            end = time.perf_counter() if self._t_end is None else self._t_end
            elapsed = 0.0 if self._t0 is None else end - self._t0
            processed = s.processed
            n = max(processed, 1)
            return StreamStats(
                frames=s.frames,
                processed=processed,
                dropped=s.dropped,
                skipped=counters.skipped,
                reconnects=counters.reconnects,
                gap_seconds=round(counters.gap_seconds, 3),
                fps=round(processed / elapsed, 2) if elapsed > 0 else 0.0,
                latency_ms=_percentiles(list(self._latencies)),
                stage_ms={k: round(v / n, 3) for k, v in self._stage_totals.items()},
            )

    def progress(self) -> tuple[int, int, int, float]:
        """``(frames, processed, dropped, fps)`` so far: the cheap part of ``stats``, for status lines."""
        with self._lock:
            end = time.perf_counter() if self._t_end is None else self._t_end
            elapsed = 0.0 if self._t0 is None else end - self._t0
            s = self._stats
            return s.frames, s.processed, s.dropped, (s.processed / elapsed if elapsed > 0 else 0.0)

    def summary(self) -> dict[str, Any]:
        """The run in one JSON-able dict with stable keys: ``frames``, ``processed``, ``dropped``,
        ``skipped``, ``reconnects``, ``gap_seconds``, ``fps``, ``latency_ms`` (``p50``, ``p90``, ``p99``),
        ``stage_ms``, ``tracks`` (confirmed tracks seen) and ``counts`` (each counter's summary, by name)."""
        s = self.stats
        with self._lock:
            tracks = self._tracks_seen
        return {
            "frames": s.frames,
            "processed": s.processed,
            "dropped": s.dropped,
            "skipped": s.skipped,
            "reconnects": s.reconnects,
            "gap_seconds": s.gap_seconds,
            "fps": s.fps,
            "latency_ms": s.latency_ms,
            "stage_ms": s.stage_ms,
            "tracks": tracks,
            "counts": {name: c.summary() for name, c in self.counters.items()},
        }

    # ---- the pipeline ---------------------------------------------------------------------------------

    def _start(self) -> _Channel:
        q = self._queue_size
        frames = _Channel(1 if self._live else q + 2)
        results = _Channel(q)
        if self._live:
            # One stage takes the newest frame when inference is free: a frame never waits behind a
            # preprocessed one, so it is at most one frame interval old when inference starts.
            outputs = _Channel(1)
            stages = [("infer", self._pre_and_infer, frames, outputs), ("post", self._post, outputs, results)]
        else:
            tensors, outputs = _Channel(q), _Channel(q)
            stages = [
                ("pre", self._pre, frames, tensors),
                ("infer", self._infer, tensors, outputs),
                ("post", self._post, outputs, results),
            ]
        self._channels = [frames, *(s[3] for s in stages)]
        self._spawn("capture", self._capture, frames)
        for name, fn, inbox, outbox in stages:
            self._spawn(name, self._stage, fn, inbox, outbox)
        return results

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=f"edgeseg-stream-{name}", daemon=True)
        self._threads.append(thread)
        thread.start()

    def _capture(self, out: _Channel) -> None:
        source = self.source
        try:
            wall0 = None
            while True:
                frame = source.read()
                if frame is None:
                    break
                with self._lock:
                    if self._t0 is None:
                        self._t0 = frame.captured
                    self._stats.frames += 1
                if self._pace:
                    # realtime=True on a file: wait for the frame's own time, then compete like a live frame.
                    if wall0 is None:
                        wall0 = time.perf_counter() - frame.timestamp
                    delay = wall0 + frame.timestamp - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    frame.captured = time.perf_counter()
                if self._live:
                    if out.put_latest(frame) is not None:
                        with self._lock:
                            self._stats.dropped += 1
                else:
                    out.put(frame)
            out.finish()
        except _ClosedError:
            pass
        except BaseException as e:  # a source failure reaches the caller's loop
            out.fail(e if isinstance(e, Exception) else SourceError(f"{source.name}: capture stopped: {e!r}"))
        finally:
            source.close()

    def _stage(self, fn: Callable[[_Work], _Work], inbox: _Channel, outbox: _Channel) -> None:
        try:
            while True:
                try:
                    item = inbox.get()
                except _EndError:
                    outbox.finish()
                    return
                outbox.put(fn(item))
        except _ClosedError:
            pass
        except BaseException as e:
            outbox.fail(e)

    def _pre(self, item: Any) -> _Work:
        work = _Work(item) if isinstance(item, Frame) else item
        t0 = time.perf_counter()
        work.tensor, work.letterboxes = self.model.preprocess([work.frame.image])
        work.timings["preprocess"] = (time.perf_counter() - t0) * 1e3
        return work

    def _infer(self, work: _Work) -> _Work:
        t0 = time.perf_counter()
        work.outputs = self.model.infer(work.tensor)
        work.tensor = None
        work.timings["inference"] = (time.perf_counter() - t0) * 1e3
        return work

    def _pre_and_infer(self, frame: Frame) -> _Work:
        return self._infer(self._pre(frame))

    def _post(self, work: _Work) -> Result:
        t0 = time.perf_counter()
        result = self.model.postprocess(work.outputs, work.letterboxes, self._options)[0]
        work.outputs = None
        timings = {**work.timings, "postprocess": (time.perf_counter() - t0) * 1e3}
        frame = work.frame
        if self.tracker is not None:
            t1 = time.perf_counter()
            result = self.tracker.update(result, frame.image)
            ids = result.track_ids
            if self._options.conf < self._conf:
                # Detections below the caller's conf entered only for the tracker's second stage: keep
                # those that continued a track, drop the rest.
                result = result.select((result.scores > self._conf) | (ids > 0))
            timings["track"] = (time.perf_counter() - t1) * 1e3
            for counter in self.counters.values():
                counter.update(result)
            result.counters = {name: c.summary() for name, c in self.counters.items()} or None
            if len(result.track_ids):
                with self._lock:  # ids are given in order from 1 and never reused: the largest is the count
                    self._tracks_seen = max(self._tracks_seen, int(result.track_ids.max()))
        result.frame_index = frame.index
        result.timestamp = frame.timestamp
        result.image = frame.image if self._keep_images else None
        with self._lock:
            for k, v in timings.items():
                self._stage_totals[k] = self._stage_totals.get(k, 0.0) + v
        result.timings = {**timings, "_captured": frame.captured}
        return result


def _name_counters(counters: Counters) -> dict[str, Counter]:
    if counters is None:
        return {}
    if isinstance(counters, Mapping):
        named = dict(counters)
    elif isinstance(counters, Sequence) and not isinstance(counters, (str, bytes)):
        # "line0", "zone1": by kind and position, stable for a given list
        named = {
            f"{type(c).__name__.replace('Counter', '').lower() or 'counter'}{i}": c for i, c in enumerate(counters)
        }
    else:
        named = {"counter": counters}
    for name, c in named.items():
        if not (callable(getattr(c, "update", None)) and callable(getattr(c, "summary", None))):
            raise ValueError(f"counter {name!r} must have update(result) and summary(), got {type(c).__name__}")
    return named
