"""edgeseg.synthparts belt sequences: determinism, persistent ids, masks and boxes, motion, touching, video and
ground-truth files, and true counts against a LineCounter fed the ground truth."""

from __future__ import annotations

import contextlib
import io
import json
import math

import cv2
import numpy as np
import pytest

from edgeseg.counting import LineCounter
from edgeseg.masks import InstanceMasks
from edgeseg.result import Result
from edgeseg.synthparts import (
    CLASSES,
    BeltConfig,
    BeltFrame,
    counting_line,
    render_belt,
    true_counts,
    write_belt_video,
)
from edgeseg.synthparts.scene import MIN_PIXELS

# Small frames keep the module to about a second; the part sizes keep parts a sensible share of the frame.
SMALL = BeltConfig(width=192, height=128, part_size=(20.0, 40.0), speed=4.0, spawn_rate=0.2)
MEDIUM = BeltConfig(width=320, height=192, part_size=(24.0, 48.0), speed=5.0, spawn_rate=0.25, touching=0.6)


@pytest.fixture(scope="module")
def sequence() -> list[BeltFrame]:
    return list(render_belt(60, 3, MEDIUM))


def _adjacent_labels(imap: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of different instance labels that share a pixel edge."""
    pairs = set()
    for a, b in ((imap[:, :-1], imap[:, 1:]), (imap[:-1], imap[1:])):
        hit = (a != b) & (a > 0) & (b > 0)
        pairs |= {(min(p, q), max(p, q)) for p, q in zip(a[hit].tolist(), b[hit].tolist())}
    return pairs


def _result(frame: BeltFrame) -> Result:
    """The ground truth of ``frame`` as a tracked Result, as a perfect detector and tracker would give it."""
    n = len(frame)
    shape = frame.instance_map.shape
    return Result(
        boxes=frame.boxes,
        scores=np.ones(n, np.float32),
        class_ids=frame.classes.astype(np.int32),
        names=CLASSES,
        masks=InstanceMasks.empty(shape),
        image_shape=shape,
        track_ids=frame.ids,
    )


def test_same_seed_gives_identical_frames_and_prefixes() -> None:
    a = list(render_belt(8, 11, SMALL))
    b = list(render_belt(5, 11, SMALL))  # a shorter sequence is a prefix of a longer one
    ss = np.random.SeedSequence([4, 2])
    c, d = list(render_belt(3, ss, SMALL)), list(render_belt(3, ss, SMALL))  # the SeedSequence is not consumed
    for x, y in [*zip(a, b), *zip(c, d)]:
        assert x.image.tobytes() == y.image.tobytes()
        assert x.instance_map.tobytes() == y.instance_map.tobytes()
        for name in ("ids", "classes", "boxes", "centers", "visibility"):
            assert np.array_equal(getattr(x, name), getattr(y, name)), name
    other = next(render_belt(1, 12, SMALL))
    assert not np.array_equal(other.image, a[0].image)


def test_shapes_dtypes_masks_and_boxes(sequence: list[BeltFrame]) -> None:
    h, w = MEDIUM.height, MEDIUM.width
    for i, f in enumerate(sequence):
        n = len(f)
        assert f.index == i
        assert f.image.shape == (h, w, 3) and f.image.dtype == np.uint8
        assert f.instance_map.shape == (h, w) and f.instance_map.dtype == np.uint16
        assert f.ids.shape == (n,) and f.ids.dtype == np.int64 and np.all(f.ids > 0)
        assert len(set(f.ids.tolist())) == n
        assert f.classes.shape == (n,) and f.classes.dtype == np.int64
        assert np.all((f.classes >= 0) & (f.classes < len(CLASSES)))
        assert f.boxes.shape == (n, 4) and f.boxes.dtype == np.float32
        assert f.centers.shape == (n, 2) and f.centers.dtype == np.float32
        assert f.visibility.shape == (n,) and np.all((f.visibility > 0) & (f.visibility <= 1))
        # Labels are exactly 1..N: the instance map is the disjoint union of the N visible masks.
        assert set(np.unique(f.instance_map).tolist()) <= set(range(n + 1))
        masks = f.masks()
        assert masks.sum(axis=0).max(initial=0) <= 1
        for box, m in zip(f.boxes, masks):
            ys, xs = np.nonzero(m)
            assert len(xs) >= MIN_PIXELS
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert sum(len(f) for f in sequence) / len(sequence) >= 4  # the belt is busy, not empty


def test_parts_stay_visible_enough(sequence: list[BeltFrame]) -> None:
    # Parts wholly in frame keep at least 1 - max_overlap of their area visible (a little slack for the area
    # estimate under perspective): no part is ever buried, at the counting line or anywhere else.
    h, w = MEDIUM.height, MEDIUM.width
    inner = [
        v
        for f in sequence
        for v, (x1, y1, x2, y2) in zip(f.visibility.tolist(), f.boxes.tolist())
        if x1 > 0 and y1 > 0 and x2 < w and y2 < h
    ]
    assert len(inner) > 100
    assert min(inner) >= 1 - MEDIUM.max_overlap - 0.05


def test_masks_follow_the_drawn_parts() -> None:
    # Without blur or noise, pixels just inside a mask edge are drawn mostly in the part's colour and pixels just
    # outside mostly in the belt's: the mean brightness step across the edge must be large.
    config = BeltConfig(**{**MEDIUM.__dict__, "blur": 0.0, "noise": 0.0})
    kernel = np.ones((3, 3), np.uint8)
    for f in list(render_belt(6, 1, config))[::5]:
        grey = cv2.cvtColor(f.image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        fg = (f.instance_map > 0).astype(np.uint8)
        inner = fg.astype(bool) & ~cv2.erode(fg, kernel).astype(bool)
        outer = cv2.dilate(fg, kernel).astype(bool) & ~fg.astype(bool)
        assert grey[inner].mean() - grey[outer].mean() > 25


def test_ids_are_persistent_and_never_reused(sequence: list[BeltFrame]) -> None:
    frames_of: dict[int, list[int]] = {}
    class_of: dict[int, int] = {}
    for f in sequence:
        for pid, cls in zip(f.ids.tolist(), f.classes.tolist()):
            frames_of.setdefault(pid, []).append(f.index)
            assert class_of.setdefault(pid, cls) == cls  # a part keeps its class
    for pid, idx in frames_of.items():
        # Visible in one unbroken run of frames: an id that is gone never comes back (never reused).
        assert idx == list(range(idx[0], idx[-1] + 1)), pid


def test_parts_ride_left_to_right_and_enter_and_leave(sequence: list[BeltFrame]) -> None:
    w = MEDIUM.width
    last: dict[int, float] = {}
    for f in sequence:
        for pid, box in zip(f.ids.tolist(), f.boxes.tolist()):
            cx = (box[0] + box[2]) / 2
            if pid in last:
                assert cx >= last[pid] - 0.5, f"part {pid} moved backwards in frame {f.index}"
            last[pid] = cx
    first_ids, last_ids = set(sequence[0].ids.tolist()), set(sequence[-1].ids.tolist())
    entered = [
        (f.index, pid, box) for f in sequence[1:] for pid, box in zip(f.ids.tolist(), f.boxes.tolist())
        if pid not in first_ids and pid not in {p for g in sequence[: f.index] for p in g.ids.tolist()}
    ]  # fmt: skip
    left = first_ids - last_ids
    assert entered and left
    # New parts appear at the left edge; parts that leave were last seen at the right edge.
    assert all(box[0] == 0 for _, _, box in entered)
    for pid in left:
        final = max(f.index for f in sequence if pid in f.ids)
        box = sequence[final].boxes[sequence[final].ids.tolist().index(pid)]
        assert box[2] == w


def test_touching_parts_occur_and_can_be_switched_off() -> None:
    touching = list(render_belt(20, 5, BeltConfig(**{**MEDIUM.__dict__, "touching": 0.9, "max_overlap": 0.3})))
    assert sum(bool(_adjacent_labels(f.instance_map)) for f in touching) >= 10
    apart = list(render_belt(20, 5, BeltConfig(**{**MEDIUM.__dict__, "touching": 0.0})))
    assert all(not _adjacent_labels(f.instance_map) for f in apart)
    assert sum(len(f) for f in apart) > 0


def test_true_counts_match_a_line_counter_fed_the_ground_truth(sequence: list[BeltFrame]) -> None:
    line = counting_line(MEDIUM)
    assert line == (MEDIUM.width / 2, MEDIUM.height, MEDIUM.width / 2, 0.0)
    counter = LineCounter(line, names=CLASSES)
    for f in sequence:
        counter.update(_result(f))
    truth = true_counts(sequence)
    assert truth == true_counts(iter(sequence), line)
    assert set(truth) == set(CLASSES)
    assert counter.counts == truth
    # Independently: every part first seen left of the line and last seen right of it crossed once, "in".
    first: dict[int, float] = {}
    final: dict[int, float] = {}
    for f in sequence:
        for pid, box in zip(f.ids.tolist(), f.boxes.tolist()):
            first.setdefault(pid, (box[0] + box[2]) / 2)
            final[pid] = (box[0] + box[2]) / 2
    crossed = sum(first[p] < line[0] < final[p] for p in first)
    assert crossed >= 3
    assert sum(c["in"] for c in truth.values()) == crossed
    assert all(c["out"] == 0 for c in truth.values())
    # The same vertical line, but only its part above the frame: every crossing point is off the segment.
    assert all(c == {"in": 0, "out": 0} for c in true_counts(sequence, (160.0, -100.0, 160.0, -10.0)).values())


def test_belt_scrolls_at_belt_speed() -> None:
    # An empty belt without camera effects: consecutive frames are the same texture moved right by `speed`.
    config = BeltConfig(**{**SMALL.__dict__, "spawn_rate": 0.0, "noise": 0.0, "blur": 0.0, "speed": 3.5})
    a, b = (cv2.cvtColor(f.image, cv2.COLOR_BGR2GRAY).astype(np.float32) for f in render_belt(2, 8, config))
    (dx, dy), _ = cv2.phaseCorrelate(a, b)
    assert dx == pytest.approx(3.5, abs=0.3) and abs(dy) < 0.3


def test_empty_and_single_frame_sequences() -> None:
    assert list(render_belt(0, 1, SMALL)) == []
    (frame,) = render_belt(1, 1, BeltConfig(**{**SMALL.__dict__, "prefill": False}))
    assert len(frame) == 0 and not frame.instance_map.any()  # nothing has arrived yet
    assert true_counts([]) == {name: {"in": 0, "out": 0} for name in CLASSES}


def _read_video(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened()
    reported = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    while True:
        ok, image = cap.read()
        if not ok:
            break
        frames.append(image)
    cap.release()
    assert reported == len(frames)  # the container's frame count agrees with the frames decoded
    return frames


@pytest.mark.parametrize("suffix", [".mp4", ".avi"])
def test_written_video_reads_back(tmp_path, suffix: str) -> None:
    config = BeltConfig(**{**SMALL.__dict__, "noise": 0.0})
    video = write_belt_video(tmp_path / f"belt{suffix}", 12, 2, config)
    assert video.path == tmp_path / f"belt{suffix}"
    assert (video.frames, video.fps, video.width, video.height) == (12, config.fps, 192, 128)
    decoded = _read_video(video.path)
    assert len(decoded) == 12
    assert all(image.shape == (128, 192, 3) for image in decoded)
    rendered = list(render_belt(12, 2, config))
    for image, frame in zip(decoded, rendered):
        # Lossy, but the same pictures: far closer to their own frame than to the next one.
        err = np.abs(image.astype(np.int16) - frame.image).mean()
        assert err < 6
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"belt{suffix}", "belt.gt.txt", "belt.gt.json", "belt.counts.json"]
    )  # no temporary files left behind


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_ground_truth_files_agree_with_the_frames(tmp_path) -> None:
    pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO

    n = 30
    video = write_belt_video(tmp_path / "seq.mp4", n, 4, MEDIUM)
    frames = list(render_belt(n, 4, MEDIUM))

    rows = np.loadtxt(video.mot_path, delimiter=",", ndmin=2)
    assert rows.shape == (sum(len(f) for f in frames), 9)
    for f in frames:
        mine = rows[rows[:, 0] == f.index + 1]
        assert mine[:, 1].tolist() == f.ids.tolist()
        x1, y1, x2, y2 = f.boxes.T
        assert np.array_equal(mine[:, 2:6], np.stack([x1, y1, x2 - x1, y2 - y1], axis=1))
        assert np.all(mine[:, 6] == 1)
        assert mine[:, 7].tolist() == (f.classes + 1).tolist()
        assert np.allclose(mine[:, 8], f.visibility, atol=5e-4)

    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(video.coco_path))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    assert sorted(coco.getImgIds()) == list(range(1, n + 1))
    assert coco.dataset["videos"][0]["length"] == n
    for f in frames:
        image = coco.loadImgs(f.index + 1)[0]
        assert (image["frame_index"], image["width"], image["height"]) == (f.index, MEDIUM.width, MEDIUM.height)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=f.index + 1))
        assert [a["track_id"] for a in anns] == f.ids.tolist()
        for a, m, cls in zip(anns, f.masks(), f.classes):
            assert np.array_equal(mask_utils.decode(a["segmentation"]).astype(bool), m)
            assert a["category_id"] == cls + 1
            assert a["area"] == m.sum()
            ys, xs = np.nonzero(m)
            assert a["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]

    summary = json.loads(video.counts_path.read_text())
    assert summary["counts"] == true_counts(frames) == video.counts
    assert summary["line"] == list(counting_line(MEDIUM)) == list(video.line)
    assert summary["frames"] == n


def test_refuses_to_overwrite(tmp_path) -> None:
    write_belt_video(tmp_path / "a.mp4", 2, 0, SMALL)
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_belt_video(tmp_path / "a.mp4", 2, 1, SMALL)
    # A ground-truth file alone is enough to refuse, and nothing is written then.
    (tmp_path / "b.gt.json").write_text("mine")
    with pytest.raises(FileExistsError, match=r"b\.gt\.json"):
        write_belt_video(tmp_path / "b.mp4", 2, 1, SMALL)
    assert (tmp_path / "b.gt.json").read_text() == "mine"
    assert {p.name for p in tmp_path.iterdir()} == {*before, "b.gt.json"}
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir() if p.name in before} == before
    again = write_belt_video(tmp_path / "a.mp4", 3, 1, SMALL, overwrite=True)
    assert len(_read_video(again.path)) == 3


@pytest.mark.parametrize("name", ["clip.mkv", "clip", "clip.MP3"])
def test_refuses_unknown_suffixes(tmp_path, name: str) -> None:
    with pytest.raises(ValueError, match=r"\.mp4.*\.avi"):
        write_belt_video(tmp_path / name, 2, 0, SMALL)
    assert list(tmp_path.iterdir()) == []


def test_missing_folder(tmp_path) -> None:
    with pytest.raises(OSError, match="not a folder"):
        write_belt_video(tmp_path / "nope" / "a.mp4", 2, 0, SMALL)


BAD_CONFIGS = [
    ("width", 8),
    ("width", 640.5),
    ("height", "384"),
    ("fps", 0.0),
    ("speed", 0.0),
    ("speed", -6.0),
    ("speed", math.nan),
    ("speed_jitter", 0.9),
    ("rotation", -1.0),
    ("spawn_rate", 5.0),
    ("touching", 1.5),
    ("max_overlap", 0.9),
    ("part_size", (8.0, 96.0)),
    ("part_size", (96.0, 48.0)),
    ("part_size", (48.0, 300.0)),
    ("part_size", (48.0,)),
    ("defect_rate", -0.1),
    ("blur", 11.0),
    ("noise", 100.0),
    ("perspective", 0.5),
    ("prefill", 1),
]


@pytest.mark.parametrize(("name", "value"), BAD_CONFIGS)
def test_bad_config_names_the_field(name: str, value: object) -> None:
    config = BeltConfig(**{name: value})
    with pytest.raises(ValueError, match=rf"^BeltConfig\.{name}=.* use "):
        config.validate()
    with pytest.raises(ValueError, match=rf"BeltConfig\.{name}="):
        render_belt(3, 0, config)  # raised by the call, not on the first frame


@pytest.mark.parametrize(("frames", "seed"), [(-1, 0), (2.5, 0), (True, 0), (3, -1), (3, "7")])
def test_bad_frames_and_seeds(frames: object, seed: object) -> None:
    with pytest.raises(ValueError, match=r"frames|seed"):
        render_belt(frames, seed, SMALL)  # type: ignore[arg-type]


def test_default_config_is_valid() -> None:
    BeltConfig().validate()
    BeltConfig(width=64, height=64, part_size=(16.0, 32.0), touching=1.0, max_overlap=0.0).validate()
