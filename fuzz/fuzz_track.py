#!/usr/bin/env python3
"""Fuzz ``_core.Tracker`` (ByteTrack-style tracking with mask association) over several frames.

Options from valid to absurd; per frame, boxes with inverted, huge and non-finite coordinates (often a
jittered copy of the previous frame's, so that tracks form, get lost and come back), scores with NaN
and values outside [0, 1], class ids anywhere in int32, bit-packed masks with consistent or corrupt
rects and offsets, and 2x3 camera warps from identity to singular or non-finite. Each update must raise
ValueError (leaving the tracker usable) or return int64 ids and int32 classes, one per detection: -1
together, or a positive id (unique within the frame, never above the ids given so far) and a class
seen among the frame's class ids. ``tracks()`` must stay well formed with finite boxes.

    python fuzz/fuzz_track.py fuzz/corpus/track -max_total_time=60
"""

from __future__ import annotations

import sys
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parent))
with atheris.instrument_imports(include=["fuzzlib"]):
    import fuzzlib

import fuzzcheck
import numpy as np

from edgeseg import _core

# The core's own list of [0, 1] options, so an option added to the tracker is fuzzed without an edit here.
OPTION_NAMES = tuple(k for k, v in _core.Tracker().options.items() if isinstance(v, float))


def fuzz_options(fdp: atheris.FuzzedDataProvider) -> dict:
    """Mostly valid options, now and then one out of range or of a wrong type."""
    options: dict = {}
    for name in OPTION_NAMES:
        if fdp.ConsumeBool():
            options[name] = fuzzlib.fuzz_float(fdp) if fuzzlib.rarely(fdp, 8) else fdp.ConsumeFloatInRange(0.0, 1.0)
    if fdp.ConsumeBool():
        options["lost_frames"] = fuzzlib.fuzz_int(fdp, 0, 5)
    if fdp.ConsumeBool():
        options["min_hits"] = fuzzlib.fuzz_int(fdp, 0, 3)
    options["use_masks"] = fdp.ConsumeBool()
    if fuzzlib.rarely(fdp, 16):
        options[fuzzlib.pick(fdp, ("fuse_score", "bogus"))] = fuzzlib.pick(fdp, (1.5, "yes", None))
    return options


def fuzz_masks(fdp: atheris.FuzzedDataProvider, boxes: np.ndarray, n: int) -> tuple:
    """Crops at (roughly) the boxes, packed as InstanceMasks does; sometimes corrupt."""
    rects = np.zeros((n, 4), np.int32)
    if boxes.shape == (n, 4):
        finite = np.nan_to_num(boxes, nan=0.0, posinf=64.0, neginf=0.0).clip(-64, 256)
        rects[:, :2] = np.floor(finite[:, :2]).astype(np.int32)
        rects[:, 2:] = np.clip(np.ceil(finite[:, 2:] - finite[:, :2]), 0, 48).astype(np.int32)
    sizes = (rects[:, 2].astype(np.int64) + 7) // 8 * rects[:, 3]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    bits = fuzzlib.fill(fdp, np.uint8, int(offsets[-1]))
    if fuzzlib.rarely(fdp, 10):
        kind = fdp.ConsumeIntInRange(0, 3)
        if kind == 0 and n:
            offsets[-1] += fdp.ConsumeIntInRange(1, 9)  # past the bits
        elif kind == 1 and n:
            rects[fdp.ConsumeIntInRange(0, n - 1), fdp.ConsumeIntInRange(2, 3)] = fdp.ConsumeIntInRange(-9, 9)
        elif kind == 2:
            offsets = offsets[:-1]
        else:
            bits = bits.astype(np.int16)
    return rects, offsets, bits


def fuzz_warp(fdp: atheris.FuzzedDataProvider) -> np.ndarray | None:
    """None (most frames), a small motion, or something singular, huge or non-finite."""
    kind = fdp.ConsumeIntInRange(0, 5)
    if kind <= 2:
        return None
    warp = np.array([[1, 0, 0], [0, 1, 0]], np.float32)
    if kind == 3:
        warp[:, 2] = [fdp.ConsumeFloatInRange(-20, 20), fdp.ConsumeFloatInRange(-20, 20)]
        return warp
    if kind == 4:
        warp[fdp.ConsumeIntInRange(0, 1), fdp.ConsumeIntInRange(0, 2)] = fuzzlib.fuzz_float(fdp)
        return warp
    return fuzzlib.fuzz_array(fdp, (np.float32, np.float64), (2, 3))


def next_boxes(fdp: atheris.FuzzedDataProvider, previous: np.ndarray | None, n: int) -> np.ndarray:
    """Mostly the previous frame's boxes moved a little (tracks continue); else fresh fuzzed ones."""
    if previous is not None and len(previous) and fdp.ConsumeBool():
        keep = previous[: max(1, min(n, len(previous)))]
        step = np.float32(fdp.ConsumeFloatInRange(-6.0, 6.0))
        moved = (keep + step).astype(np.float32)
        extra = np.abs(fuzzlib.fill(fdp, np.float32, 4 * max(0, n - len(moved)))).reshape(-1, 4) * 50
        extra[:, 2:] += extra[:, :2]
        return np.concatenate([moved, extra.astype(np.float32)])[:n]
    boxes = fuzzlib.fill(fdp, np.float32, 4 * n).reshape(n, 4)
    if fdp.ConsumeBool():  # proper boxes on a grid: overlaps and ties
        boxes = np.round(np.abs(boxes) * 100) / 4
        boxes[:, 2:] = boxes[:, :2] + boxes[:, 2:] + 1
    return boxes.astype(np.float32)


@atheris.instrument_func
def test_one_input(data: bytes) -> None:
    """A tracker fed a few frames built from ``data``."""
    fdp = atheris.FuzzedDataProvider(data)
    options = fuzz_options(fdp)
    fuzzlib.debug("Tracker", **options)
    tracker = fuzzlib.value_error_or(lambda: _core.Tracker(**options))
    if tracker is None:
        return
    boxes = None
    most_id = 0
    for _ in range(fdp.ConsumeIntInRange(1, 8)):
        n = fuzzlib.fuzz_dim(fdp, 40)
        boxes = next_boxes(fdp, boxes, n)
        arg_boxes = boxes if not fuzzlib.rarely(fdp, 16) else fuzzlib.fuzz_array(fdp, (np.float32,), (n, 4))
        scores = fdp.ConsumeFloatInRange(0.0, 1.0) * np.ones(n, np.float32)
        if fdp.ConsumeBool():
            scores = np.abs(fuzzlib.fill(fdp, np.float32, n)) % np.float32(1.0001)  # NaN and 1.0001-ish now and then
        classes = (np.arange(n) % 3).astype(np.int32) if fdp.ConsumeBool() else fuzzlib.fill(fdp, np.int32, n)
        masks = fuzz_masks(fdp, boxes, n) if fdp.ConsumeBool() else (None, None, None)
        warp = fuzz_warp(fdp)
        fuzzlib.debug("update", boxes=arg_boxes, scores=scores, classes=classes, masks=masks, warp=warp)
        out = fuzzlib.value_error_or(lambda: tracker.update(arg_boxes, scores, classes, *masks, warp))  # noqa: B023
        if out is None:
            continue
        ids, voted = out
        fuzzcheck.check_array(ids, np.int64, (n,))
        fuzzcheck.check_array(voted, np.int32, (n,))
        untracked = ids == -1
        assert np.array_equal(untracked, voted == -1), (ids, voted)
        if len(set(np.asarray(classes).tolist())) and (np.asarray(classes) < 0).any():
            raise AssertionError(f"negative class ids were accepted: {classes}")
        tracked = ids[~untracked]
        assert (tracked > 0).all() and len(set(tracked.tolist())) == len(tracked), ids
        assert (voted[~untracked] >= 0).all(), voted
        most_id = max([most_id, *tracked.tolist()])
        fuzzlib.bucket(len(tracked))
        state = tracker.tracks()
        k = len(state["ids"])
        fuzzcheck.check_array(state["boxes"], np.float32, (k, 4))
        assert np.isfinite(state["boxes"]).all(), state["boxes"]
        assert k == 0 or int(state["ids"].max()) <= most_id, (state["ids"], most_id)  # ids come out when given


def main() -> None:
    """libFuzzer entry point."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
