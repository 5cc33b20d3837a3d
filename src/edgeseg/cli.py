"""The ``edgeseg`` command line: ``edgeseg predict`` and ``edgeseg info``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from .errors import ImageError, ModelError
from .io import IMAGE_SUFFIXES, list_images, read_image
from .model import Model, load


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", type=Path, help="model file (.onnx: an Ultralytics YOLOv8/YOLO11-seg export)")
    p.add_argument(
        "--providers",
        default=None,
        help="ONNX Runtime execution providers in priority order, comma-separated "
        "(cpu, cuda, tensorrt, openvino, xnnpack, acl); unavailable ones are skipped. Default: cpu",
    )
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: one per core)")
    p.add_argument("--imgsz", type=int, default=None, help="input size for dynamic-size models (default: the model's)")


def _load(args: argparse.Namespace) -> Model:
    providers = args.providers.split(",") if args.providers else None
    return load(args.model, providers=providers, threads=args.threads, imgsz=args.imgsz)


def _parse_classes(text: str | None) -> list | None:
    if not text:
        return None
    return [int(c) if c.strip().isdigit() else c.strip() for c in text.split(",")]


def _image_id(path: Path, index: int) -> int:
    return int(path.stem) if path.stem.isdigit() else index


def cmd_predict(args: argparse.Namespace) -> int:
    model = _load(args)
    source: Path = args.source
    if source.is_dir():
        paths = list_images(source)
        if not paths:
            raise ImageError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    elif source.is_file():
        paths = [source]
    else:
        raise ImageError(f"{source}: no such image file or folder")
    out_dir: Path = args.out
    out_dir.mkdir(parents=True, exist_ok=True)
    classes = _parse_classes(args.classes)

    from tqdm import tqdm

    coco: list[dict] = []
    counts: Counter = Counter()
    stages = {"preprocess": [], "inference": [], "postprocess": []}
    progress = tqdm(paths, unit="img", desc="predict", disable=len(paths) == 1 or args.quiet)
    for index, path in enumerate(progress):
        image = read_image(path)
        result = model(
            image, conf=args.conf, iou=args.iou, max_det=args.max_det, classes=classes, agnostic=args.agnostic
        )
        counts.update(result.labels)
        for stage, ms in result.timings.items():
            stages[stage].append(ms)
        if not args.no_images:
            cv2.imwrite(str(out_dir / path.name), result.draw(image))
        if args.save_json:
            coco.extend(result.to_coco(_image_id(path, index)))
        if len(paths) == 1 and not args.quiet:
            print(f"{path.name}: {len(result)} instances {dict(result.counts())}")
    if args.save_json:
        (out_dir / "predictions.json").write_text(json.dumps(coco))
    if not args.quiet:
        total = sum(counts.values())
        print(f"{len(paths)} image(s), {total} instances: {dict(counts.most_common())}")
        print("mean ms per image: " + ", ".join(f"{k} {np.mean(v):.1f}" for k, v in stages.items()))
        saved = [] if args.no_images else ["annotated images"]
        saved += ["predictions.json (COCO results)"] if args.save_json else []
        if saved:
            print(f"saved {' and '.join(saved)} to {out_dir}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    model = _load(args)
    print(model.spec.describe())
    print(f"providers:   {', '.join(model.runtime.providers)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``edgeseg`` command."""
    parser = argparse.ArgumentParser(
        prog="edgeseg",
        description="Instance segmentation on edge devices: YOLO-seg models on ONNX Runtime with a fast C++ core.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "predict",
        help="segment an image or a folder of images",
        description="Segment an image or every image of a folder; write annotated images and optionally "
        "a COCO-style predictions.json.",
    )
    _add_model_options(p)
    p.add_argument("source", type=Path, help="an image file or a folder of images")
    p.add_argument("--conf", type=float, default=0.25, help="minimum class score (default 0.25)")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--max-det", type=int, default=300, help="most instances per image (default 300)")
    p.add_argument("--classes", default=None, help="keep only these classes: comma-separated names or indices")
    p.add_argument("--agnostic", action="store_true", help="class-agnostic NMS")
    p.add_argument("--out", type=Path, default=Path("edgeseg-out"), help="output folder (default ./edgeseg-out)")
    p.add_argument(
        "--save-json",
        action="store_true",
        help="write predictions.json: COCO results with RLE masks (image_id = file name when numeric, else index)",
    )
    p.add_argument("--no-images", action="store_true", help="do not write annotated images")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("info", help="print what edgeseg reads from a model", description="Print the model's ModelSpec.")
    _add_model_options(p)
    p.set_defaults(func=cmd_info)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edgeseg`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return args.func(args)
    except (ModelError, ImageError, ValueError) as exc:
        print(f"edgeseg: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
