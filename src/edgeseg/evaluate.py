"""COCO box and mask mAP of a model on any COCO-format instance dataset.

Uses faster-coco-eval when it is installed (same numbers, faster), else pycocotools
(``pip install edgeseg[eval]``).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .coco import COCO80_NAMES, COCO80_TO_91
from .errors import DatasetError, ImageError
from .model import Model
from .result import Result

log = logging.getLogger("edgeseg")


def _coco_api(evaluator: str | None = None) -> tuple[Any, Any, str]:
    """(COCO class, COCOeval class, backend name): faster-coco-eval when installed, else pycocotools."""
    if evaluator not in (None, "faster-coco-eval", "pycocotools"):
        raise ValueError(f"evaluator must be 'faster-coco-eval' or 'pycocotools', got {evaluator!r}")
    if evaluator in (None, "faster-coco-eval"):
        try:
            from faster_coco_eval import COCO, COCOeval_faster

            return COCO, COCOeval_faster, "faster-coco-eval"
        except ImportError:
            if evaluator is not None:
                raise ImportError("faster-coco-eval is not installed: pip install faster-coco-eval") from None
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval, "pycocotools"
    except ImportError as exc:
        raise ImportError(
            "COCO evaluation needs pycocotools (or faster-coco-eval): pip install 'edgeseg[eval]'"
        ) from exc


@dataclass
class EvalReport:
    """Accuracy and per-stage speed of one evaluation run (the keys of ``edgeseg eval --json``).

    ``images`` counts the images evaluated; ``failed`` lists the ones skipped because they could not be read,
    as ``{"file_name", "error"}``. The mAP covers the evaluated images only.
    """

    model: str
    images: int
    detections: int
    conf: float
    iou: float
    max_det: int
    box_map50_95: float
    box_map50: float
    mask_map50_95: float
    mask_map50: float
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    evaluator: str
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    failed: list[dict[str, str]] = field(default_factory=list)
    nms: str = "box"

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return asdict(self)


def category_map(model_names: Sequence[str], categories: list[dict]) -> dict[int, int]:
    """Dataset category id for each model class index that has one.

    A model with the 80 COCO classes on a COCO-id dataset uses COCO's 91-id scheme; otherwise
    categories are matched by name (case-insensitive). Every dataset category must match a class.
    """
    by_id = {c["id"]: c["name"] for c in categories}
    if tuple(model_names) == COCO80_NAMES and all(
        by_id.get(i) in (None, n) for i, n in zip(COCO80_TO_91, COCO80_NAMES)
    ):
        return {i: cid for i, cid in enumerate(COCO80_TO_91) if cid in by_id}
    index = {n.strip().lower(): i for i, n in enumerate(model_names)}
    unmatched = [c["name"] for c in categories if c["name"].strip().lower() not in index]
    if unmatched:
        raise ValueError(
            f"dataset categories match no class of the model: {', '.join(unmatched)}. "
            f"The model's classes are: {', '.join(model_names)}"
        )
    return {index[c["name"].strip().lower()]: c["id"] for c in categories}


def load_annotations(path: str | Path) -> dict[str, Any]:
    """Read a COCO instances JSON and check every field that evaluation relies on.

    COCO tools otherwise fail on a malformed file with a bare KeyError, TypeError or AssertionError, or quietly
    drop what they cannot match (an unknown ``image_id`` or ``category_id``) and report a wrong mAP.

    Raises:
        DatasetError: (a ``ValueError``) naming the file, the first bad entry and field, as in
            ``ann.json: annotations[17] (id 1234): category_id 999 is not in categories (and 3 more problems)``.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON: {exc}") from None
    problems = _dataset_problems(data)
    if problems:
        more = len(problems) - 1
        tail = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        raise DatasetError(f"{path}: {problems[0]}{tail}")
    return data


def evaluate(
    model: Model,
    images: str | Path,
    annotations: str | Path,
    conf: float = 0.001,
    iou: float = 0.7,
    max_det: int = 300,
    per_class: bool = False,
    progress: bool = True,
    save_predictions: str | Path | None = None,
    evaluator: str | None = None,
    strict: bool = False,
    nms: str | None = None,
) -> EvalReport:
    """Run ``model`` on every image of a COCO-format dataset and compute box and mask mAP.

    Args:
        model: a loaded model.
        images: folder holding the dataset's images (``file_name`` of each image entry).
        annotations: COCO instances JSON.
        conf, iou, max_det: prediction settings (evaluation defaults: 0.001, 0.7, 300).
        per_class: also report mask and box AP50-95 per class.
        progress: show a progress bar with images/s.
        save_predictions: write the predictions (COCO results JSON) to this file.
        evaluator: ``"faster-coco-eval"`` or ``"pycocotools"``; default: the first installed.
        strict: raise ``ImageError`` at the first image that cannot be read, instead of skipping it and
            listing it in ``EvalReport.failed`` (the mAP then covers the images evaluated).
        nms: ``"box"``, ``"fast"``, ``"matrix"`` or ``"mask"`` (see ``Model.__call__``); None: the family's.

    Raises:
        DatasetError: the annotations are not valid COCO (see ``load_annotations``), before any inference.
        FileNotFoundError: the annotations file, or images it lists, are missing.
        ImageError: no image could be read, or with ``strict``, one could not.
    """
    nms = model.options(conf=conf, iou=iou, max_det=max_det, nms=nms).nms  # checked before any work
    coco_cls, eval_cls, backend = _coco_api(evaluator)
    images, annotations = Path(images), Path(annotations)
    if not annotations.is_file():
        raise FileNotFoundError(f"{annotations}: no such annotations file")
    dataset = load_annotations(annotations)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_cls()  # built from the checked dict, so the file is parsed once
        gt.dataset = dataset
        gt.createIndex()
    entries = sorted(dataset["images"], key=lambda e: e["id"])
    missing = [e["file_name"] for e in entries if not (images / e["file_name"]).is_file()]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        listed = ", ".join(missing[:10])
        raise FileNotFoundError(f"{len(missing)} annotated image(s) missing in {images}: {listed}{more}")
    cats = category_map(model.names, dataset["categories"])

    from tqdm import tqdm

    results: list[dict] = []
    failed: list[dict[str, str]] = []
    evaluated: list[int] = []
    stages: dict[str, list[float]] = {"preprocess": [], "inference": [], "postprocess": []}
    started = time.perf_counter()
    bar = tqdm(entries, desc="eval", unit="img", disable=not progress)
    for entry in bar:
        try:
            result = model(images / entry["file_name"], conf=conf, iou=iou, max_det=max_det, nms=nms)
        except ImageError as exc:
            # One unreadable file should not throw away a long run: skip it, say so, and leave its ground
            # truth out of the mAP (scoring it as "nothing detected" would understate the model).
            if strict:
                raise
            failed.append({"file_name": entry["file_name"], "error": str(exc)})
            log.warning("eval: skipping an image that cannot be read: %s", exc)
            continue
        evaluated.append(entry["id"])
        keep = np.array([int(c) in cats for c in result.class_ids], dtype=bool)
        if not keep.all():
            result = _subset(result, keep)
        results.extend(result.to_coco(entry["id"], category_map=cats))
        for stage, ms in result.timings.items():
            stages[stage].append(ms)
    elapsed = time.perf_counter() - started
    if not evaluated:
        raise ImageError(
            f"none of the {len(entries)} images in {images} could be read; the first: {failed[0]['error']}"
        )

    if save_predictions is not None:
        Path(save_predictions).write_text(json.dumps(results))
    scores: dict[str, tuple[float, float]] = {}
    per_class_ap: dict[str, dict[str, float]] = {}
    for kind in ("bbox", "segm"):
        if not results:
            scores[kind] = (0.0, 0.0)
            continue
        with contextlib.redirect_stdout(io.StringIO()):
            dt = gt.loadRes(_for_kind(results, kind))
            ev = eval_cls(gt, dt, kind)
            ev.params.imgIds = evaluated
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        scores[kind] = (float(ev.stats[0]), float(ev.stats[1]))
        if per_class:
            precision = ev.eval["precision"]  # [iou thresholds, recall, categories, areas, max dets]
            for k, cat_id in enumerate(ev.params.catIds):
                p = precision[:, :, k, 0, -1]
                name = gt.cats[cat_id]["name"]
                per_class_ap.setdefault(name, {})["box" if kind == "bbox" else "mask"] = (
                    float(p[p > -1].mean()) if (p > -1).any() else float("nan")
                )
    if progress:
        skipped = f"; {len(failed)} skipped (cannot be read)" if failed else ""
        print(f"{len(evaluated)} images in {elapsed:.1f} s ({len(evaluated) / elapsed:.1f} images/s){skipped}")
    return EvalReport(
        model=str(model.spec.path),
        images=len(evaluated),
        detections=len(results),
        conf=conf,
        iou=iou,
        max_det=max_det,
        box_map50_95=scores["bbox"][0],
        box_map50=scores["bbox"][1],
        mask_map50_95=scores["segm"][0],
        mask_map50=scores["segm"][1],
        preprocess_ms=float(np.mean(stages["preprocess"])),
        inference_ms=float(np.mean(stages["inference"])),
        postprocess_ms=float(np.mean(stages["postprocess"])),
        evaluator=backend,
        per_class=per_class_ap,
        failed=failed,
        nms=nms,
    )


_SECTIONS = ("images", "annotations", "categories")
_MISSING = object()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # JSON true/false are not ids


def _is_positive_int(value: Any) -> bool:
    return _is_int(value) and value > 0


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_real(value) and math.isfinite(value)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _show(value: Any) -> str:
    """A value as the JSON file spells it, cut short."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _where(section: str, index: int, item: Any) -> str:
    """``annotations[17] (id 1234)``: the index finds the entry in an editor, the id in other tools."""
    if isinstance(item, dict) and _is_int(item.get("id")):
        return f"{section}[{index}] (id {item['id']})"
    return f"{section}[{index}]"


def _require(item: dict, key: str, ok: Any, want: str, problems: list[str], where: str) -> Any:
    """``item[key]`` when ``ok(value)``; else records the problem and returns ``_MISSING``."""
    value = item.get(key, _MISSING)
    if value is _MISSING:
        problems.append(f"{where}: missing '{key}'")
    elif not ok(value):
        problems.append(f"{where}: {key} must be {want}, got {_show(value)}")
        return _MISSING
    return value


def _dataset_problems(data: Any) -> list[str]:
    """Every problem of a COCO instances dataset, in file order (images, categories, annotations)."""
    if not isinstance(data, dict):
        return [
            "the top level must be a JSON object with 'images', 'annotations' and 'categories' lists, "
            f"got {_json_type(data)}"
        ]
    problems = [
        f"'{key}' must be a list, got {_json_type(data[key])}" if key in data else f"'{key}' must be a list (missing)"
        for key in _SECTIONS
        if not isinstance(data.get(key), list)
    ]
    if problems:
        return problems
    sizes = _image_problems(data["images"], problems)
    categories = _category_problems(data["categories"], problems)
    _annotation_problems(data["annotations"], sizes, categories, problems)
    return problems


def _image_problems(entries: list, problems: list[str]) -> dict[int, tuple[int, int] | None]:
    """Checks ``images``; returns (height, width) by image id (None where those are broken)."""
    if not entries:
        problems.append("no images: the 'images' list is empty")
    sizes: dict[int, tuple[int, int] | None] = {}
    first: dict[int, int] = {}
    for i, item in enumerate(entries):
        where = _where("images", i, item)
        if not isinstance(item, dict):
            problems.append(f"{where} must be an object, got {_json_type(item)}")
            continue
        image_id = _require(item, "id", _is_int, "an integer", problems, where)
        _require(item, "file_name", lambda v: isinstance(v, str) and v != "", "a file name", problems, where)
        height = _require(item, "height", _is_positive_int, "a positive integer", problems, where)
        width = _require(item, "width", _is_positive_int, "a positive integer", problems, where)
        if image_id is _MISSING:
            continue
        if image_id in first:
            problems.append(f"{where}: duplicate id (also images[{first[image_id]}])")
            continue
        first[image_id] = i
        sizes[image_id] = None if _MISSING in (height, width) else (height, width)
    return sizes


def _category_problems(entries: list, problems: list[str]) -> set[int]:
    """Checks ``categories``; returns their ids."""
    if not entries:
        problems.append("no categories: the 'categories' list is empty (mAP is computed per category)")
    first: dict[int, int] = {}
    for i, item in enumerate(entries):
        where = _where("categories", i, item)
        if not isinstance(item, dict):
            problems.append(f"{where} must be an object, got {_json_type(item)}")
            continue
        cat_id = _require(item, "id", _is_int, "an integer", problems, where)
        _require(item, "name", lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string", problems, where)
        if cat_id is _MISSING:
            continue
        if cat_id in first:
            problems.append(f"{where}: duplicate id (also categories[{first[cat_id]}])")
        else:
            first[cat_id] = i
    return set(first)


def _annotation_problems(
    entries: list, sizes: dict[int, tuple[int, int] | None], categories: set[int], problems: list[str]
) -> None:
    if not entries:
        problems.append("no annotations: the 'annotations' list is empty (mAP needs ground truth)")
    first: dict[int, int] = {}
    for i, item in enumerate(entries):
        where = _where("annotations", i, item)
        if not isinstance(item, dict):
            problems.append(f"{where} must be an object, got {_json_type(item)}")
            continue
        ann_id = _require(item, "id", _is_int, "an integer", problems, where)
        if ann_id == 0:
            # COCOeval stores the matched ground-truth id per detection, 0 meaning "unmatched".
            problems.append(f"{where}: id 0 cannot be used: COCO evaluation reads annotation id 0 as 'unmatched'")
        elif ann_id is not _MISSING:
            if ann_id in first:
                problems.append(f"{where}: duplicate id (also annotations[{first[ann_id]}])")
            else:
                first[ann_id] = i
        image_id = _require(item, "image_id", _is_int, "an integer", problems, where)
        if image_id is not _MISSING and image_id not in sizes:
            problems.append(f"{where}: image_id {image_id} is not in images")
        category_id = _require(item, "category_id", _is_int, "an integer", problems, where)
        if category_id is not _MISSING and category_id not in categories:
            problems.append(f"{where}: category_id {category_id} is not in categories")
        bbox = item.get("bbox", _MISSING)
        if bbox is _MISSING:
            problems.append(f"{where}: missing 'bbox'")
        elif not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_real(v) for v in bbox)):
            problems.append(f"{where}: bbox must be 4 numbers [x, y, width, height], got {_show(bbox)}")
        elif not all(math.isfinite(v) for v in bbox):
            problems.append(f"{where}: bbox must be 4 finite numbers, got {_show(bbox)}")
        elif bbox[2] < 0 or bbox[3] < 0:
            problems.append(f"{where}: bbox width and height must be >= 0, got {_show(bbox)}")
        _require(item, "area", lambda v: _is_number(v) and v >= 0, "a number >= 0", problems, where)
        _require(item, "iscrowd", lambda v: _is_int(v) and v in (0, 1), "0 or 1", problems, where)
        segmentation = item.get("segmentation", _MISSING)
        if segmentation is _MISSING:
            problems.append(f"{where}: missing 'segmentation'")
        else:
            problem = _segmentation_problem(segmentation, sizes.get(image_id))
            if problem:
                problems.append(f"{where}: {problem}")


def _segmentation_problem(segmentation: Any, size: tuple[int, int] | None) -> str | None:
    """What is wrong with a polygon list or RLE dict (``size``: the image's (height, width) when known)."""
    if isinstance(segmentation, list) and segmentation:
        for k, polygon in enumerate(segmentation):
            if not isinstance(polygon, list) or not all(_is_number(v) for v in polygon):
                return f"segmentation polygon {k} must be a list of finite numbers [x1, y1, x2, y2, ...]"
            if len(polygon) < 6 or len(polygon) % 2:
                return (
                    f"segmentation polygon {k} must have an even number of at least 6 coordinates (3 points), "
                    f"got {len(polygon)}"
                )
        return None
    if isinstance(segmentation, dict):
        rle_size, counts = segmentation.get("size"), segmentation.get("counts")
        if not (isinstance(rle_size, list) and len(rle_size) == 2 and all(_is_int(v) for v in rle_size)):
            return f"segmentation RLE needs 'size' [height, width], got {_show(rle_size)}"
        if size is not None and tuple(rle_size) != size:
            return f"segmentation RLE size {rle_size} does not match the image's [height, width] {list(size)}"
        if isinstance(counts, str):
            return None
        if isinstance(counts, list) and all(_is_int(v) and v >= 0 for v in counts):
            # Uncompressed RLE: the runs must cover the image exactly, or the decoded mask is garbage.
            if sum(counts) != rle_size[0] * rle_size[1]:
                return (
                    f"segmentation RLE counts add up to {sum(counts)}, not height x width = {rle_size[0] * rle_size[1]}"
                )
            return None
        return f"segmentation RLE counts must be a string or a list of non-negative integers, got {_show(counts)}"
    return f"segmentation must be a polygon list or an RLE dict, got {_show(segmentation)}"


def _for_kind(results: list[dict], kind: str) -> list[dict]:
    # loadRes derives areas from the segmentation when one is present; box evaluation must use boxes.
    if kind == "segm":
        return results
    return [{k: v for k, v in r.items() if k != "segmentation"} for r in results]


def _subset(result: Result, keep: np.ndarray) -> Result:
    return replace(
        result,
        boxes=result.boxes[keep],
        scores=result.scores[keep],
        class_ids=result.class_ids[keep],
        masks=result.masks.select(keep),
    )
