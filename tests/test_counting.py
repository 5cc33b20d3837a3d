"""edgeseg.counting: line crossings and zone entries on hand-made trajectories, and bad inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from edgeseg.counting import LineCounter, ZoneCounter
from edgeseg.masks import InstanceMasks
from edgeseg.result import Result

NAMES = ("nut", "bolt", "washer")
SHAPE = (100, 200)
VERTICAL = (100.0, 100.0, 100.0, 0.0)  # x = 100, drawn bottom to top: left-to-right motion is "in"


def frame(*instances: tuple[int, int, float, float], classes: list[int] | None = None, size: float = 10.0) -> Result:
    """A tracked Result of ``(track_id, class, x, y)`` instances: boxes of ``size`` centred on ``x, y``."""
    n = len(instances)
    ids = np.array([i[0] for i in instances], np.int64)
    cls = np.array([i[1] for i in instances], np.int32)
    xy = np.array([i[2:] for i in instances], np.float32).reshape(n, 2)
    boxes = np.concatenate([xy - size / 2, xy + size / 2], axis=1).astype(np.float32)
    return Result(
        boxes=boxes,
        scores=np.ones(n, np.float32),
        class_ids=cls,
        names=NAMES,
        masks=InstanceMasks.empty(SHAPE),
        image_shape=SHAPE,
        track_ids=ids,
        track_classes=None if classes is None else np.array(classes, np.int32),
    )


def run(counter: LineCounter | ZoneCounter, frames: list[Result]) -> list[dict]:
    return [counter.update(f) for f in frames]


def zeros(**counts: dict[str, int]) -> dict[str, dict[str, int]]:
    out = {n: {"in": 0, "out": 0} for n in NAMES}
    out.update(counts)
    return out


def test_crossing_both_directions() -> None:
    counter = LineCounter(VERTICAL, names=NAMES)
    events = run(
        counter,
        [
            frame((1, 0, 80, 50), (2, 1, 130, 40)),
            frame((1, 0, 95, 50), (2, 1, 110, 40)),
            frame((1, 0, 105, 50), (2, 1, 90, 40)),  # both cross here, in opposite directions
            frame((1, 0, 120, 50), (2, 1, 70, 40)),
        ],
    )
    assert events[2] == {"in": [(1, "nut")], "out": [(2, "bolt")]}
    assert events[0] == events[1] == events[3] == {"in": [], "out": []}
    assert counter.counts == zeros(nut={"in": 1, "out": 0}, bolt={"in": 0, "out": 1})
    assert counter.total == {"in": 1, "out": 1}


def test_direction_follows_the_line_orientation() -> None:
    # The same motion across the same line drawn the other way round is "out".
    counter = LineCounter((100, 0, 100, 100), names=NAMES)
    run(counter, [frame((1, 2, 90, 50)), frame((1, 2, 110, 50))])
    assert counter.total == {"in": 0, "out": 1}
    # A horizontal line drawn left to right counts downward motion (image y grows) as "in".
    down = LineCounter((0, 50, 200, 50), names=NAMES)
    run(down, [frame((1, 2, 100, 30)), frame((1, 2, 100, 70)), frame((2, 2, 20, 80)), frame((2, 2, 20, 20))])
    assert down.counts["washer"] == {"in": 1, "out": 1}


def test_crossing_outside_the_segment_is_not_counted() -> None:
    short = (100.0, 60.0, 100.0, 20.0)  # only y in 20..60
    counter = LineCounter(short, names=NAMES)
    run(counter, [frame((1, 0, 90, 80), (2, 0, 90, 10), (3, 0, 90, 40)), frame((1, 0, 110, 80), (2, 0, 110, 5))])
    assert counter.total == {"in": 0, "out": 0}
    # ... but the side memory moved with them: going back across within the segment is an "out".
    run(counter, [frame((1, 0, 90, 30), (3, 0, 110, 40))])  # track 1 crosses x = 100 at y = 55
    assert counter.counts["nut"] == {"in": 1, "out": 1}  # track 3 in, track 1 out
    # A diagonal move whose crossing point is past the end of the segment is not counted either.
    run(counter, [frame((4, 1, 60, 100)), frame((4, 1, 140, 70))])  # crosses x = 100 at y = 85
    assert counter.counts["bolt"] == {"in": 0, "out": 0}


def test_jitter_on_the_line_counts_once_per_direction() -> None:
    counter = LineCounter(VERTICAL, names=NAMES)
    xs = [90, 99, 101, 99, 101, 100, 102, 98, 103, 120]
    events = run(counter, [frame((7, 1, x, 50)) for x in xs])
    assert counter.counts["bolt"] == {"in": 1, "out": 1}
    assert sum(len(e["in"]) + len(e["out"]) for e in events) == 2
    # Exactly on the line is no side: 99 -> 100 -> 100 -> 101 is one crossing, found when it leaves the line.
    on_line = LineCounter(VERTICAL, names=NAMES)
    events = run(on_line, [frame((1, 0, x, 50)) for x in (99, 100, 100, 101)])
    assert [len(e["in"]) for e in events] == [0, 0, 0, 1]


def test_track_that_vanishes_keeps_its_side() -> None:
    counter = LineCounter(VERTICAL, names=NAMES, max_age=10)
    frames = [frame((5, 2, 80, 50))] + [frame() for _ in range(5)] + [frame((5, 2, 130, 50))]
    events = run(counter, frames)
    assert events[-1]["in"] == [(5, "washer")]
    # Gone longer than max_age: forgotten, so reappearing on the other side is a new track with no side yet.
    forgetful = LineCounter(VERTICAL, names=NAMES, max_age=3)
    run(forgetful, [frame((5, 2, 80, 50))] + [frame() for _ in range(5)] + [frame((5, 2, 130, 50))])
    assert forgetful.total == {"in": 0, "out": 0}


def test_memory_stays_bounded_on_a_long_stream() -> None:
    counter = LineCounter(VERTICAL, names=NAMES, max_age=20)
    for t in range(500):
        # A new track every frame, each seen twice and crossing: memory must not grow with the stream.
        counter.update(frame((t + 1, 0, 90, 50), (t, 0, 110, 50)) if t else frame((1, 0, 90, 50)))
        assert counter.tracks <= 21
    assert counter.total == {"in": 499, "out": 0}


def test_class_is_the_tracks_class_at_the_crossing() -> None:
    counter = LineCounter(VERTICAL, names=NAMES)
    # class_ids flicker; track_classes (the track's voted class) is what counts.
    run(counter, [frame((1, 0, 90, 50), classes=[1]), frame((1, 2, 110, 50), classes=[1])])
    assert counter.counts["bolt"] == {"in": 1, "out": 0}
    # Without track_classes, the detection's class in the crossing frame counts.
    plain = LineCounter(VERTICAL, names=NAMES)
    run(plain, [frame((1, 0, 90, 50)), frame((1, 2, 110, 50))])
    assert plain.counts["washer"] == {"in": 1, "out": 0} and plain.counts["nut"] == {"in": 0, "out": 0}


def test_untracked_instances_are_ignored() -> None:
    counter = LineCounter(VERTICAL, names=NAMES)
    run(counter, [frame((-1, 0, 90, 50), (0, 0, 90, 60)), frame((-1, 0, 110, 50), (0, 0, 110, 60))])
    assert counter.total == {"in": 0, "out": 0} and counter.tracks == 0
    zone = ZoneCounter([(0, 0), (200, 0), (200, 100), (0, 100)], names=NAMES)
    zone.update(frame((-1, 0, 50, 50)))
    assert zone.total == {"entered": 0, "occupancy": 0}


def test_anchor_bottom_uses_the_bottom_edge() -> None:
    horizontal = (0.0, 50.0, 200.0, 50.0)
    centre, bottom = LineCounter(horizontal, names=NAMES), LineCounter(horizontal, names=NAMES, anchor="bottom")
    frames = [frame((1, 0, 100, 40), size=16), frame((1, 0, 100, 45), size=16)]  # bottom edge 48 -> 53
    run(centre, frames)
    run(bottom, frames)
    assert centre.total == {"in": 0, "out": 0}
    assert bottom.total == {"in": 1, "out": 0}


def test_names_default_to_the_results_and_summary_is_json() -> None:
    counter = LineCounter(VERTICAL)
    run(counter, [frame((1, 1, 90, 50)), frame((1, 1, 110, 50))])
    assert counter.counts == zeros(bolt={"in": 1, "out": 0})
    summary = json.loads(json.dumps(counter.summary()))
    assert summary["type"] == "line" and summary["line"] == list(VERTICAL) and summary["frames"] == 2
    assert summary["counts"] == counter.counts and summary["total"] == {"in": 1, "out": 0}
    counter.reset()
    assert counter.total == {"in": 0, "out": 0} and counter.tracks == 0 and counter.frames == 0


def test_zone_counts_entries_once_and_tracks_occupancy() -> None:
    square = [(50, 20), (150, 20), (150, 80), (50, 80)]
    zone = ZoneCounter(square, names=NAMES)
    out = run(
        zone,
        [
            frame((1, 0, 20, 50), (2, 1, 100, 50)),  # 2 is born inside: it counts
            frame((1, 0, 60, 50), (2, 1, 100, 50)),  # 1 enters
            frame((1, 0, 160, 50), (2, 1, 100, 50)),  # 1 leaves
            frame((1, 0, 140, 50), (2, 1, 100, 50), (3, 2, 100, 95)),  # 1 comes back: not again; 3 is outside
        ],
    )
    assert [o["entered"] for o in out] == [[(2, "bolt")], [(1, "nut")], [], []]
    assert [o["occupancy"] for o in out] == [
        {"nut": 0, "bolt": 1, "washer": 0},
        {"nut": 1, "bolt": 1, "washer": 0},
        {"nut": 0, "bolt": 1, "washer": 0},
        {"nut": 1, "bolt": 1, "washer": 0},
    ]
    assert zone.counts == {"nut": 1, "bolt": 1, "washer": 0}
    assert zone.occupancy == {"nut": 1, "bolt": 1, "washer": 0}
    assert zone.total == {"entered": 2, "occupancy": 2}
    summary = json.loads(json.dumps(zone.summary()))
    assert summary["type"] == "zone" and summary["counts"] == zone.counts and len(summary["polygon"]) == 4


def test_zone_with_a_concave_polygon() -> None:
    # A U shape: the notch between its arms is outside.
    u_shape = [(0, 0), (60, 0), (60, 100), (40, 100), (40, 30), (20, 30), (20, 100), (0, 100)]
    zone = ZoneCounter(u_shape, names=NAMES)
    zone.update(frame((1, 0, 10, 50), (2, 0, 30, 60), (3, 0, 30, 10), (4, 0, 50, 90)))
    assert zone.counts["nut"] == 3 and zone.occupancy["nut"] == 3


def test_missing_track_ids_is_a_clear_error() -> None:
    untracked = frame((1, 0, 90, 50))
    untracked.track_ids = None
    for counter in (LineCounter(VERTICAL), ZoneCounter([(0, 0), (10, 0), (0, 10)])):
        with pytest.raises(ValueError, match=r"track_ids is None.*track=True"):
            counter.update(untracked)


def test_mismatched_arrays_and_unknown_classes() -> None:
    bad = frame((1, 0, 90, 50), (2, 0, 95, 50))
    bad.track_ids = np.array([1], np.int64)
    with pytest.raises(ValueError, match="disagree"):
        LineCounter(VERTICAL).update(bad)
    counter = LineCounter(VERTICAL, names=NAMES)
    counter.update(frame((1, 7, 90, 50)))
    with pytest.raises(ValueError, match="class index 7"):
        counter.update(frame((1, 7, 110, 50)))


@pytest.mark.parametrize(
    "line",
    [(0, 0, 10), (0, 0, 10, 10, 5), (5, 5, 5, 5), (0, math.nan, 10, 10), (0, 0, math.inf, 10), "0,0,1,1", None],
)
def test_malformed_line(line: object) -> None:
    with pytest.raises(ValueError, match="line="):
        LineCounter(line)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "polygon",
    [[(0, 0), (10, 0)], [(0, 0), (10, 0), (20, 0)], [(0, 0), (10, 0), (math.nan, 5)], [0, 1, 2, 3], "square", None],
)
def test_malformed_polygon(polygon: object) -> None:
    with pytest.raises(ValueError, match="polygon="):
        ZoneCounter(polygon)  # type: ignore[arg-type]


@pytest.mark.parametrize(("key", "value"), [("anchor", "top-left"), ("max_age", 0), ("max_age", 2.5), ("names", "ab")])
def test_bad_options(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key):
        LineCounter(VERTICAL, **{key: value})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=key):
        ZoneCounter([(0, 0), (10, 0), (0, 10)], **{key: value})  # type: ignore[arg-type]
