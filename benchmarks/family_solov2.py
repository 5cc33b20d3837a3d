"""SOLOv2 postprocess: edgeseg's core against the numpy transcription of MMDetection's, on the same outputs.

For every coco-val-mini image, each SOLOv2 fixture (tests/fixtures/solov2: per-level and flattened
layouts) runs once; then, on those raw outputs, the median time of edgeseg's postprocess (the call
the SDK makes: point NMS, dynamic convolution, Matrix NMS, masks at source resolution, box-cropped
and bit-packed) and of the reference (tests/reference_solov2.py: the official way, K full-frame
float masks resized twice). Also the bytes the final masks take in each.

    python benchmarks/family_solov2.py
    python benchmarks/family_solov2.py --json benchmarks/results/family_solov2.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
from pathlib import Path

import numpy as np

import edgeseg
from edgeseg.io import list_images, read_image

from common import git_state, median_ms, versions, write_json

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from reference_solov2 import run_reference  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "solov2"
SHARED = ROOT.parent / "shared"


def bench_model(path: Path, images: list[Path], repeats: int, ref_repeats: int) -> dict:
    """Per-image medians of both postprocesses on one fixture's outputs."""
    model = edgeseg.load(path, threads=1)
    options = model.options()
    rows = []
    for p in images:
        tensor, lbs = model.preprocess([read_image(p)])
        outputs = model.infer(tensor)
        ours = model.postprocess(outputs, lbs, options)[0]
        ref = run_reference(model, outputs, lbs[0])
        t_ours = median_ms(lambda o=outputs, b=lbs: model.postprocess(o, b, options), repeats, warmup=True)
        t_ref = median_ms(lambda o=outputs, b=lbs: run_reference(model, o, b[0]), ref_repeats)
        rows.append(
            {
                "image": p.name,
                "instances": len(ours.boxes),
                "reference_instances": len(ref.scores),
                "edgeseg_ms": t_ours,
                "reference_ms": t_ref,
                "edgeseg_mask_bytes": int(ours.masks.data.nbytes),
                "reference_mask_bytes": int(ref.masks.nbytes),
            }
        )
    ours_ms = [r["edgeseg_ms"] for r in rows]
    ref_ms = [r["reference_ms"] for r in rows]
    speedups = [r / o for r, o in zip(ref_ms, ours_ms)]
    return {
        "model": path.name,
        "layout": model.spec.head,
        "input": list(model.spec.imgsz),
        "images": len(rows),
        "mean_instances": float(np.mean([r["instances"] for r in rows])),
        "edgeseg_median_ms": statistics.median(ours_ms),
        "reference_median_ms": statistics.median(ref_ms),
        "speedup_median": statistics.median(speedups),
        "speedup_min": min(speedups),
        "speedup_total": sum(ref_ms) / sum(ours_ms),
        "mask_bytes_edgeseg_mean": float(np.mean([r["edgeseg_mask_bytes"] for r in rows])),
        "mask_bytes_reference_mean": float(np.mean([r["reference_mask_bytes"] for r in rows])),
        "per_image": rows,
    }


def main() -> None:
    """Run the benchmark and print one line per fixture."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=Path, default=SHARED / "data" / "coco-val-mini" / "images")
    ap.add_argument("--limit", type=int, default=0, help="first N images only (0: all)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ref-repeats", type=int, default=3)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    images = list_images(args.images)
    if args.limit:
        images = images[: args.limit]
    results = []
    for path in sorted(FIXTURES.glob("*.onnx")):
        r = bench_model(path, images, args.repeats, args.ref_repeats)
        results.append(r)
        print(
            f"{r['model']} ({r['layout']}, {r['mean_instances']:.1f} instances/image): edgeseg "
            f"{r['edgeseg_median_ms']:.2f} ms, reference {r['reference_median_ms']:.2f} ms, speedup median "
            f"{r['speedup_median']:.1f}x (min {r['speedup_min']:.1f}x, total {r['speedup_total']:.1f}x); masks "
            f"{r['mask_bytes_edgeseg_mean'] / 1e3:.1f} kB vs {r['mask_bytes_reference_mean'] / 1e6:.1f} MB per image"
        )
    write_json(
        args.json,
        {
            "benchmark": "family_solov2",
            "machine": platform.platform(),
            "processor": platform.processor(),
            "git": git_state(ROOT),
            "versions": versions(("edgeseg", "numpy", "onnxruntime")),
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
