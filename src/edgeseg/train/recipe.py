"""The whole recipe behind the bundled model: data, training, FP32 and INT8 export, evaluation, model card."""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from ..evaluate import EvalReport, evaluate
from ..model import load
from ..spec import Preprocess
from ..synthparts import CLASSES, SceneConfig, write_dataset
from .trainer import CHECKPOINT, HEADS, TrainConfig, load_checkpoint, train

# The validation split's seed is far from any training seed, so the two splits never share a scene.
VAL_SEED_OFFSET = 1_000_003
FP32_NAME, INT8_NAME, CARD_NAME = "partseg.onnx", "partseg-int8.onnx", "partseg.md"
SOLOV2_NAME, SOLOV2_CARD = "partseg-solov2.onnx", "partseg-solov2.md"
# Per head: FP32 model, INT8 model (None: not made) and card. The YOLACT-style model is not quantized: its
# softmax, decoded boxes and tanh coefficients would need their own float-tail rules in edgeseg quantize.
FILES = {
    "yolo": (FP32_NAME, INT8_NAME, CARD_NAME),
    "yolact": ("partseg-yolact.onnx", None, "partseg-yolact.md"),
}


@dataclass
class RecipeReport:
    """Where the models went and how good they are on the held-out split."""

    fp32: str
    int8: str | None
    card: str
    fp32_mask_map: float
    fp32_box_map: float
    int8_mask_map: float | None
    int8_box_map: float | None
    train_minutes: float


def make_partseg(
    out_dir: str | Path,
    config: TrainConfig | None = None,
    val_images: int = 200,
    calib_images: int = 64,
    quantize: bool = True,
    publish: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    command: str | None = None,
) -> RecipeReport:
    """Train PartSeg, export FP32 and INT8 ONNX, evaluate both on a held-out synthetic split, write the card.

    With ``config.head == "yolact"`` the network is the YOLACT-style one (``train/yolact.py``), exported in the
    YOLACT layout as ``partseg-yolact.onnx`` with its card ``partseg-yolact.md`` (no INT8 model).

    Args:
        out_dir: working folder (checkpoint, training log, datasets, models, card).
        config: training settings.
        val_images: size of the held-out validation split.
        calib_images: calibration images for the INT8 model (taken from the training split).
        quantize: also make and evaluate the INT8 model.
        publish: copy the models and the card into this folder (``models/`` of the repository).
        resume: continue from ``out_dir/checkpoint.pt`` when there is one.
        progress: progress bars.
        command: the command line to record in the card (default: this process's).
    """
    config = config or TrainConfig()
    out = Path(out_dir)
    scene_config = SceneConfig()
    started = time.perf_counter()
    model = train(out, config, scene_config, resume=resume, progress=progress)
    train_minutes = (time.perf_counter() - started) / 60
    # A resumed run: the checkpoint knows the time of every session (older checkpoints: this one's only).
    train_minutes = max(train_minutes, load_checkpoint(out / CHECKPOINT).get("train_seconds", 0.0) / 60)

    fp32_name, int8_name, card_name = FILES[config.head]
    fp32 = HEADS[config.head].export(model, out / fp32_name, config.input_hw, CLASSES)
    val_seed = config.seed + VAL_SEED_OFFSET
    val_ann = write_dataset(out / "val", val_images, seed=val_seed, config=scene_config, progress=progress)
    reports = {"fp32": evaluate(load(fp32), out / "val" / "images", val_ann, progress=progress, per_class=True)}
    int8 = None
    if quantize and int8_name is not None:
        from ..quantize import quantize as quantize_model

        write_dataset(out / "calib", calib_images, seed=config.seed, config=scene_config, progress=progress)
        int8 = out / int8_name
        quantize_model(fp32, out / "calib" / "images", int8, calib_size=calib_images, progress=progress)
        reports["int8"] = evaluate(load(int8), out / "val" / "images", val_ann, progress=progress, per_class=True)

    card = out / card_name
    params = sum(p.numel() for p in model.parameters())
    card.write_text(
        model_card(
            config, scene_config, val_images, val_seed, reports, train_minutes, params, command or _command_line()
        )
    )
    (out / "metrics.json").write_text(json.dumps({k: r.to_dict() for k, r in reports.items()}, indent=2))
    if publish is not None:
        dest = Path(publish)
        dest.mkdir(parents=True, exist_ok=True)
        for f in (fp32, int8, card):
            if f is not None:
                shutil.copy2(f, dest / f.name)
    r8 = reports.get("int8")
    return RecipeReport(
        fp32=str(fp32),
        int8=None if int8 is None else str(int8),
        card=str(card),
        fp32_mask_map=reports["fp32"].mask_map50_95,
        fp32_box_map=reports["fp32"].box_map50_95,
        int8_mask_map=None if r8 is None else r8.mask_map50_95,
        int8_box_map=None if r8 is None else r8.box_map50_95,
        train_minutes=train_minutes,
    )


def _command_line() -> str:
    return "edgeseg " + " ".join(sys.argv[1:]) if sys.argv and sys.argv[0].endswith("edgeseg") else " ".join(sys.argv)


_CARD_INTRO = {
    "yolo": lambda params: [
        "# PartSeg: synthetic factory parts (bundled with edgeseg)",
        "",
        f"A compact YOLOv8-seg-style instance segmentation network ({params / 1e6:.1f} M parameters) trained by",
        "edgeseg's own code on scenes from edgeseg's own generator (`edgeseg.synthparts`). Its ONNX",
        "export has the raw YOLOv8-seg head layout, so edgeseg's standard decoder runs it.",
    ],
    "yolact": lambda params: [
        "# PartSeg-YOLACT: synthetic factory parts, YOLACT layout",
        "",
        f"A compact YOLACT-style instance segmentation network ({params / 1e6:.1f} M parameters: backbone,",
        "FPN-lite P3-P5, 32 prototypes, softmax classes with background, SSD-encoded boxes on priors, tanh",
        "coefficients; YOLACT's losses) trained by `edgeseg train --head yolact` on scenes from edgeseg's own",
        "generator (`edgeseg.synthparts`). Its ONNX export has the YOLACT layout with priors and box decoding in",
        "the graph (`boxes`, `conf`, `mask`, `proto` NHWC, as the OpenVINO model zoo's YOLACT), so edgeseg's",
        "yolact decoder (Fast NMS, prototype masks cropped to the box) runs it.",
    ],
}
_INPUT = {"yolo": "letterboxed", "yolact": "stretched, RGB, ImageNet mean / std"}


def model_card(
    config: TrainConfig,
    scene_config: SceneConfig,
    val_images: int,
    val_seed: int,
    reports: dict[str, EvalReport],
    train_minutes: float,
    params: int,
    command: str,
) -> str:
    """The model card (markdown): classes with per-class accuracy, held-out accuracy, how it was made."""
    rows = [
        f"| {name.upper()} | {r.mask_map50_95:.4f} | {r.mask_map50:.4f} | {r.box_map50_95:.4f} | {r.box_map50:.4f} "
        f"| {r.inference_ms:.2f} |"
        for name, r in reports.items()
    ]
    columns = list(reports)
    class_rows = [
        f"| {i} | {name} | "
        + " | ".join(f"{reports[c].per_class.get(name, {}).get('mask', float('nan')):.3f}" for c in columns)
        + " |"
        for i, name in enumerate(CLASSES)
    ]
    h, w = config.input_hw
    return "\n".join(
        [
            *_CARD_INTRO[config.head](params),
            "Licence: Apache-2.0, like the rest of edgeseg (no third-party weights or data went into it).",
            "",
            "## Classes",
            "",
            "| index | name | " + " | ".join(f"{c.upper()} mask mAP50-95" for c in columns) + " |",
            "|---|---|" + "---|" * len(columns),
            *class_rows,
            "",
            "## Accuracy on the held-out synthetic split",
            "",
            f"{val_images} scenes, generator seed {val_seed} (training used seed {config.seed}), conf 0.001,",
            "IoU 0.7, max_det 300, COCO mAP (edgeseg eval).",
            "",
            "| model | mask mAP50-95 | mask mAP50 | box mAP50-95 | box mAP50 | inference ms |",
            "|---|---|---|---|---|---|",
            *rows,
            "",
            "## How it was made",
            "",
            f"- Command: `{command}`",
            f"- Input {h}x{w} ({_INPUT[config.head]}), {config.train_images} training scenes (seed {config.seed}), "
            f"{config.epochs} epochs, batch {config.batch}, AdamW lr {config.lr}, EMA {config.ema_decay}.",
            f"- Training time (scene rendering included): {train_minutes:.1f} minutes on the CPU of the machine that "
            "ran the command.",
            f"- Scene settings: `{asdict(scene_config)}`",
            *(
                [
                    "- INT8: `edgeseg quantize` (static QDQ, uint8 activations, int8 weights; the head's float tail",
                    "  kept in float), calibrated on training scenes (the first 64 of seed " + f"{config.seed}).",
                ]
                if "int8" in reports
                else []
            ),
            "",
            "## Limits",
            "",
            "Trained on synthetic top-down belt scenes only: expect it to find washers, nuts, bolts and",
            "brackets on similar backgrounds, not arbitrary objects. It is a working default and a demo;",
            "fine-tune or train your own model for a real line.",
            "",
        ]
    )


def make_solov2(
    out_dir: str | Path,
    config: TrainConfig | None = None,
    val_images: int = 200,
    publish: str | Path | None = None,
    resume: bool = True,
    progress: bool = True,
    command: str | None = None,
) -> RecipeReport:
    """Train the SOLOv2-style model (``train.solov2``), export it in the SOLOv2 raw-head layout, evaluate it
    with edgeseg's SOLOv2 decoder on the same held-out split as PartSeg, and write its model card."""
    from .config import SOLOV2_DEFAULTS
    from .solov2 import SOLOV2_PREPROCESS, export_solov2, train_solov2

    config = config or SOLOV2_DEFAULTS
    out = Path(out_dir)
    scene_config = SceneConfig()
    model = train_solov2(out, config, scene_config, resume=resume, progress=progress)
    train_minutes = logged_train_minutes(out / "train_log.jsonl")
    onnx_path = export_solov2(model, out / SOLOV2_NAME, config.input_hw, CLASSES)
    val_seed = config.seed + VAL_SEED_OFFSET
    val_ann = write_dataset(out / "val", val_images, seed=val_seed, config=scene_config, progress=progress)
    report = evaluate(load(onnx_path), out / "val" / "images", val_ann, progress=progress, per_class=True)
    card = out / SOLOV2_CARD
    params = sum(p.numel() for p in model.parameters())
    card.write_text(
        solov2_card(
            config, scene_config, val_images, val_seed, report, train_minutes, params, command or _command_line(),
            SOLOV2_PREPROCESS,
        )
    )  # fmt: skip
    (out / "metrics.json").write_text(json.dumps({"fp32": report.to_dict()}, indent=2))
    if publish is not None:
        dest = Path(publish)
        dest.mkdir(parents=True, exist_ok=True)
        for f in (onnx_path, card):
            shutil.copy2(f, dest / f.name)
    return RecipeReport(
        fp32=str(onnx_path),
        int8=None,
        card=str(card),
        fp32_mask_map=report.mask_map50_95,
        fp32_box_map=report.box_map50_95,
        int8_mask_map=None,
        int8_box_map=None,
        train_minutes=train_minutes,
    )


def logged_train_minutes(log: Path) -> float:
    """Minutes the training loop ran, over every session of a resumed run (each restarts ``elapsed_s``)."""
    total, last = 0.0, 0.0
    for line in log.read_text().splitlines() if log.is_file() else []:
        elapsed = float(json.loads(line)["elapsed_s"])
        if elapsed < last:
            total += last
        last = elapsed
    return (total + last) / 60


def solov2_card(
    config: TrainConfig,
    scene_config: SceneConfig,
    val_images: int,
    val_seed: int,
    report: EvalReport,
    train_minutes: float,
    params: int,
    command: str,
    pre: Preprocess,
) -> str:
    """The SOLOv2 model's card (markdown), in the shape of PartSeg's."""
    from .solov2 import SoloConfig

    solo = SoloConfig(num_classes=len(CLASSES))
    r = report
    class_rows = [
        f"| {i} | {name} | {r.per_class.get(name, {}).get('mask', float('nan')):.3f} |"
        for i, name in enumerate(CLASSES)
    ]
    h, w = config.input_hw
    return "\n".join(
        [
            "# PartSeg-SOLOv2: synthetic factory parts, SOLOv2 raw-head layout",
            "",
            f"A small SOLOv2-style network ({params / 1e6:.1f} M parameters) trained by `edgeseg train --head solov2`",
            "on scenes from edgeseg's own generator (`edgeseg.synthparts`), the same data and held-out split as",
            "PartSeg. It exists to prove edgeseg's SOLOv2 decoder end to end (point NMS, dynamic convolution,",
            "Matrix NMS): its ONNX export is the SOLOv2 raw-head layout, decoded by the core with no configuration.",
            "Licence: Apache-2.0, like the rest of edgeseg (no third-party weights or data went into it).",
            "",
            "## Layout",
            "",
            f"- input `input [1, 3, {h}, {w}]`: keep-ratio resize padded bottom-right, RGB, (pixel - mean) / std with",
            f"  MMDetection's mean {list(pre.mean)} and std {list(pre.std)}, padding 0 after normalization",
            f"- `cate_preds [1, G, {len(CLASSES)}]` sigmoid scores, G = sum of S*S over grids {list(solo.grids)}",
            f"  (row-major per level, levels in order); `kernel_preds [1, G, {solo.kernel_channels}]` dynamic 1x1",
            f"  kernels; `mask_feats [1, {solo.kernel_channels}, {h // 4}, {w // 4}]`",
            f"- metadata `grids` {list(solo.grids)}, `strides` {list(solo.strides)}, `names`, `imgsz`",
            "",
            "## Classes",
            "",
            "| index | name | mask mAP50-95 |",
            "|---|---|---|",
            *class_rows,
            "",
            "## Accuracy on the held-out synthetic split",
            "",
            f"{val_images} scenes, generator seed {val_seed} (training used seed {config.seed}), conf {r.conf},",
            f"IoU {r.iou}, max_det {r.max_det}, COCO mAP (edgeseg eval, edgeseg's SOLOv2 decoder).",
            "",
            "| mask mAP50-95 | mask mAP50 | box mAP50-95 | box mAP50 | inference ms |",
            "|---|---|---|---|---|",
            f"| {r.mask_map50_95:.4f} | {r.mask_map50:.4f} | {r.box_map50_95:.4f} | {r.box_map50:.4f} "
            f"| {r.inference_ms:.2f} |",
            "",
            "## How it was made",
            "",
            f"- Command: `{command}`",
            f"- Input {h}x{w}, {config.train_images} training scenes (seed {config.seed}), {config.epochs} epochs, "
            f"batch {config.batch}, AdamW lr {config.lr}, EMA {config.ema_decay}.",
            "- Backbone and neck taken from the bundled PartSeg model (trained on the same training split only) and",
            "  frozen, their outputs cached once per scene. The mask features start from PartSeg's prototype",
            "  convolutions and train on, refined by 3x3 convolutions over [prototypes, stride-4 stem features, x, y]",
            "  (SOLOv2's CoordConv; trained from scratch, starting as the identity), as do the category and kernel",
            "  branches (from scratch). No flips.",
            f"- SOLO targets: centre region sigma {solo.sigma}, scale ranges {[list(r_) for r_ in solo.scale_ranges]}"
            " (sqrt of box area,",
            f"  input pixels); focal loss (alpha {solo.focal_alpha}, gamma {solo.focal_gamma}) on categories, Dice"
            f" (weight {solo.mask_weight}) on masks.",
            f"- Training loop time: {train_minutes:.1f} minutes with {config.threads or 'all'} PyTorch thread(s) on the"
            " CPU that ran it",
            "  (scene rendering and the one-off backbone feature cache not included).",
            f"- Scene settings: `{asdict(scene_config)}`",
            "",
            "## Limits",
            "",
            "Trained on synthetic top-down belt scenes only; a decoder test model, not a better PartSeg.",
            "",
        ]
    )
