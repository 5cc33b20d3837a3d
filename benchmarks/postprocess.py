"""Postprocessing time against inference time, on the same raw outputs, in one run.

For every image: letterbox, run the model (timed), keep its raw outputs. Then, per setting, time
edgeseg's postprocessing of those outputs (decode with threshold, NMS, masks at original
resolution in box-cropped form; the same call the SDK makes) and compare its median with the
inference median. Postprocessing is timed twice: repeated on the same outputs (warm caches) and
once right after the inference that produced them (as in a perception loop).

    python benchmarks/postprocess.py                         # coco-val-mini, yolov8n-seg.onnx
    python benchmarks/postprocess.py --json benchmarks/results/postprocess.json

The comparison with the peers over image sizes and detection counts is ``sweep.py``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path

import numpy as np

import edgeseg
from edgeseg.heads import PostprocessOptions
from edgeseg.io import list_images, read_image
from edgeseg.preprocess import make_input

from common import median_ms

PEER_PACKAGES = ("edgeseg", "numpy", "onnxruntime", "ai-edge-litert", "edgefirst-hal", "ultralytics", "torch")

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

# (name, conf, max_det, target: postprocess median as a fraction of the inference median)
SETTINGS = [("conf 0.25", 0.25, 300, 0.02), ("conf 0.001, max_det 300", 0.001, 300, 0.10)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=SHARED / "models" / "yolov8n-seg.onnx")
    parser.add_argument("--images", type=Path, default=SHARED / "data" / "coco-val-mini" / "images")
    parser.add_argument("--limit", type=int, default=0, help="use the first N images (default: all)")
    parser.add_argument("--repeats", type=int, default=7, help="timed repeats per image and stage (median; default 7)")
    parser.add_argument("--threads", type=int, default=None, help="inference threads (default: one per core)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args()

    from tqdm import tqdm

    model = edgeseg.load(args.model, threads=args.threads)
    paths = list_images(args.images)[: args.limit or None]
    in_h, in_w = model.spec.imgsz
    runs = []
    for path in tqdm(paths, desc="inference", unit="img"):
        image = read_image(path)
        tensor, (lb,) = make_input([image], model.spec, (in_h, in_w), batch=1)
        feeds = {model.spec.input.name: tensor}
        model.runtime.run(feeds)  # warm-up
        inference_ms = median_ms(lambda f=feeds: model.runtime.run(f), max(1, args.repeats // 2))
        cold = {}
        for name, conf, max_det, _ in SETTINGS:
            # Right after inference, as in a perception loop: the outputs are not in the caches yet.
            outputs = model.runtime.run(feeds)
            options = PostprocessOptions(conf=conf, max_det=max_det)
            cold[name] = median_ms(lambda o=outputs, b=lb, opt=options: model.head(o, 0, b, opt), 1)
        runs.append((lb, outputs, inference_ms, cold))
    inference = statistics.median(r[2] for r in runs)

    head = model.head
    rows = []
    for name, conf, max_det, target in SETTINGS:
        options = PostprocessOptions(conf=conf, max_det=max_det)
        post, dets = [], []
        for lb, outputs, _, _ in tqdm(runs, desc=f"postprocess {name}", unit="img"):
            dets.append(len(head(outputs, 0, lb, options).scores))
            post.append(median_ms(lambda o=outputs, b=lb, opt=options: head(o, 0, b, opt), args.repeats))
        med = statistics.median(post)
        cold = statistics.median(r[3][name] for r in runs)
        rows.append(
            {
                "setting": name,
                "conf": conf,
                "max_det": max_det,
                "detections_mean": float(np.mean(dets)),
                "postprocess_ms_median": med,
                "postprocess_ms_p90": float(np.percentile(post, 90)),
                "postprocess_ms_mean": float(np.mean(post)),
                "postprocess_ms_median_after_inference": cold,
                "ratio_after_inference": cold / inference,
                "inference_ms_median": inference,
                "ratio": med / inference,
                "target_ratio": target,
                "meets_target": med / inference <= target,
            }
        )

    print(f"\nmodel {args.model.name}, {len(paths)} images, {platform.machine()}, "
          f"inference threads {args.threads or 'default'}, postprocess 1 thread\n")  # fmt: skip
    print(
        "| setting | detections/img | postprocess median ms | p90 ms | right after inference ms "
        "| inference median ms | ratio (after inference) | target |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['setting']} | {r['detections_mean']:.1f} | {r['postprocess_ms_median']:.3f} | "
            f"{r['postprocess_ms_p90']:.3f} | {r['postprocess_ms_median_after_inference']:.3f} | "
            f"{r['inference_ms_median']:.1f} | {r['ratio'] * 100:.2f}% ({r['ratio_after_inference'] * 100:.2f}%) | "
            f"<= {r['target_ratio'] * 100:.0f}% {'ok' if r['meets_target'] else 'MISSED'} |"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta = {
            "model": args.model.name,
            "images": len(paths),
            "machine": platform.machine(),
            "python": sys.version.split()[0],
            "edgeseg": edgeseg.__version__,
            "command": " ".join(sys.argv),
        }
        args.json.write_text(json.dumps({**meta, "results": rows}, indent=2) + "\n")
        print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
