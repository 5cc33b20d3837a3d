"""The ``edgeseg`` command line: predict, track, demo, eval, bench, quantize, info, models, fetch, synth, synth-video
and train."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .cliargs import (
    add_detection_options,
    add_model_options,
    add_nms_option,
    add_scene_size,
    detection_kwargs,
    load_model,
    make_output_dir,
    refuse_overwriting_sources,
    shown,
)
from .errors import ImageError
from .headsplit import SPLIT_LAYOUTS
from .io import IMAGE_SUFFIXES, list_images, read_image, write_atomic, write_image
from .model import load
from .sources import is_video_file
from .train.config import SOLOV2_DEFAULTS, TRAIN_HEADS, TrainConfig
from .videocli import add_parsers as add_video_parsers
from .zoo import DEFAULT_MODEL


def _image_id(path: Path, index: int) -> int:
    return int(path.stem) if path.stem.isdigit() else index


def cmd_predict(args: argparse.Namespace) -> int:
    if len(args.inputs) > 2:
        raise ValueError(f"predict takes one SOURCE (and optionally a MODEL before it), got {len(args.inputs)}")
    if len(args.inputs) == 2:  # the older `edgeseg predict MODEL SOURCE` form
        if args.model is not None:
            raise ValueError("give the model either with --model or before SOURCE, not both")
        args.model = args.inputs[0]
    args.model = args.model or DEFAULT_MODEL
    source = Path(args.inputs[-1])
    model = load_model(args)
    if source.is_file() and is_video_file(source):
        from .videocli import predict_video

        return predict_video(model, args, source)
    if source.is_dir():
        paths = list_images(source)
        if not paths:
            raise ImageError(f"{source}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    elif source.is_file():
        paths = [source]
    else:
        raise ImageError(f"{source}: no such image file or folder")
    out_dir: Path = args.out
    outputs = ([] if args.no_images else [out_dir / p.name for p in paths]) + (
        [out_dir / "predictions.json"] if args.save_json else []
    )
    refuse_overwriting_sources(paths, outputs)
    make_output_dir(out_dir)
    detection = detection_kwargs(args)

    from tqdm import tqdm

    coco: list[dict] = []
    counts: Counter = Counter()
    failed: list[tuple[Path, str]] = []
    stages = {"preprocess": [], "inference": [], "postprocess": []}
    progress = tqdm(paths, unit="img", desc="predict", disable=len(paths) == 1 or args.quiet)
    for index, path in enumerate(progress):
        try:
            image = read_image(path)
        except ImageError as exc:
            if args.strict:
                raise
            failed.append((path, str(exc)))  # one bad file never costs the rest of the batch
            progress.write(f"edgeseg: skipped {exc}", file=sys.stderr)
            continue
        result = model(image, **detection)
        counts.update(result.labels)
        for stage, ms in result.timings.items():
            stages[stage].append(ms)
        if not args.no_images:
            write_image(out_dir / path.name, result.draw(image))
        if args.save_json:
            coco.extend(result.to_coco(_image_id(path, index)))
        if len(paths) == 1 and not args.quiet:
            print(f"{shown(path.name)}: {len(result)} instances {dict(result.counts())}")
    if args.save_json:
        write_atomic(out_dir / "predictions.json", json.dumps(coco).encode())
    done = len(paths) - len(failed)
    if not args.quiet:
        total = sum(counts.values())
        print(f"{done} image(s), {total} instances: {dict(counts.most_common())}")
        if stages["inference"]:
            print("mean ms per image: " + ", ".join(f"{k} {np.mean(v):.1f}" for k, v in stages.items()))
        saved = [] if args.no_images else ["annotated images"]
        saved += ["predictions.json (COCO results)"] if args.save_json else []
        if saved:
            print(f"saved {' and '.join(saved)} to {shown(out_dir)}")
    if failed:
        names = ", ".join(shown(p.name) for p, _ in failed[:10]) + (", ..." if len(failed) > 10 else "")
        print(f"edgeseg: {len(failed)} of {len(paths)} image(s) could not be read and were skipped: {names}",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate

    model = load_model(args)
    report = evaluate(
        model,
        args.images,
        args.annotations,
        conf=args.conf,
        iou=args.iou,
        max_det=args.max_det,
        per_class=args.per_class,
        progress=not args.quiet,
        save_predictions=args.save_predictions,
        strict=args.strict,
        nms=args.nms,
    )
    print(f"model {Path(report.model).name}: {report.images} images, {report.detections} detections "
          f"(conf {report.conf}, iou {report.iou}, max_det {report.max_det}; {report.evaluator})")  # fmt: skip
    print("|      | mAP50-95 | mAP50  |\n|------|----------|--------|")
    print(f"| box  | {report.box_map50_95:.4f}   | {report.box_map50:.4f} |")
    print(f"| mask | {report.mask_map50_95:.4f}   | {report.mask_map50:.4f} |")
    print(
        f"mean ms per image: preprocess {report.preprocess_ms:.1f}, inference {report.inference_ms:.1f}, "
        f"postprocess {report.postprocess_ms:.1f}"
    )
    if report.per_class:
        print("\n| class | box AP50-95 | mask AP50-95 |\n|---|---|---|")
        for name, ap in report.per_class.items():
            print(f"| {name} | {ap.get('box', float('nan')):.4f} | {ap.get('mask', float('nan')):.4f} |")
    if report.failed:
        # The run is kept, but the numbers are not the dataset's: say so where scripts and people both look.
        names = [f["file_name"] for f in report.failed]
        more = f" and {len(names) - 10} more" if len(names) > 10 else ""
        print(
            f"edgeseg: warning: {len(names)} of {report.images + len(names)} images skipped because they cannot be "
            f"read; the mAP covers only the {report.images} evaluated image(s): {', '.join(names[:10])}{more}",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(report.to_dict()))
    return 1 if report.failed else 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .bench import benchmark, plot

    model = load_model(args)
    if args.source is not None:
        from .videocli import bench_stream

        return bench_stream(model, args)
    images, source = None, None
    if args.images is not None:
        paths = list_images(args.images)[: args.limit or None]
        if not paths:
            raise ImageError(f"{args.images}: no images in this folder")
        images = [read_image(p) for p in paths]
        source = f"{len(images)} image(s) from {args.images}"
    report = benchmark(
        model, images, warmup=args.warmup, runs=args.runs, conf=args.conf, progress=not args.quiet, source=source
    )
    print(f"model {Path(report.model).name} on {report.source}; {report.runs} runs after {report.warmup} warm-up")
    print(f"runtime {report.runtime} ({', '.join(report.providers)}), {report.threads} threads, conf {report.conf}")
    print(report.table())
    print(
        f"{report.fps:.1f} FPS end to end, {report.detections_mean:.1f} detections/frame, "
        f"peak RSS {report.peak_rss_mb:.0f} MB"
    )
    if args.plot:
        plot(report, args.plot)
        print(f"saved {args.plot}")
    if args.json:
        print(json.dumps(report.to_dict()))
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    from .quantize import quantize

    report = quantize(
        args.model, args.calib, args.output, calib_size=args.calib_size, per_channel=args.per_channel,
        progress=not args.quiet, activations=args.activations, split_head=args.split_head,
    )  # fmt: skip
    print(
        f"wrote {report.output}: {report.int8_mb:.1f} MB (FP32 {report.fp32_mb:.1f} MB), calibrated on "
        f"{report.calibration_images} images, {'per-channel' if report.per_channel else 'per-tensor'} weights"
    )
    if args.split_head:
        print(f"head split as {args.split_head}: every output int8/uint8 with its own scale, decoded by edgeseg")
    else:
        print(f"kept in float: {len(report.excluded_nodes)} head nodes after the last convolutions (box decoding, ")
        print("  DFL, class sigmoid, the box/score/coefficient concatenation, prototype activation)")
    if args.val_images and args.val_annotations:
        from .bench import benchmark
        from .evaluate import evaluate

        rows = []
        images = [read_image(p) for p in list_images(args.val_images)[:20]]
        for label, path in (("FP32", args.model), ("INT8", Path(report.output))):
            model = load(path, threads=args.threads)
            acc = evaluate(model, args.val_images, args.val_annotations, progress=not args.quiet)
            speed = benchmark(model, images, warmup=3, runs=max(20, len(images)), progress=False)
            rows.append((label, acc, speed))
        print("\n| model | box mAP50-95 | mask mAP50-95 | inference p50 ms | speed-up |\n|---|---|---|---|---|")
        base = rows[0][2].inference_ms["p50"]
        for label, acc, speed in rows:
            p50 = speed.inference_ms["p50"]
            print(f"| {label} | {acc.box_map50_95:.4f} | {acc.mask_map50_95:.4f} | {p50:.1f} | {base / p50:.2f}x |")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    if args.layouts:
        from .families import supported_layouts

        print(supported_layouts())
        return 0
    if args.model is None:
        raise ValueError("give a model file (or name), or --layouts for the layouts edgeseg reads")
    model = load_model(args)
    if args.cpp:
        from .cpp import layout_snippet

        print(layout_snippet(model))
        return 0
    print(model.spec.describe())
    print(f"providers:   {', '.join(model.runtime.providers)}")
    if args.check:
        from .health import check_model

        report = check_model(model)
        print(f"health:      max class score {report.max_class_score:.3f} on the built-in scene")
        for problem in report.problems:
            print(f"  PROBLEM: {problem}")
        print("health:      " + ("ok" if report.ok else f"{len(report.problems)} problem(s)"))
        return 0 if report.ok else 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from .synthparts import CLASSES, SceneConfig, render_scene

    if args.video:
        from .videocli import demo_video

        args.model = args.model or DEFAULT_MODEL
        args.out = args.out or Path("edgeseg-demo.mp4")
        return demo_video(load_model(args), args)
    args.out = args.out or Path("edgeseg-demo.png")

    seed = args.seed if args.seed is not None else int(np.random.default_rng().integers(0, 2**31))
    scene = render_scene(seed, SceneConfig(width=args.width, height=args.height))
    args.model = args.model or DEFAULT_MODEL
    model = load_model(args)
    result = model(scene.image, conf=args.conf)
    truth = Counter(CLASSES[c] for c in scene.classes.tolist())
    found = result.counts()
    print(f"scene seed {seed} ({args.width}x{args.height}, {len(scene)} parts), model {Path(model.spec.path).name}")
    print(f"{'class':<22}{'found':>6}{'true':>6}")
    for name in sorted(set(truth) | set(found), key=lambda n: (-truth.get(n, 0), n)):
        print(f"{name:<22}{found.get(name, 0):>6}{truth.get(name, 0):>6}")
    print(f"{'total':<22}{len(result):>6}{len(scene):>6}")
    print("ms: " + ", ".join(f"{k} {v:.1f}" for k, v in result.timings.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_image(args.out, np.hstack((scene.image, result.draw(scene.image))))
    print(f"saved {shown(args.out)} (left: the scene, right: what the model found)")
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from .synthparts import SceneConfig, write_dataset

    ann = write_dataset(
        args.out, args.count, seed=args.seed, config=SceneConfig(width=args.width, height=args.height),
        progress=not args.quiet,
    )  # fmt: skip
    print(f"wrote {args.count} scenes to {shown(args.out / 'images')} and their COCO annotations to {shown(ann)}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    try:
        from .train.recipe import make_partseg, make_solov2
    except ImportError as exc:
        raise ImportError(f"edgeseg train needs PyTorch ({exc}): pip install 'edgeseg[train]'") from exc

    base = SOLOV2_DEFAULTS if args.head == "solov2" else TRAIN_DEFAULTS

    def pick(value: object, default: object) -> object:
        return default if value is None else value

    config = TrainConfig(
        input_hw=tuple(pick(args.imgsz, base.input_hw)), train_images=pick(args.train_images, base.train_images),
        epochs=pick(args.epochs, base.epochs), batch=pick(args.batch, base.batch), lr=pick(args.lr, base.lr),
        seed=args.seed, threads=args.threads or 0, head=args.head,
    )  # fmt: skip
    try:
        if args.head == "solov2":
            report = make_solov2(
                args.out, config, val_images=args.val_images, publish=args.publish, resume=not args.no_resume,
                progress=not args.quiet,
            )  # fmt: skip
        else:
            report = make_partseg(
                args.out, config, val_images=args.val_images, quantize=not args.no_quantize, publish=args.publish,
                resume=not args.no_resume, progress=not args.quiet,
            )  # fmt: skip
    except KeyboardInterrupt as exc:
        print(f"edgeseg: {exc or 'interrupted'}", file=sys.stderr)
        return 130
    print(f"trained in {report.train_minutes:.1f} min; FP32 {report.fp32}: mask mAP50-95 {report.fp32_mask_map:.4f}, "
          f"box {report.fp32_box_map:.4f}")  # fmt: skip
    if report.int8 is not None:
        print(f"INT8 {report.int8}: mask mAP50-95 {report.int8_mask_map:.4f}, box {report.int8_box_map:.4f}")
    print(f"model card: {report.card}" + (f"; copied to {args.publish}" if args.publish else ""))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from . import zoo

    rows = [zoo.describe(e) for e in zoo.list_models()]
    if args.json:
        print(json.dumps({"home": str(zoo.home()), "models": rows}))
        return 0
    print(f"cache: {zoo.home()} (set EDGESEG_HOME to move it)")
    header = ("name", "format", "size", "licence", "sha256", "cached")
    table = []
    for r in rows:
        size = r["size"] if r["size"] is not None else (Path(r["cached"]).stat().st_size if r["cached"] else None)
        table.append((r["name"], r["format"], _mb(size), r["licence"], r["digest"], "yes" if r["cached"] else "no"))
    widths = [max(len(str(row[i])) for row in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())
    for r in rows:
        print(f"\n{r['name']}: {r['description']}\n  download: {r['download']}")
        if r["cached"]:
            print(f"  {'file:  ' if r['bundled'] else 'cached:'}   {r['cached']}")
    return 0


def _mb(size: int | None) -> str:
    return "?" if size is None else f"{size / 1e6:.1f} MB"


def cmd_fetch(args: argparse.Namespace) -> int:
    from . import zoo

    max_bytes = None if args.max_mb is None else int(args.max_mb * (1 << 20))
    path = zoo.fetch(args.name, progress=not args.quiet, max_bytes=max_bytes, deadline=args.deadline)
    print(path)
    return 0


TRAIN_DEFAULTS = TrainConfig()


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
    add_model_options(p, positional=False)
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="SOURCE",
        help="an image file, a folder of images, or a video file (per-frame instances, no tracking; see `edgeseg "
        "track`); `edgeseg predict MODEL SOURCE` also works",
    )
    add_detection_options(p)
    p.add_argument("--out", type=Path, default=Path("edgeseg-out"), help="output folder (default ./edgeseg-out)")
    p.add_argument(
        "--save-json",
        action="store_true",
        help="write predictions.json: COCO results with RLE masks (image_id = file name when numeric, else index)",
    )
    p.add_argument("--no-images", action="store_true", help="do not write annotated images")
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first image that cannot be read (default: skip it, list it at the end, exit code 1)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "eval",
        help="COCO box and mask mAP on a COCO-format dataset",
        description="Run the model on every image of a COCO-format instance dataset and report box and mask "
        "mAP50-95 / mAP50 (pycocotools, or faster-coco-eval when installed) and the mean per-stage times. "
        "Models with the 80 COCO classes use COCO's 91-id scheme; other models are matched to the dataset's "
        "categories by name. The annotations are checked before any inference: a malformed file is an error "
        "naming the entry and field. An image that cannot be read is skipped and named, the mAP then covers "
        "the images evaluated, and the exit code is 1 (--strict: stop at the first one, exit code 2).",
    )
    add_model_options(p)
    p.add_argument("--images", type=Path, required=True, help="folder with the dataset's images")
    p.add_argument("--annotations", type=Path, required=True, help="COCO instances JSON")
    p.add_argument("--conf", type=float, default=0.001, help="score threshold (default 0.001, as for mAP)")
    p.add_argument("--iou", type=float, default=0.7, help="NMS IoU threshold (default 0.7)")
    p.add_argument("--max-det", type=int, default=300, help="most detections per image (default 300)")
    add_nms_option(p)
    p.add_argument("--per-class", action="store_true", help="also print box and mask AP50-95 per class")
    p.add_argument("--save-predictions", type=Path, default=None, help="write the predictions (COCO results JSON)")
    p.add_argument(
        "--strict",
        action="store_true",
        help="stop with an error (exit code 2) at the first image that cannot be read, instead of skipping it",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object as the last line: box_map50_95, box_map50, mask_map50_95, mask_map50, images, "
        "detections, model, conf, iou, max_det, nms, preprocess_ms, inference_ms, postprocess_ms, evaluator, "
        "per_class, failed ([{file_name, error}] of the images skipped)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser(
        "bench",
        help="per-stage latency, FPS and memory on this device",
        description="Time preprocess, inference and postprocess over repeated calls (images are decoded "
        "before timing). Without --images, a synthetic scene of the model's input size is used.",
    )
    add_model_options(p)
    p.add_argument("--images", type=Path, default=None, help="folder of images to cycle through")
    p.add_argument("--limit", type=int, default=0, help="use at most N images of the folder")
    p.add_argument("--warmup", type=int, default=5, help="untimed warm-up calls (default 5)")
    p.add_argument("--runs", type=int, default=50, help="timed calls (default 50)")
    p.add_argument("--conf", type=float, default=0.25, help="score threshold (default 0.25)")
    p.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object as the last line: preprocess_ms, inference_ms, postprocess_ms, total_ms "
        "(each with p50, p90, p99, mean), fps, peak_rss_mb, runtime, providers, threads, detections_mean",
    )
    p.add_argument("--plot", type=Path, default=None, help="write a PNG of the latency distributions (matplotlib)")
    p.add_argument(
        "--source",
        default=None,
        help="measure a stream instead: a video file, camera, URL or folder through model.stream() (throughput, "
        "capture-to-result latency, drops, and the per-stage means); --json prints the stream summary",
    )
    p.add_argument("--realtime", action="store_true", help="with --source: play a file at its own frame rate")
    p.add_argument("--max-frames", type=int, default=0, help="with --source: stop after N frames")
    p.add_argument("--no-track", action="store_true", help="with --source: no tracking")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser(
        "quantize",
        help="static INT8 quantization of an ONNX model, calibrated on your images",
        description="Quantize an FP32 ONNX YOLO-seg model to static INT8 (QDQ: uint8 activations, int8 weights) "
        "with ONNX Runtime, calibrated on images letterboxed exactly as edgeseg feeds them. The head's decoding "
        "(box decoding, DFL, class sigmoid, the box/score/coefficient concatenation, prototype activation) stays "
        "in float: one int8 scale cannot hold pixel coordinates and probabilities together. With validation "
        "data, prints FP32 vs INT8 mAP and inference speed side by side.",
    )
    p.add_argument("model", type=Path, help="FP32 .onnx model")
    p.add_argument("--calib", type=Path, required=True, help="folder of calibration images (a few dozen)")
    p.add_argument("-o", "--output", type=Path, required=True, help="where to write the INT8 .onnx")
    p.add_argument("--calib-size", type=int, default=64, help="most calibration images used (default 64)")
    p.add_argument("--per-channel", action="store_true", help="per-channel weight scales")
    p.add_argument(
        "--activations",
        choices=("uint8", "int8"),
        default="uint8",
        help="uint8: asymmetric, ONNX Runtime's fast path on x86 (default); int8: symmetric, native on ARM "
        "dot-product CPUs, slower than FP32 under ONNX Runtime on x86",
    )
    p.add_argument(
        "--split-head", choices=SPLIT_LAYOUTS, default=None,
        help="split the head into this NPU layout first (rknn: Rockchip, 13 NCHW outputs; hailo: NHWC per stride; "
        "qai: Qualcomm AI Hub; edgefirst: two-way) and quantize everything: every output int8 with its own scale, "
        "no float head nodes; edgeseg loads and decodes the result with no configuration",
    )  # fmt: skip
    p.add_argument("--val-images", type=Path, default=None, help="validation images (COCO-format dataset)")
    p.add_argument("--val-annotations", type=Path, default=None, help="validation COCO instances JSON")
    p.add_argument("--threads", type=int, default=None, help="inference threads for the comparison")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_quantize)

    p = sub.add_parser(
        "info",
        help="print what edgeseg reads from a model",
        description="Print the model's ModelSpec: family and output layout, input and preprocessing, classes, "
        "the family's default thresholds and each output's role; with --check, also run it once on a built-in "
        "scene and report degenerate outputs (all class scores about zero, NaNs, saturated quantized tensors). "
        "Exit code 1 when the check finds a problem. --layouts lists every layout edgeseg reads.",
    )
    add_model_options(p, required=False)
    p.add_argument("--check", action="store_true", help="run the model once and check its outputs are sane")
    p.add_argument("--layouts", action="store_true", help="list the model families and output layouts edgeseg reads")
    p.add_argument(
        "--cpp",
        action="store_true",
        help="print C++ that fills this model's layout and options for the core's one-call postprocess "
        "(edgeseg/postprocess.hpp)",
    )
    p.set_defaults(func=cmd_info)

    p = sub.add_parser(
        "demo",
        help="segment a fresh synthetic conveyor scene with the bundled model (no files needed)",
        description="Render a new synthetic conveyor-belt scene of factory parts, segment it with the bundled "
        "PartSeg model (or --model), print the instances found per class next to the true counts, and write the "
        "scene and the annotated result side by side as a PNG.",
    )
    add_model_options(p, positional=False)
    p.add_argument("--seed", type=int, default=None, help="scene seed (default: a new random scene each run)")
    add_scene_size(p)
    p.add_argument("--conf", type=float, default=0.25, help="minimum class score (default 0.25)")
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        help="output PNG (default edgeseg-demo.png; with --video: the annotated video, default edgeseg-demo.mp4)",
    )
    p.add_argument(
        "--video",
        action="store_true",
        help="render a conveyor-belt sequence instead, track and count the parts crossing the middle line, print "
        "found vs true counts and write the annotated video",
    )
    p.add_argument("--frames", type=int, default=300, help="with --video: frames to render (default 300)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "synth",
        help="write a synthetic factory-parts dataset (COCO format)",
        description="Render COUNT synthetic conveyor-belt scenes into OUT/images and their instance masks into "
        "OUT/annotations.json (COCO, RLE). Scene i depends only on (--seed, i): the same command always writes "
        "the same dataset, and different seeds give disjoint ones.",
    )
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--count", type=int, default=100, help="number of scenes (default 100)")
    p.add_argument("--seed", type=int, default=0, help="dataset seed (default 0)")
    add_scene_size(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser(
        "train",
        help="train the bundled PartSeg model from scratch (needs edgeseg[train])",
        description="The recipe behind the bundled model: render synthetic training scenes, train PartSeg on the "
        "CPU (about 20 minutes on 2 cores with the defaults), export FP32 ONNX, make the INT8 model with edgeseg "
        "quantize, evaluate both on a held-out synthetic split and write a model card. Checkpoints are written to "
        "OUT as it goes; running the same command again resumes an interrupted run.",
    )
    p.add_argument("--out", type=Path, default=Path("runs/partseg"), help="working folder (default runs/partseg)")
    p.add_argument(
        "--head", choices=TRAIN_HEADS, default="yolo",
        help="yolo: PartSeg (YOLOv8-seg layout, the bundled model); yolact: a YOLACT-style model in the YOLACT "
        "layout (boxes/conf/mask/proto, no INT8 model); solov2: a SOLOv2-style model in the SOLOv2 raw-head "
        "layout, its backbone started from PartSeg (default %(default)s)",
    )  # fmt: skip
    dflt = "(default {} for yolo and yolact, {} for solov2)"
    p.add_argument(
        "--epochs", type=int, default=None, help="epochs " + dflt.format(TRAIN_DEFAULTS.epochs, SOLOV2_DEFAULTS.epochs)
    )
    p.add_argument(
        "--train-images", type=int, default=None,
        help="training scenes " + dflt.format(TRAIN_DEFAULTS.train_images, SOLOV2_DEFAULTS.train_images),
    )  # fmt: skip
    p.add_argument("--val-images", type=int, default=200, help="held-out validation scenes (default 200)")
    p.add_argument(
        "--batch", type=int, default=None, help="batch size " + dflt.format(TRAIN_DEFAULTS.batch, SOLOV2_DEFAULTS.batch)
    )
    p.add_argument(
        "--lr",
        type=float,
        default=None,
        help="peak learning rate " + dflt.format(TRAIN_DEFAULTS.lr, SOLOV2_DEFAULTS.lr),
    )
    p.add_argument(
        "--imgsz", type=int, nargs=2, default=None, metavar=("H", "W"),
        help=f"network input height and width, multiples of 32 (default {list(TRAIN_DEFAULTS.input_hw)})",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="data and initialisation seed (default 0)")
    p.add_argument("--threads", type=int, default=None, help="PyTorch threads (default: all cores)")
    p.add_argument("--no-quantize", action="store_true", help="skip the INT8 model (solov2 makes none)")
    p.add_argument("--publish", type=Path, default=None, help="copy the models and card here (e.g. models/)")
    p.add_argument("--no-resume", action="store_true", help="start over even if OUT has a checkpoint")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "models",
        help="list the named models and whether they are cached",
        description="List the model zoo: name, format, size, licence, sha256 status (pinned, or recorded at "
        "first download and verified afterwards) and whether the file is in the cache ($EDGESEG_HOME, default "
        "~/.cache/edgeseg). Names work wherever a model path does: `edgeseg predict yolov8n-seg IMAGE`.",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object: home and a list of models")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser(
        "fetch",
        help="download a named model (or a URL) into the cache and print its path",
        description="Download a model by name (see `edgeseg models`) or http(s) URL into the cache with a "
        "progress bar: resumed after an interruption (only when the server's ETag or Last-Modified shows the "
        "file unchanged), verified against its sha256 (a mismatch deletes the file) or, without a pinned one, "
        "checked to be a well-formed ONNX/TFLite model before its digest is recorded, renamed into place only "
        "when complete. A cached file is verified and reused; a corrupt one is downloaded again. Prints the "
        "cached path.",
    )
    p.add_argument("name", help="model name (edgeseg models) or http(s) URL")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--max-mb", type=float, default=None, metavar="MB",
        help="refuse files larger than this many MiB (default $EDGESEG_MAX_DOWNLOAD_MB, else 2048)",
    )  # fmt: skip
    p.add_argument(
        "--deadline", type=float, default=None, metavar="S",
        help="give up after this many seconds, retries included (default $EDGESEG_DOWNLOAD_DEADLINE, else 1800)",
    )  # fmt: skip
    p.set_defaults(func=cmd_fetch)
    add_video_parsers(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``edgeseg`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING, format="%(levelname)s: %(message)s")
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader went away (`edgeseg info model | head`): not an error of ours. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, OSError, ImportError) as exc:  # ModelError, ImageError, ZooError are ValueErrors
        print(f"edgeseg: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
