"""FP32 vs INT8: accuracy and speed of `edgeseg quantize`, and the int8-domain decode of a TFLite model.

1. Quantizes ../shared/models/yolov8n-seg.onnx with `edgeseg quantize` twice — today's QDQ model (head
   decoding kept in float) and the full-INT8 split model (`--split-head rknn`: every output int8 with its own
   scale, no float head node) — calibrated on the first --calib-size images of --calib (default
   coco128-train, disjoint from the images reported on; the INT8 models go to a temporary folder: they
   derive from AGPL weights and are never committed), evaluates the three models on coco-val-mini at
   conf 0.001 and times their inference on the same preprocessed images, alternating, in one run.
2. Times the int8-domain postprocess of yolo11n-seg-int8.tflite at conf 0.25 against that model's
   inference, on the same raw outputs.

    python benchmarks/quantize.py --json benchmarks/results/quantize.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

import edgeseg
from edgeseg.evaluate import evaluate
from edgeseg.heads import PostprocessOptions
from edgeseg.io import list_images, read_image
from edgeseg.quantize import quantize

from common import median_ms

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
IMAGES = SHARED / "data" / "coco-val-mini" / "images"
CALIB = SHARED / "data" / "coco128-train" / "images"
ANNOTATIONS = SHARED / "data" / "coco-val-mini" / "instances_val2017.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calib", type=Path, default=CALIB, help="calibration images (default coco128-train)")
    parser.add_argument("--calib-size", type=int, default=32, help="calibration images (default 32)")
    parser.add_argument("--per-channel", action="store_true", help="per-channel weight scales")
    parser.add_argument("--speed-images", type=int, default=20, help="images for the speed comparison")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats per image (median)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results to this JSON file")
    args = parser.parse_args()

    fp32_path = SHARED / "models" / "yolov8n-seg.onnx"
    results: dict = {"command": " ".join(sys.argv)}
    with tempfile.TemporaryDirectory() as tmp:
        int8_path = Path(tmp) / "yolov8n-seg-int8.onnx"
        split_path = Path(tmp) / "yolov8n-seg-rknn-int8.onnx"
        q = quantize(fp32_path, args.calib, int8_path, calib_size=args.calib_size, per_channel=args.per_channel)
        quantize(fp32_path, args.calib, split_path, calib_size=args.calib_size, per_channel=args.per_channel,
                 split_head="rknn")  # fmt: skip
        results["quantize"] = {
            "calibration": str(args.calib),
            "calibration_images": q.calibration_images,
            "per_channel": q.per_channel,
            "fp32_mb": q.fp32_mb,
            "int8_mb": q.int8_mb,
            "float_head_nodes": len(q.excluded_nodes),
        }
        models = {
            "FP32": edgeseg.load(fp32_path),
            "INT8": edgeseg.load(int8_path),
            "INT8 split (rknn)": edgeseg.load(split_path),
        }
        for label, model in models.items():
            report = evaluate(model, IMAGES, ANNOTATIONS, conf=0.001, iou=0.7, max_det=300)
            results[label] = {"box_map50_95": report.box_map50_95, "mask_map50_95": report.mask_map50_95}
        # Speed: same tensors, the two models alternating image by image.
        times: dict[str, list[float]] = {label: [] for label in models}
        for path in list_images(IMAGES)[: args.speed_images]:
            tensor, _ = models["FP32"].preprocess([read_image(path)])
            for label, model in models.items():
                feeds = {model.spec.input.name: tensor}
                model.runtime.run(feeds)
                times[label].append(median_ms(lambda m=model, f=feeds: m.runtime.run(f), args.repeats))
        for label in models:
            results[label]["inference_ms_median"] = statistics.median(times[label])

    # The int8-domain decode of a full-integer TFLite model.
    tflite = edgeseg.load(SHARED / "models" / "yolo11n-seg-int8.tflite")
    options = PostprocessOptions(conf=0.25)
    inf, post = [], []
    for path in list_images(IMAGES)[: args.speed_images]:
        tensor, (lb,) = tflite.preprocess([read_image(path)])
        feeds = {tflite.spec.input.name: tensor}
        outputs = tflite.runtime.run(feeds)
        inf.append(median_ms(lambda f=feeds: tflite.runtime.run(f), args.repeats))
        post.append(median_ms(lambda o=outputs, b=lb: tflite.head(o, 0, b, options), args.repeats))
    results["tflite_int8"] = {
        "model": "yolo11n-seg-int8.tflite",
        "inference_ms_median": statistics.median(inf),
        "postprocess_ms_median": statistics.median(post),
        "ratio": statistics.median(post) / statistics.median(inf),
    }

    fp, i8 = results["FP32"], results["INT8"]
    drop = (fp["mask_map50_95"] - i8["mask_map50_95"]) * 100
    speedup = fp["inference_ms_median"] / i8["inference_ms_median"]
    print(
        f"\nedgeseg quantize (yolov8n-seg.onnx, {q.calibration_images} calibration images), coco-val-mini conf 0.001\n"
    )
    print("| model | size MB | box mAP50-95 | mask mAP50-95 | inference median ms |")
    print("|---|---|---|---|---|")
    for label in models:
        r = results[label]
        maps = f"{r['box_map50_95']:.4f} | {r['mask_map50_95']:.4f}"
        size = {"FP32": q.fp32_mb, "INT8": q.int8_mb}.get(label, float("nan"))
        print(f"| {label} | {size:.1f} | {maps} | {r['inference_ms_median']:.1f} |")
    s = results["INT8 split (rknn)"]
    print(
        f"full-INT8 split: mask mAP drop {(fp['mask_map50_95'] - s['mask_map50_95']) * 100:.2f} points, "
        f"speed-up {fp['inference_ms_median'] / s['inference_ms_median']:.2f}x"
    )
    print(
        f"\nmask mAP drop {drop:.2f} points (target <= 1.0: {'ok' if drop <= 1.0 else 'MISSED'}); "
        f"INT8 speed-up {speedup:.2f}x (target >= 1.5: {'ok' if speedup >= 1.5 else 'MISSED'})"
    )
    t = results["tflite_int8"]
    print(
        f"yolo11n-seg-int8.tflite at conf 0.25: postprocess {t['postprocess_ms_median']:.3f} ms vs inference "
        f"{t['inference_ms_median']:.1f} ms = {t['ratio'] * 100:.2f}% "
        f"(target <= 2%: {'ok' if t['ratio'] <= 0.02 else 'MISSED'})"
    )
    results.update({"mask_map_drop_points": drop, "int8_speedup": speedup})
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
