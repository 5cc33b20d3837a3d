"""``edgeseg eval`` input (issue 12): a malformed annotations file is one clear error, named by file, entry and
field, before any inference runs (defect 9); an undecodable image is skipped and reported instead of aborting
the run (defect 6, eval half).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import edgeseg
from edgeseg.cli import main
from edgeseg.coco import COCO80_NAMES
from edgeseg.errors import DatasetError, ImageError
from edgeseg.evaluate import evaluate

from conftest import ANNOTATIONS, IMAGES, MODELS, require_shared

MODEL = MODELS / "yolov8n-seg.onnx"
IMAGE_IDS = (139, 802, 255165)  # 20, 2 and 23 annotations; 255165's last one is a crowd with an RLE mask
CROWD = 44  # index of that crowd annotation in _subset()["annotations"]
DROP = object()  # _edit: remove the field


@functools.lru_cache(maxsize=1)
def _full() -> str:
    require_shared()
    return ANNOTATIONS.read_text()


def _subset(ids: tuple[int, ...] = IMAGE_IDS) -> dict:
    """A fresh copy of the real annotations cut to the images ``ids``, images sorted by id."""
    data = json.loads(_full())
    data["images"] = sorted((e for e in data["images"] if e["id"] in ids), key=lambda e: e["id"])
    data["annotations"] = sorted(
        (a for a in data["annotations"] if a["image_id"] in ids), key=lambda a: (a["image_id"], a["id"])
    )
    return data


def _write(tmp_path: Path, data: Any, name: str = "ann.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


class _NoInference:
    """Stands in for a model with the 80 COCO classes; running it fails the test."""

    names = COCO80_NAMES

    def __call__(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("inference ran before the annotations were validated")


@pytest.fixture(scope="module")
def model() -> edgeseg.Model:
    require_shared()
    return edgeseg.load(MODEL)


# ---------------------------------------------------------------------------- malformed datasets (defect 9)


def _edit(section: str, index: int, **fields: Any) -> Callable[[dict], dict]:
    """A mutation that sets (or with DROP removes) fields of ``data[section][index]``."""

    def mutate(data: dict) -> dict:
        entry = data[section][index]
        for key, value in fields.items():
            if value is DROP:
                del entry[key]
            else:
                entry[key] = value
        return data

    return mutate


def _top(**fields: Any) -> Callable[[dict], Any]:
    """A mutation of the top-level object (DROP removes a key)."""

    def mutate(data: dict) -> dict:
        for key, value in fields.items():
            if value is DROP:
                del data[key]
            else:
                data[key] = value
        return data

    return mutate


def _duplicate(section: str) -> Callable[[dict], dict]:
    """Give ``data[section][1]`` the id of entry 0."""

    def mutate(data: dict) -> dict:
        data[section][1]["id"] = data[section][0]["id"]
        return data

    return mutate


def _polygon(coords: list) -> Callable[[dict], dict]:
    return _edit("annotations", 0, segmentation=[coords])


def _crowd(**rle: Any) -> Callable[[dict], dict]:
    def mutate(data: dict) -> dict:
        segmentation = data["annotations"][CROWD]["segmentation"]
        assert isinstance(segmentation, dict)
        for key, value in rle.items():
            if value is DROP:
                del segmentation[key]
            else:
                segmentation[key] = value
        return data

    return mutate


# (mutation, entry (section, index) or None for the top level, text the error must contain)
CASES = [
    pytest.param(lambda d: [d], None, "the top level must be a JSON object", id="top-level-list"),
    pytest.param(_top(annotations=DROP), None, "'annotations' must be a list", id="no-annotations-key"),
    pytest.param(_top(images={"a": 1}), None, "'images' must be a list", id="images-not-list"),
    pytest.param(_top(categories=[]), None, "no categories", id="empty-categories"),
    pytest.param(_top(annotations=[]), None, "no annotations", id="empty-annotations"),
    pytest.param(_top(images=[]), None, "no images", id="empty-images"),
    pytest.param(_edit("images", 1, id="802"), ("images", 1), "id must be an integer", id="image-id-str"),
    pytest.param(_edit("images", 1, file_name=DROP), ("images", 1), "missing 'file_name'", id="image-no-file"),
    pytest.param(_edit("images", 0, width=0), ("images", 0), "width must be a positive integer", id="width-0"),
    pytest.param(_edit("images", 0, height=42.5), ("images", 0), "height must be a positive integer", id="height"),
    pytest.param(_duplicate("images"), ("images", 1), "duplicate id", id="image-dup-id"),
    pytest.param(
        _edit("categories", 2, name=None), ("categories", 2), "name must be a non-empty string", id="cat-name"
    ),
    pytest.param(_edit("categories", 2, id=None), ("categories", 2), "id must be an integer", id="cat-id"),
    pytest.param(_duplicate("categories"), ("categories", 1), "duplicate id", id="cat-dup-id"),
    pytest.param(_edit("annotations", 0, bbox=DROP), ("annotations", 0), "missing 'bbox'", id="no-bbox"),
    pytest.param(_edit("annotations", 1, bbox=[1, 2, 3]), ("annotations", 1), "bbox must be 4 numbers", id="bbox3"),
    pytest.param(
        _edit("annotations", 1, bbox=[1, 2, "3", 4]), ("annotations", 1), "bbox must be 4 numbers", id="bbox-str"
    ),
    pytest.param(_edit("annotations", 1, bbox=[1, 2, float("nan"), 4]), ("annotations", 1), "finite", id="bbox-nan"),
    pytest.param(
        _edit("annotations", 1, bbox=[1, 2, -3, 4]), ("annotations", 1), "width and height must be >= 0", id="bbox-w"
    ),
    pytest.param(_edit("annotations", 2, area="12"), ("annotations", 2), "area must be a number", id="area-str"),
    pytest.param(_edit("annotations", 2, area=DROP), ("annotations", 2), "missing 'area'", id="no-area"),
    pytest.param(_edit("annotations", 2, iscrowd=2), ("annotations", 2), "iscrowd must be 0 or 1", id="iscrowd"),
    pytest.param(
        _edit("annotations", 0, segmentation="x"),
        ("annotations", 0),
        "segmentation must be a polygon list or an RLE dict",
        id="segm-str",
    ),
    pytest.param(
        _edit("annotations", 0, segmentation=[]),
        ("annotations", 0),
        "segmentation must be a polygon list or an RLE dict",
        id="segm-empty",
    ),
    pytest.param(_polygon([1, 2, 3, 4]), ("annotations", 0), "at least 6", id="polygon-4"),
    pytest.param(_polygon([1, 2, 3, 4, 5, 6, 7]), ("annotations", 0), "even number", id="polygon-odd"),
    pytest.param(_polygon([1, 2, 3, 4, 5, None]), ("annotations", 0), "finite numbers", id="polygon-none"),
    pytest.param(_crowd(size=[10, 10]), ("annotations", CROWD), "does not match the image", id="rle-size"),
    pytest.param(_crowd(size=DROP), ("annotations", CROWD), "'size'", id="rle-no-size"),
    pytest.param(_crowd(counts=5), ("annotations", CROWD), "counts must be a string or a list", id="rle-counts"),
    pytest.param(_crowd(counts=[1, 2, 3]), ("annotations", CROWD), "counts add up to 6", id="rle-counts-sum"),
    pytest.param(
        _edit("annotations", 4, category_id=999), ("annotations", 4), "category_id 999 is not in categories", id="cat"
    ),
    pytest.param(_edit("annotations", 5, image_id=42), ("annotations", 5), "image_id 42 is not in images", id="img"),
    pytest.param(_edit("annotations", 5, image_id=None), ("annotations", 5), "image_id must be an integer", id="img0"),
    pytest.param(_duplicate("annotations"), ("annotations", 1), "duplicate id", id="ann-dup-id"),
    pytest.param(_edit("annotations", 1, id=0), ("annotations", 1), "id 0", id="ann-id-0"),
    pytest.param(lambda d: {**d, "annotations": [*d["annotations"], 7]}, None, "must be an object", id="ann-int"),
]


def _entry_text(data: dict, section: str, index: int) -> str:
    """How errors name an entry: its index, and its id when that is an integer."""
    item_id = data[section][index].get("id")
    return f"{section}[{index}] (id {item_id})" if type(item_id) is int else f"{section}[{index}]:"


@pytest.mark.parametrize(("mutate", "entry", "message"), CASES)
def test_malformed_annotations_are_one_clear_error_before_inference(
    tmp_path: Path, mutate: Callable[[dict], Any], entry: tuple[str, int] | None, message: str
) -> None:
    data = mutate(_subset())
    ann = _write(tmp_path, data)
    with pytest.raises(DatasetError) as info:
        evaluate(_NoInference(), IMAGES, ann, progress=False)  # type: ignore[arg-type]
    text = str(info.value)
    assert text.startswith(f"{ann}: ") and message in text, text
    if entry is not None:
        assert text.startswith(f"{ann}: {_entry_text(data, *entry)}"), text
    assert "\n" not in text


def test_entry_names_the_index_and_the_id(tmp_path: Path) -> None:
    data = _subset()
    data["annotations"][17]["category_id"] = 999
    ann = _write(tmp_path, data)
    with pytest.raises(DatasetError) as info:
        evaluate(_NoInference(), IMAGES, ann, progress=False)  # type: ignore[arg-type]
    assert str(info.value) == (
        f"{ann}: annotations[17] (id {data['annotations'][17]['id']}): category_id 999 is not in categories"
    )


def test_several_problems_are_counted(tmp_path: Path) -> None:
    data = _subset()
    for a in data["annotations"][:5]:
        a["image_id"] = 42
    ann = _write(tmp_path, data)
    with pytest.raises(DatasetError, match=r"image_id 42 is not in images \(and 4 more problems\)$"):
        evaluate(_NoInference(), IMAGES, ann, progress=False)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param('{"images": [', "not valid JSON: Expecting value: line 1 column 13", id="cut"),
        pytest.param("", "not valid JSON: Expecting value: line 1 column 1", id="empty"),
        pytest.param(b"\x80{}", "not valid JSON", id="bad-utf8"),
    ],
)
def test_json_syntax_error_names_the_file(tmp_path: Path, content: str | bytes, message: str) -> None:
    ann = tmp_path / "broken.json"
    ann.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DatasetError) as info:
        evaluate(_NoInference(), IMAGES, ann, progress=False)  # type: ignore[arg-type]
    assert str(info.value).startswith(f"{ann}: {message}"), str(info.value)


CLI_CASES = [
    pytest.param(lambda d: [d], "the top level must be a JSON object", id="assertion"),
    pytest.param(_edit("annotations", 0, bbox=DROP), "missing 'bbox'", id="keyerror"),
    pytest.param(_edit("annotations", 0, segmentation=7), "segmentation must be a polygon", id="typeerror"),
    pytest.param(_top(categories=[]), "no categories", id="no-categories"),
    pytest.param(_top(annotations=[]), "no annotations", id="no-annotations"),
    pytest.param(_edit("annotations", 5, image_id=42), "image_id 42 is not in images", id="unknown-image"),
    pytest.param(_edit("annotations", 4, category_id=999), "category_id 999 is not in categories", id="unknown-cat"),
]


@pytest.mark.parametrize(("mutate", "message"), CLI_CASES)
def test_cli_malformed_annotations_exit_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mutate: Callable[[dict], Any], message: str
) -> None:
    ann = _write(tmp_path, mutate(_subset()))
    assert main(["eval", str(MODEL), "--images", str(IMAGES), "--annotations", str(ann), "--json", "-q"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert err.startswith(f"edgeseg: error: {ann}: ") and message in err and "\n" not in err, err


def test_cli_json_syntax_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_shared()
    ann = tmp_path / "broken.json"
    ann.write_text('{"images": [}')
    assert main(["eval", str(MODEL), "--images", str(IMAGES), "--annotations", str(ann), "-q"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"edgeseg: error: {ann}: not valid JSON: Expecting value: line 1 column 13 (char 12)"
    )


def test_valid_subset_evaluates(model: edgeseg.Model, tmp_path: Path) -> None:
    """The subset the cases above break is itself valid (crowd RLE included) and scores above zero."""
    report = evaluate(model, IMAGES, _write(tmp_path, _subset()), progress=False)
    assert report.images == 3 and report.failed == []
    assert report.box_map50_95 > 0.1 and report.mask_map50_95 > 0.1


# ------------------------------------------------------------------------- undecodable images (defect 6)


@pytest.fixture
def broken_images(tmp_path: Path) -> tuple[Path, Path, list[str]]:
    """A copy of three dataset images: the first intact, the second a JPEG cut to 30% of its bytes, the third
    a text file named .jpg. Returns (folder, annotations, file names sorted by image id)."""
    data = _subset()
    names = [e["file_name"] for e in data["images"]]
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / names[0]).write_bytes((IMAGES / names[0]).read_bytes())
    jpeg = (IMAGES / names[1]).read_bytes()
    (folder / names[1]).write_bytes(jpeg[: int(len(jpeg) * 0.3)])
    (folder / names[2]).write_text("this is not an image\n")
    return folder, _write(tmp_path, data), names


def test_eval_skips_undecodable_images(
    model: edgeseg.Model, broken_images: tuple[Path, Path, list[str]], tmp_path: Path
) -> None:
    folder, ann, names = broken_images
    report = evaluate(model, folder, ann, progress=False)
    assert [f["file_name"] for f in report.failed] == names[1:]
    for failure in report.failed:
        assert failure["file_name"] in failure["error"]
    assert report.images == 1
    assert report.to_dict()["failed"] == report.failed

    # The mAP covers the evaluated image only: the same numbers as a dataset of just that image.
    only = _subset(IMAGE_IDS[:1])
    alone = evaluate(model, folder, _write(tmp_path, only, "only.json"), progress=False)
    assert alone.failed == [] and alone.images == 1
    for key in ("box_map50_95", "box_map50", "mask_map50_95", "mask_map50", "detections"):
        assert getattr(report, key) == getattr(alone, key), key


def test_eval_strict_stops_at_the_first_bad_image(
    model: edgeseg.Model, broken_images: tuple[Path, Path, list[str]]
) -> None:
    folder, ann, names = broken_images
    with pytest.raises(ImageError) as info:
        evaluate(model, folder, ann, progress=False, strict=True)
    assert names[1] in str(info.value) and names[2] not in str(info.value)


def test_eval_with_no_readable_image_is_an_error(model: edgeseg.Model, tmp_path: Path) -> None:
    data = _subset()
    folder = tmp_path / "images"
    folder.mkdir()
    for entry in data["images"]:
        (folder / entry["file_name"]).write_text("not an image\n")
    with pytest.raises(ImageError, match=r"none of the 3 images .* could be read") as info:
        evaluate(model, folder, _write(tmp_path, data), progress=False)
    assert data["images"][0]["file_name"] in str(info.value)


def test_missing_images_stay_an_error_before_inference(
    broken_images: tuple[Path, Path, list[str]],
) -> None:
    folder, ann, names = broken_images
    (folder / names[0]).unlink()
    with pytest.raises(FileNotFoundError, match=names[0]):
        evaluate(_NoInference(), folder, ann, progress=False)  # type: ignore[arg-type]


def test_cli_eval_reports_failed_images_with_exit_1(
    broken_images: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, ann, names = broken_images
    assert main(["eval", str(MODEL), "--images", str(folder), "--annotations", str(ann), "--json", "-q"]) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out.strip().splitlines()[-1])
    assert report["images"] == 1
    assert [f["file_name"] for f in report["failed"]] == names[1:]
    assert "2 of 3 images skipped" in captured.err and "only the 1 evaluated image" in captured.err
    for name in names[1:]:
        assert name in captured.err
    assert "Traceback" not in captured.err


def test_cli_eval_strict_exits_2(
    broken_images: tuple[Path, Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    folder, ann, names = broken_images
    args = ["eval", str(MODEL), "--images", str(folder), "--annotations", str(ann), "--json", "-q", "--strict"]
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("edgeseg: error: ") and names[1] in err and names[2] not in err and "\n" not in err
    assert captured.out == ""


def test_cli_eval_clean_run_has_empty_failed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_shared()
    ann = _write(tmp_path, _subset(IMAGE_IDS[:1]))
    assert main(["eval", str(MODEL), "--images", str(IMAGES), "--annotations", str(ann), "--json", "-q"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out.strip().splitlines()[-1])["failed"] == []
    assert "skipped" not in captured.err
