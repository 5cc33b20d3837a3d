"""edgeseg.synthparts: determinism, annotation consistency, part geometry, config validation and COCO export."""

from __future__ import annotations

import contextlib
import io
import json
import math

import cv2
import numpy as np
import pytest

from edgeseg.synthparts import CLASSES, Scene, SceneConfig, render_scene, write_dataset
from edgeseg.synthparts.scene import MIN_PIXELS

N_SCENES = 30


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return [render_scene(seed) for seed in range(N_SCENES)]


def _holes(mask: np.ndarray) -> int:
    """Number of holes (inner contours) of a binary mask."""
    padded = cv2.copyMakeBorder(mask.astype(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    _, hierarchy = cv2.findContours(padded, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    return 0 if hierarchy is None else int(np.sum(hierarchy[0, :, 3] >= 0))


def test_same_seed_gives_identical_bytes() -> None:
    for seed in (7, np.random.SeedSequence([3, 1])):
        a, b = render_scene(seed), render_scene(seed)
        assert a.image.tobytes() == b.image.tobytes()
        assert a.instance_map.tobytes() == b.instance_map.tobytes()
        assert np.array_equal(a.classes, b.classes)
        assert np.array_equal(a.boxes, b.boxes)


def test_different_seeds_differ() -> None:
    pairs = [(1, 2), (np.random.SeedSequence([0, 4]), np.random.SeedSequence([1, 4]))]
    for s1, s2 in pairs:
        a, b = render_scene(s1), render_scene(s2)
        assert not np.array_equal(a.image, b.image)
        assert not np.array_equal(a.instance_map, b.instance_map)


def test_shapes_and_dtypes(scenes: list[Scene]) -> None:
    for scene in scenes:
        n = len(scene)
        assert scene.image.shape == (384, 512, 3) and scene.image.dtype == np.uint8
        assert scene.instance_map.shape == (384, 512) and scene.instance_map.dtype == np.uint16
        assert scene.classes.shape == (n,) and scene.classes.dtype == np.int64
        assert scene.boxes.shape == (n, 4) and scene.boxes.dtype == np.float32
        assert scene.centers.shape == (n, 2) and scene.full_areas.shape == (n,)
        masks = scene.masks()
        assert masks.shape == (n, 384, 512) and masks.dtype == bool
        assert 3 <= n <= 12
        assert np.all((scene.classes >= 0) & (scene.classes < len(CLASSES)))


def test_custom_size_and_part_count() -> None:
    config = SceneConfig(width=320, height=200, min_parts=0, max_parts=2, part_size=(30.0, 60.0))
    for seed in range(5):
        scene = render_scene(seed, config)
        assert scene.image.shape == (200, 320, 3)
        assert scene.instance_map.shape == (200, 320)
        assert len(scene) <= 2


def test_masks_are_disjoint_and_match_the_instance_map(scenes: list[Scene]) -> None:
    for scene in scenes:
        masks = scene.masks()
        assert masks.sum(axis=0).max() <= 1
        rebuilt = np.zeros_like(scene.instance_map)
        for i, m in enumerate(masks):
            rebuilt[m] = i + 1
        assert np.array_equal(rebuilt, scene.instance_map)
        assert set(np.unique(scene.instance_map).tolist()) == set(range(len(scene) + 1))


def test_boxes_are_tight(scenes: list[Scene]) -> None:
    for scene in scenes:
        for box, m in zip(scene.boxes, scene.masks()):
            ys, xs = np.nonzero(m)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def test_every_instance_is_visible_enough_and_in_one_piece(scenes: list[Scene]) -> None:
    config = SceneConfig()
    for scene in scenes:
        for m, full in zip(scene.masks(), scene.full_areas):
            area = int(m.sum())
            assert area >= MIN_PIXELS
            assert area >= config.min_visible * full
            n_labels, _ = cv2.connectedComponents(m.astype(np.uint8), connectivity=8)
            assert n_labels == 2


def test_all_classes_appear(scenes: list[Scene]) -> None:
    counts = np.bincount(np.concatenate([s.classes for s in scenes]), minlength=len(CLASSES))
    assert np.all(counts >= 5), dict(zip(CLASSES, counts.tolist()))


def test_holes_are_background(scenes: list[Scene]) -> None:
    hole_counts: dict[str, set[int]] = {name: set() for name in CLASSES}
    for scene in scenes:
        for i, (cls, m) in enumerate(zip(scene.classes, scene.masks())):
            name = CLASSES[cls]
            if name in ("washer", "hex_nut", "cracked_washer"):
                x, y = (round(float(c)) for c in scene.centers[i])
                assert scene.instance_map[y, x] != i + 1, f"{name} centre is inside its own mask"
            if int(m.sum()) == scene.full_areas[i]:  # whole part in view: its topology is exact
                hole_counts[name].add(_holes(m))
    # Holes are inner contours; the cracked washer's gap opens its ring; the defective bracket lacks one hole.
    assert hole_counts["washer"] == {1}
    assert hole_counts["hex_nut"] == {1}
    assert hole_counts["cracked_washer"] == {0}
    assert hole_counts["bolt"] == {0}
    assert hole_counts["bracket"] == {2}
    assert hole_counts["bracket_missing_hole"] == {1}


def test_no_overlap_keeps_parts_apart() -> None:
    config = SceneConfig(overlap=0.0, min_parts=8, max_parts=12)
    kernel = np.ones((3, 3), np.uint8)
    for seed in range(6):
        scene = render_scene(seed, config)
        for i, m in enumerate(scene.masks()):
            ring = cv2.dilate(m.astype(np.uint8), kernel).astype(bool) & ~m
            neighbours = np.unique(scene.instance_map[ring])
            assert set(neighbours.tolist()) <= {0}, f"instance {i} touches {neighbours}"


def test_effects_can_be_disabled() -> None:
    config = SceneConfig(blur=0.0, noise=0.0, perspective=0.0)
    a, b = render_scene(11, config), render_scene(11, config)
    assert np.array_equal(a.image, b.image) and len(a) >= 3


def test_mask_edges_follow_the_image() -> None:
    # Without blur or noise, pixels just inside a mask edge are drawn mostly in the part's colour and pixels just
    # outside mostly in the belt's: the mean brightness step across the edge must be large.
    config = SceneConfig(blur=0.0, noise=0.0)
    for seed in range(3):
        scene = render_scene(seed, config)
        grey = cv2.cvtColor(scene.image, cv2.COLOR_BGR2GRAY).astype(np.float32)
        fg = scene.instance_map > 0
        kernel = np.ones((3, 3), np.uint8)
        inner = fg & ~cv2.erode(fg.astype(np.uint8), kernel).astype(bool)
        outer = cv2.dilate(fg.astype(np.uint8), kernel).astype(bool) & ~fg
        assert grey[inner].mean() - grey[outer].mean() > 25


BAD_CONFIGS = [
    ("width", 8),
    ("width", 512.5),
    ("width", "512"),
    ("height", 100_000),
    ("max_parts", 0),
    ("min_parts", -1),
    ("min_parts", 13),
    ("part_size", (4.0, 120.0)),
    ("part_size", (100.0, 50.0)),
    ("part_size", (56.0, 1000.0)),
    ("part_size", (56.0,)),
    ("defect_rate", 1.5),
    ("defect_rate", math.nan),
    ("overlap", -0.1),
    ("min_visible", 2.0),
    ("blur", -1.0),
    ("noise", 100.0),
    ("perspective", 0.5),
]


@pytest.mark.parametrize(("name", "value"), BAD_CONFIGS)
def test_bad_config_names_the_field(name: str, value: object) -> None:
    config = SceneConfig(**{name: value})
    with pytest.raises(ValueError, match=rf"^SceneConfig\.{name}=.* use "):
        config.validate()
    with pytest.raises(ValueError, match=rf"SceneConfig\.{name}="):
        render_scene(0, config)


def test_default_config_is_valid() -> None:
    SceneConfig().validate()
    SceneConfig(width=64, height=64, part_size=(16.0, 64.0), min_parts=0, max_parts=1).validate()


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")
def test_write_dataset_round_trips_through_pycocotools(tmp_path) -> None:
    pytest.importorskip("pycocotools")
    from pycocotools import mask as mask_utils
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    count, seed = 3, 5
    path = write_dataset(tmp_path / "ds", count, seed=seed, progress=False)
    assert path == tmp_path / "ds" / "annotations.json"
    assert sorted(p.name for p in (tmp_path / "ds" / "images").iterdir()) == ["000000.png", "000001.png", "000002.png"]
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(path))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == list(CLASSES)
    assert {c["id"] for c in coco.dataset["categories"]} == set(range(1, len(CLASSES) + 1))
    assert all(c["supercategory"] == "part" for c in coco.dataset["categories"])
    assert sorted(coco.getImgIds()) == list(range(count))
    ann_ids = [a["id"] for a in coco.dataset["annotations"]]
    assert len(set(ann_ids)) == len(ann_ids) and min(ann_ids) >= 1

    for i in range(count):
        scene = render_scene(np.random.SeedSequence([seed, i]))
        entry = coco.loadImgs(i)[0]
        image = cv2.imread(str(tmp_path / "ds" / "images" / entry["file_name"]), cv2.IMREAD_COLOR)
        assert np.array_equal(image, scene.image)
        assert (entry["width"], entry["height"]) == (512, 384)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=i))
        assert len(anns) == len(scene)
        for ann, m, cls, box in zip(anns, scene.masks(), scene.classes, scene.boxes):
            assert np.array_equal(mask_utils.decode(ann["segmentation"]).astype(bool), m)
            assert ann["category_id"] == int(cls) + 1
            assert ann["area"] == m.sum()
            assert ann["bbox"] == [box[0], box[1], box[2] - box[0], box[3] - box[1]]
            assert ann["iscrowd"] == 0

    # The ground truth scored as predictions is perfect: the file is usable for evaluation as written.
    results = [{**a, "score": 1.0} for a in json.loads(path.read_text())["annotations"]]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(coco, coco.loadRes(results), "segm")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    assert evaluator.stats[0] == pytest.approx(1.0)


@pytest.mark.parametrize("count", [0, -1, 2.5])
def test_write_dataset_rejects_bad_count(tmp_path, count: object) -> None:
    with pytest.raises(ValueError, match="count"):
        write_dataset(tmp_path / "ds", count, progress=False)
    assert not (tmp_path / "ds").exists()


def test_write_dataset_rejects_bad_config(tmp_path) -> None:
    with pytest.raises(ValueError, match=r"SceneConfig\.noise="):
        write_dataset(tmp_path / "ds", 1, config=SceneConfig(noise=-1.0), progress=False)
    assert not (tmp_path / "ds").exists()
