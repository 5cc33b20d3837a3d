"""The training loop: AdamW with warmup and cosine decay, an EMA of the weights, resumable checkpoints."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from ..spec import ULTRALYTICS_PREPROCESS, Preprocess
from ..synthparts import CLASSES, SceneConfig
from . import yolact
from .config import TrainConfig
from .data import Sample, build_split, collate, load_samples, save_samples
from .export import export_onnx
from .loss import segmentation_loss
from .net import NetConfig, PartSeg

CHECKPOINT = "checkpoint.pt"
SAMPLES = "train_samples.npz"


@dataclass(frozen=True)
class TrainHead:
    """What differs between the trainable heads (``TrainConfig.head``); the loop, EMA, schedule, data and
    checkpoints are shared.

    Attributes:
        build: ``(num_classes, input_hw) -> network``.
        loss: ``(network outputs, batch) -> (total, parts)``; ``batch`` is ``data.collate``'s dict.
        export: ``(network, path, input_hw, names) -> path``: the FP32 ONNX file in the head's layout.
        preprocess: how training scenes become inputs (the family's resize), as the SDK will do at inference.
        inputs: training images (RGB 0..1) into the network's input (the family's normalization).
    """

    build: Callable[[int, tuple[int, int]], torch.nn.Module]
    loss: Callable[[Any, dict[str, torch.Tensor]], tuple[torch.Tensor, dict[str, float]]]
    export: Callable[[torch.nn.Module, Path, tuple[int, int], tuple[str, ...]], Path]
    preprocess: Preprocess = ULTRALYTICS_PREPROCESS
    inputs: Callable[[torch.Tensor], torch.Tensor] = lambda images: images


def _yolo_loss(outputs: Any, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
    levels, protos = outputs
    return segmentation_loss(levels, protos, batch["boxes"], batch["classes"], batch["valid"], batch["masks"])


HEADS: dict[str, TrainHead] = {
    "yolo": TrainHead(
        build=lambda nc, hw: PartSeg(NetConfig(num_classes=nc)),
        loss=_yolo_loss,
        export=export_onnx,
    ),
    "yolact": TrainHead(
        build=yolact.build,
        loss=yolact.loss,
        export=yolact.export_yolact,
        preprocess=yolact.PREPROCESS,
        inputs=yolact.normalize,
    ),
}


class WeightAverage:
    """Exponential moving average of the weights, ramped in so early (poor) weights fade fast."""

    def __init__(self, model: torch.nn.Module, decay: float) -> None:
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = 0

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        self.updates += 1
        d = self.decay * (1 - math.exp(-self.updates / 500))
        for avg, cur in zip(self.model.state_dict().values(), model.state_dict().values()):
            if avg.dtype.is_floating_point:
                avg.mul_(d).add_(cur.detach(), alpha=1 - d)
            else:
                avg.copy_(cur)


def _optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    # Weight decay on convolution weights only: decaying norms and biases just fights the data.
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=config.lr, betas=(0.9, 0.999))


def _lr_at(step: int, total: int, config: TrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, total - config.warmup_steps)
    return config.lr * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def _save(path: Path, state: dict) -> None:
    # Write then rename: an interrupted save never replaces a good checkpoint with half a file.
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    """Read a checkpoint, with an error that says what to do when it is not one."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises several kinds for a truncated or foreign file
        raise ValueError(f"{path}: not a readable training checkpoint ({exc}); delete it to start over") from exc
    if not isinstance(state, dict) or "model" not in state or "train_config" not in state:
        raise ValueError(f"{path}: not an edgeseg training checkpoint; delete it to start over")
    return state


def train(
    out_dir: str | Path,
    config: TrainConfig | None = None,
    scene_config: SceneConfig | None = None,
    resume: bool = True,
    progress: bool = True,
    samples: list[Sample] | None = None,
    on_step: Callable[[int, dict[str, float]], None] | None = None,
) -> torch.nn.Module:
    """Train the network of ``config.head`` (PartSeg by default) on synthetic scenes; returns the
    weight-averaged model, in eval mode.

    A checkpoint is written to ``out_dir/checkpoint.pt`` every ``checkpoint_every`` steps, at the end
    and on Ctrl-C; with ``resume`` a run continues from it (same data, same order, same schedule).
    ``samples`` replaces the rendered training split (tests, custom data); ``on_step(step, losses)``
    is called after every optimizer step.
    """
    session_start = time.perf_counter()
    config = config or TrainConfig()
    config.validate()
    scene_config = scene_config or SceneConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT
    state = load_checkpoint(ckpt_path) if resume and ckpt_path.exists() else None
    # Checkpoints written before heads existed trained the YOLO head.
    if state is not None and {"head": "yolo", **state["train_config"]} != dataclasses.asdict(config):
        raise ValueError(
            f"{ckpt_path} was written with different settings {state['train_config']}; "
            "resume with those settings, or pass a new output folder (or --no-resume) to start over"
        )
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)

    head = HEADS[config.head]
    model = head.build(len(CLASSES), config.input_hw)
    ema = WeightAverage(model, config.ema_decay)
    optimizer = _optimizer(model, config)
    step = 0
    prior_seconds = 0.0 if state is None else float(state.get("train_seconds", 0.0))
    if state is not None:
        model.load_state_dict(state["model"])
        ema.model.load_state_dict(state["ema"])
        ema.updates = state["ema_updates"]
        optimizer.load_state_dict(state["optimizer"])
        step = state["step"]
    if samples is None:
        key = repr((config.train_images, config.seed, config.input_hw, scene_config, head.preprocess))
        samples = load_samples(out / SAMPLES, key)
        if samples is None:
            workers = min(2, os.cpu_count() or 1)
            samples = build_split(
                config.train_images, config.seed, config.input_hw, scene_config, workers, progress, head.preprocess
            )
            if config.head != "yolo":  # (the bundled model's recipe keeps its folder as it always was)
                save_samples(out / SAMPLES, samples, key)
    steps_per_epoch = max(1, len(samples) // config.batch)
    total = steps_per_epoch * config.epochs

    def checkpoint() -> None:
        _save(
            ckpt_path,
            {
                "model": model.state_dict(),
                "ema": ema.model.state_dict(),
                "ema_updates": ema.updates,
                "optimizer": optimizer.state_dict(),
                "step": step,
                # Seconds spent in train() over every session (rendering included): a resumed run's card
                # reports the whole training time, not the last session's.
                "train_seconds": prior_seconds + time.perf_counter() - session_start,
                "train_config": dataclasses.asdict(config),
                "classes": list(CLASSES),
            },
        )

    model.train()
    bar = tqdm(total=total, initial=step, desc="training", unit="step", disable=not progress)
    log = (out / "train_log.jsonl").open("a")
    started = time.perf_counter()
    try:
        while step < total:
            epoch, pos = divmod(step, steps_per_epoch)
            # The epoch's order and flips depend only on (seed, epoch): a resumed run sees the same batches.
            order = np.random.default_rng([config.seed, epoch]).permutation(len(samples))
            flips = np.random.default_rng([config.seed, epoch, pos])
            batch = collate([samples[i] for i in order[pos * config.batch : (pos + 1) * config.batch]], flips)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, total, config)
            loss, parts = head.loss(model(head.inputs(batch["images"])), batch)
            if not torch.isfinite(loss):
                raise FloatingPointError(
                    f"loss became {float(loss)} at step {step}; lower --lr, or resume from the last checkpoint"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
            optimizer.step()
            ema.update(model)
            step += 1
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in parts.items()}, refresh=False)
            if step % 20 == 0 or step == total:
                entry = {"step": step, "epoch": epoch, "lr": optimizer.param_groups[0]["lr"], **parts}
                entry["elapsed_s"] = round(time.perf_counter() - started, 1)
                log.write(json.dumps(entry) + "\n")
                log.flush()
            if step % config.checkpoint_every == 0 or step == total:
                checkpoint()
            if on_step is not None:
                on_step(step, parts)
    except KeyboardInterrupt:
        checkpoint()
        bar.close()
        raise KeyboardInterrupt(f"interrupted at step {step}; run the same command again to resume") from None
    finally:
        bar.close()
        log.close()
    return ema.model.eval()
