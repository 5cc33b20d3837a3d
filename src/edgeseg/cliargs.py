"""Argument blocks and helpers shared by the ``edgeseg`` subcommands (one home for each option)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from .model import Model, load
from .spec import NMS_KINDS
from .zoo import DEFAULT_MODEL

MODEL_HELP = (
    "model file (.onnx: an Ultralytics YOLOv8/YOLO11-seg export; .tflite), or a model name from "
    "`edgeseg models` or an http(s) URL, resolved through the download cache"
)


def add_model_options(p: argparse.ArgumentParser, positional: bool = True, required: bool = True) -> None:
    if positional:
        p.add_argument("model", nargs=None if required else "?", help=MODEL_HELP)
    else:
        p.add_argument("-m", "--model", default=None, help=f"{MODEL_HELP}. Default: the bundled {DEFAULT_MODEL} model")
    p.add_argument(
        "--providers",
        default=None,
        help="ONNX Runtime execution providers in priority order, comma-separated "
        "(cpu, cuda, tensorrt, openvino, xnnpack, acl); unavailable ones are skipped. Default: cpu",
    )
    p.add_argument("--threads", type=int, default=None, help="inference threads (default: one per core)")
    p.add_argument("--imgsz", type=int, default=None, help="input size for dynamic-size models (default: the model's)")
    p.add_argument(
        "--square",
        action="store_true",
        help="dynamic-size models: letterbox to the full imgsz square instead of the smallest stride multiple",
    )
    p.add_argument(
        "--head",
        default=None,
        help="model family (yolo, yolact, dets, rtmdet, solov2) for a model whose outputs fit several; "
        "default: read from the model",
    )


def add_scene_size(p: argparse.ArgumentParser) -> None:
    p.add_argument("--width", type=int, default=512, help="scene width in pixels (default 512)")
    p.add_argument("--height", type=int, default=384, help="scene height in pixels (default 384)")


def load_model(args: argparse.Namespace) -> Model:
    providers = args.providers.split(",") if args.providers else None
    return load(
        args.model,
        providers=providers,
        threads=args.threads,
        imgsz=args.imgsz,
        rect=not args.square,
        head=getattr(args, "head", None),
    )


def parse_classes(text: str | None) -> list | None:
    if not text:
        return None
    return [int(c) if c.strip().isdigit() else c.strip() for c in text.split(",")]


def shown(path: str | Path) -> str:
    """A path for printing: undecodable bytes of the file name shown as escapes, never a crash."""
    return os.fsencode(str(path)).decode("utf-8", "backslashreplace")


def refuse_overwriting_sources(sources: Sequence[Path], outputs: Sequence[Path]) -> None:
    """Refuse, before any work, to write an output over one of the input images."""
    source_ids = {(st.st_dev, st.st_ino) for st in (p.stat() for p in sources)}
    for out in outputs:
        try:
            st = out.stat()
        except OSError:
            continue  # nothing there yet: nothing to overwrite
        if (st.st_dev, st.st_ino) in source_ids:
            raise ValueError(
                f"{shown(out)} is one of the input images: --out must not be the source folder "
                "(annotated images keep the source file names); choose another --out folder"
            )


def make_output_dir(path: Path) -> Path:
    """Create the output folder ``path``, or raise a ValueError saying why it cannot be one."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"--out {shown(path)} is an existing file, not a folder; give a folder name")
    path.mkdir(parents=True, exist_ok=True)
    return path


def add_nms_option(p: argparse.ArgumentParser) -> None:
    """``--nms``: how overlapping candidates are suppressed (predict, eval, ...)."""
    p.add_argument(
        "--nms",
        choices=NMS_KINDS,
        default=None,
        help="suppression: box (greedy by box IoU), fast (YOLACT's Fast NMS), matrix (SOLOv2's Matrix NMS: "
        "scores decay with overlap) or mask (greedy by the IoU of the masks: occluded objects keep their "
        "own instance); default: the family's (box for YOLO)",
    )


def add_detection_options(p: argparse.ArgumentParser, conf: float | None = None) -> None:
    family = "the model family's reference (0.25 for YOLO)"
    p.add_argument(
        "--conf", type=float, default=conf, help=f"minimum class score (default {family if conf is None else conf})"
    )
    p.add_argument("--iou", type=float, default=None, help="NMS IoU threshold (default: the family's, 0.7 for YOLO)")
    p.add_argument(
        "--max-det", type=int, default=None, help="most instances per image (default: the family's, 300 for YOLO)"
    )
    add_nms_option(p)
    p.add_argument("--classes", default=None, help="keep only these classes: comma-separated names or indices")
    p.add_argument("--agnostic", action="store_true", help="class-agnostic NMS")


def detection_kwargs(args: argparse.Namespace) -> dict:
    """The model-call settings of ``add_detection_options``."""
    return {
        "conf": args.conf,
        "iou": args.iou,
        "max_det": args.max_det,
        "nms": args.nms,
        "classes": parse_classes(args.classes),
        "agnostic": args.agnostic,
    }
