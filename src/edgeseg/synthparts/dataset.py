"""Writing a COCO-format instance-segmentation dataset of synthetic scenes."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from ..io import write_atomic, write_image
from ..masks import InstanceMasks
from .parts import CLASSES
from .scene import Scene, SceneConfig, render_scene


def scene_seed(seed: int, index: int) -> np.random.SeedSequence:
    """The seed of scene ``index`` of the dataset written with ``seed``: any scene can be regenerated alone."""
    return np.random.SeedSequence([seed, index])


def coco_annotations(scene: Scene, image_id: int, first_id: int) -> list[dict]:
    """COCO annotation dicts (RLE segmentation) of ``scene``'s instances, with ids from ``first_id``."""
    n = len(scene)
    if n == 0:
        return []
    boxes = scene.boxes.astype(np.int64)
    rects = np.stack([boxes[:, 0], boxes[:, 1], boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]], axis=1)
    # Crops of the instance map within each box: no (N, H, W) stack is ever built.
    crops = [scene.instance_map[y1:y2, x1:x2] == i + 1 for i, (x1, y1, x2, y2) in enumerate(boxes.tolist())]
    masks = InstanceMasks.from_crops(rects, crops, scene.instance_map.shape)
    rles = masks.rle()
    areas = [int(c.sum()) for c in crops]
    return [
        {
            "id": first_id + i,
            "image_id": image_id,
            "category_id": int(scene.classes[i]) + 1,
            "segmentation": rles[i],
            "area": float(areas[i]),
            "bbox": [float(v) for v in rects[i]],
            "iscrowd": 0,
        }
        for i in range(n)
    ]


def write_dataset(
    out_dir: str | Path,
    count: int,
    seed: int = 0,
    config: SceneConfig | None = None,
    progress: bool = True,
) -> Path:
    """Render ``count`` scenes to ``out_dir/images/000000.png ...`` and write ``out_dir/annotations.json``.

    The JSON is COCO instances: image ids equal the number in the file name (``file_name`` is relative to
    ``images/``), annotations carry RLE segmentation, area, ``bbox`` (x, y, w, h) and ``iscrowd`` 0, and
    categories have ``id = class index + 1``, ``name = CLASSES[i]``, supercategory ``"part"``. Scene ``i`` is
    ``render_scene(SeedSequence([seed, i]), config)``, so datasets written with different seeds share no scene.

    Args:
        out_dir: output folder (created if needed; existing files of the same names are overwritten).
        count: number of scenes, at least 1.
        seed: dataset seed, a non-negative integer.
        config: scene settings; default ``SceneConfig()``.
        progress: show a tqdm progress bar.

    Returns:
        The path of ``annotations.json``.

    Raises:
        ValueError: ``count`` below 1, a negative seed, or an invalid config.
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise ValueError(f"count={count!r} must be an integer >= 1")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} must be a non-negative integer")
    config = SceneConfig() if config is None else config
    config.validate()
    out = Path(out_dir)
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)

    from tqdm import tqdm

    images: list[dict] = []
    annotations: list[dict] = []
    for i in tqdm(range(int(count)), desc="synthparts", unit="img", disable=not progress):
        scene = render_scene(scene_seed(int(seed), i), config)
        name = f"{i:06d}.png"
        write_image(images_dir / name, scene.image)
        images.append({"id": i, "file_name": name, "width": config.width, "height": config.height})
        annotations.extend(coco_annotations(scene, i, len(annotations) + 1))

    categories = [{"id": k + 1, "name": name, "supercategory": "part"} for k, name in enumerate(CLASSES)]
    info = {
        "description": "edgeseg.synthparts synthetic conveyor-belt parts",
        "seed": int(seed),
        "config": dataclasses.asdict(config),
    }
    path = out / "annotations.json"
    coco = {"info": info, "images": images, "annotations": annotations, "categories": categories}
    write_atomic(path, json.dumps(coco, separators=(",", ":")).encode())
    return path
