"""Write the starting seed corpora under fuzz/corpus/ (run once; the committed corpora came from here).

* read_image: a few COCO val images shrunk to 64x48 (and 48x64) as JPEG (baseline and progressive),
  PNG (colour, grey, with alpha), BMP and WebP, plus a 1x1 PNG: each well under 10 KB;
* load: the tiny models of ``tinymodels.SEEDS`` (under 1 KB each) and a few structured ``ESFZ`` inputs;
* the core harnesses: a few fixed pseudo-random byte strings of different lengths (every input is
  valid for a FuzzedDataProvider harness).

After a longer local fuzzing session the corpora were minimized into the same folders with
``python fuzz/fuzz_X.py -merge=1 fuzz/corpus/X WORK_DIR`` (see fuzz/README.md).

    python fuzz/make_seeds.py [--images ../shared/data/coco-val-mini/images]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import tinymodels  # noqa: E402

CORPUS = HERE / "corpus"
CORE_HARNESSES = ("decode_yolo", "decode_e2e", "nms", "letterbox", "masks", "rle", "track", "families")
COCO_IMAGES = ("000000000139.jpg", "000000000802.jpg", "000000011813.jpg")


def write(folder: Path, data: bytes, name: str | None = None) -> Path:
    """Write one seed (named by its hash unless ``name``)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or hashlib.sha1(data).hexdigest())
    path.write_bytes(data)
    return path


def image_seeds(images: Path) -> None:
    """Small real images in every format OpenCV reads that users are likely to have."""
    out = CORPUS / "read_image"
    for i, name in enumerate(COCO_IMAGES):
        image = cv2.imread(str(images / name))
        if image is None:
            raise SystemExit(f"{images / name}: not found (pass --images)")
        small = cv2.resize(image, (64, 48) if i != 1 else (48, 64), interpolation=cv2.INTER_AREA)
        stem = Path(name).stem[-6:]
        write(out, cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 80])[1].tobytes(), f"{stem}.jpg")
        if i == 0:
            progressive = [cv2.IMWRITE_JPEG_QUALITY, 70, cv2.IMWRITE_JPEG_PROGRESSIVE, 1]
            write(out, cv2.imencode(".jpg", small, progressive)[1].tobytes(), f"{stem}-progressive.jpg")
            write(out, cv2.imencode(".png", small)[1].tobytes(), f"{stem}.png")
            grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
            write(out, cv2.imencode(".png", grey)[1].tobytes(), f"{stem}-grey.png")
            write(out, cv2.imencode(".bmp", small[:24, :32])[1].tobytes(), f"{stem}.bmp")
            write(out, cv2.imencode(".webp", small, [cv2.IMWRITE_WEBP_QUALITY, 60])[1].tobytes(), f"{stem}.webp")
        if i == 1:
            alpha = np.dstack([small, np.full(small.shape[:2], 200, np.uint8)])
            write(out, cv2.imencode(".png", alpha)[1].tobytes(), f"{stem}-alpha.png")
    write(out, cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))[1].tobytes(), "1x1.png")


def model_seeds() -> None:
    """The tiny models, and structured inputs (``ESFZ`` + data for ``fuzz_load.fuzz_plan``)."""
    out = CORPUS / "load"
    for name, plan in tinymodels.SEEDS.items():
        write(out, tinymodels.build_bytes(plan), name)
    rng = np.random.default_rng(12)
    write(out, b"ESFZ" + bytes(64), "structured-valid")
    for k in range(4):
        write(out, b"ESFZ" + rng.integers(0, 256, 48 + 32 * k, dtype=np.uint8).tobytes(), f"structured-{k}")


def core_seeds() -> None:
    """Pseudo-random inputs for the FuzzedDataProvider harnesses: short ones take the common (valid)
    paths, longer ones reach the rarer branches and raw array contents."""
    for h, harness in enumerate(CORE_HARNESSES):
        rng = np.random.default_rng(100 + h)
        for length in (0, 16, 64, 256, 1024):
            write(CORPUS / harness, rng.integers(0, 256, length, dtype=np.uint8).tobytes())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=Path, default=HERE.parents[1] / "shared" / "data" / "coco-val-mini" / "images")
    args = parser.parse_args()
    image_seeds(args.images)
    model_seeds()
    core_seeds()
    for folder in sorted(CORPUS.iterdir()):
        files = list(folder.iterdir())
        print(f"{folder.name}: {len(files)} files, {sum(f.stat().st_size for f in files)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
