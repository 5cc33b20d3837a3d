"""COCO box and mask mAP of a model on any COCO-format instance dataset.

Uses faster-coco-eval when it is installed (same numbers, faster), else pycocotools
(``pip install edgeseg[eval]``).
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .coco import COCO80_NAMES, COCO80_TO_91
from .model import Model
from .result import Result


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
    """Accuracy and per-stage speed of one evaluation run (the keys of ``edgeseg eval --json``)."""

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
    """
    coco_cls, eval_cls, backend = _coco_api(evaluator)
    images, annotations = Path(images), Path(annotations)
    if not annotations.is_file():
        raise FileNotFoundError(f"{annotations}: no such annotations file")
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_cls(str(annotations))
    entries = sorted(gt.dataset.get("images", []), key=lambda e: e["id"])
    if not entries:
        raise ValueError(f"{annotations}: the annotations list no images")
    missing = [e["file_name"] for e in entries if not (images / e["file_name"]).is_file()]
    if missing:
        more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
        listed = ", ".join(missing[:10])
        raise FileNotFoundError(f"{len(missing)} annotated image(s) missing in {images}: {listed}{more}")
    cats = category_map(model.names, gt.dataset.get("categories", []))

    from tqdm import tqdm

    results: list[dict] = []
    stages: dict[str, list[float]] = {"preprocess": [], "inference": [], "postprocess": []}
    started = time.perf_counter()
    bar = tqdm(entries, desc="eval", unit="img", disable=not progress)
    for entry in bar:
        result = model(images / entry["file_name"], conf=conf, iou=iou, max_det=max_det)
        keep = np.array([int(c) in cats for c in result.class_ids], dtype=bool)
        if not keep.all():
            result = _subset(result, keep)
        results.extend(result.to_coco(entry["id"], category_map=cats))
        for stage, ms in result.timings.items():
            stages[stage].append(ms)
    elapsed = time.perf_counter() - started

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
            ev.params.imgIds = [e["id"] for e in entries]
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
        print(f"{len(entries)} images in {elapsed:.1f} s ({len(entries) / elapsed:.1f} images/s)")
    return EvalReport(
        model=str(model.spec.path),
        images=len(entries),
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
    )


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
