"""Training settings, importable without PyTorch (so ``edgeseg train --help`` works anywhere)."""

from __future__ import annotations

from dataclasses import dataclass

# The trainable heads (``edgeseg train --head``): "yolo" is the bundled PartSeg (YOLOv8-seg layout),
# "yolact" a YOLACT-style network exported in the YOLACT layout with decoded boxes, "solov2" a SOLOv2-style
# network (mask features and heads trained on PartSeg's frozen backbone, recipe.make_solov2) exported in the
# SOLOv2 flat layout.
TRAIN_HEADS = ("yolo", "yolact", "solov2")


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; saved in every checkpoint so a resumed run is the same run."""

    input_hw: tuple[int, int] = (256, 320)
    train_images: int = 5000
    epochs: int = 8
    batch: int = 16
    lr: float = 2e-3
    weight_decay: float = 5e-4
    warmup_steps: int = 200
    ema_decay: float = 0.999
    seed: int = 0
    threads: int = 0  # 0: all cores
    checkpoint_every: int = 100  # steps
    head: str = "yolo"

    def validate(self) -> None:
        """Raise ValueError naming the first setting that cannot work."""
        if self.head not in TRAIN_HEADS:
            raise ValueError(f"head={self.head!r}: choose one of {', '.join(TRAIN_HEADS)}")
        h, w = self.input_hw
        if h % 32 or w % 32 or h < 64 or w < 64:
            raise ValueError(f"input size {h}x{w}: height and width must be multiples of 32, at least 64")
        for name in ("train_images", "epochs", "batch"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}={getattr(self, name)}: must be at least 1")
        if not 0 < self.lr < 1:
            raise ValueError(f"lr={self.lr}: use a learning rate in (0, 1)")
        if not 0 <= self.ema_decay < 1:
            raise ValueError(f"ema_decay={self.ema_decay}: must be in [0, 1)")


#: ``edgeseg train --head solov2``'s defaults: the mask features and heads train (the backbone is PartSeg's, frozen
#: and cached).
SOLOV2_DEFAULTS = TrainConfig(train_images=1600, epochs=6, batch=8, lr=2e-3)
