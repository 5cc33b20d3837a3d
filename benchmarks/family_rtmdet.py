"""RTMDet-Ins raw head: edgeseg's postprocess against the numpy transcription of mmdet's (the official way),
and the raw-head path against the end-to-end one (full-frame masks, as MMDeploy's export computes them), in
time and memory, on the same raw outputs of coco-val-mini images.

Models: the committed fixture (tests/fixtures/rtmdet, 320 input) and the same fixture module exported at
640 (RTMDet-Ins's own input size: 80x80 mask feature, 8400 priors), made into a temporary folder.

    python benchmarks/family_rtmdet.py --json benchmarks/results/family_rtmdet.json
    python benchmarks/family_rtmdet.py --images 2 --repeats 3      # quick

Per image and setting: edgeseg ``model.postprocess`` (decode, NMS, masks only inside boxes, bit-packed);
``reference_rtmdet.predict`` (numpy, full frame as mmdet); and the end-to-end mask stage in torch (the
dynamic convs over the whole mask feature, x8 bilinear to the input, as MMDeploy's graph outputs it, then
resized to the image as its runtime does). Memory: the bytes each path's masks occupy (MMDeploy's float
[K, H, W] output at input size; the full-frame boolean masks at image size; edgeseg's MaskSet), and the
numpy reference's peak allocation (tracemalloc).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np

import edgeseg
from edgeseg.io import list_images, read_image

from common import git_state, median_ms, versions, write_json

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "fixtures"))

import make_rtmdet  # noqa: E402

import reference_rtmdet as ref  # noqa: E402

# (name, conf, max_det): mmdet's deployment / demo score and its evaluation test_cfg
SETTINGS = [("conf 0.3, max_det 300", 0.3, 300), ("conf 0.001, max_det 300 (mmdet evaluation)", 0.001, 300)]


def e2e_masks_torch(outputs: list[np.ndarray], det: dict, strides: tuple[int, ...], image_hw: tuple[int, int]) -> int:
    """The end-to-end mask stage for the reference's survivors, in torch as MMDeploy's graph computes it
    (dynamic convs on the full mask feature, x stride to the input) and then to the image; returns the bytes
    of the [K, H, W] float output the graph hands over."""
    import torch
    from torch.nn import functional

    feat = outputs[3 * len(strides)]
    k = len(det["kernels"])
    if k == 0:
        return 0
    logits = torch.from_numpy(ref.mask_logits(feat, det["kernels"], det["priors"], strides[0], ref.Config()))
    up = functional.interpolate(logits[None], scale_factor=strides[0], mode="bilinear")
    masks = up.sigmoid()  # the e2e output: [1, K, H_in, W_in] float
    full = functional.interpolate(masks, size=image_hw, mode="bilinear", align_corners=False) > 0.5  # noqa: F841
    return int(masks.numel() * masks.element_size())


def run(model_path: Path, images: list[Path], repeats: int) -> dict:
    model = edgeseg.load(str(model_path))
    strides = model.spec.layout.strides
    size = model.spec.imgsz
    out: dict = {"model": model_path.name, "input": list(size), "settings": []}
    for name, conf, max_det in SETTINGS:
        cfg = ref.Config(score_thr=conf, max_per_img=max_det)
        opts = model.options(conf=conf, max_det=max_det)
        rows = []
        for path in images:
            image = read_image(str(path))
            tensor, lbs = model.preprocess([image])
            outputs = model.infer(tensor)
            one = [o[0] for o in outputs]
            meta = ref.img_meta(image.shape[0], image.shape[1], size)
            ours = model.postprocess(outputs, lbs, opts)[0]
            t_ours = median_ms(lambda o=outputs, lb=lbs, op=opts: model.postprocess(o, lb, op), repeats, warmup=True)
            t_ref = median_ms(
                lambda x=one, m=meta, c=cfg: ref.predict(x, strides, m, c), 1
            )  # seconds at evaluation settings
            tracemalloc.start()
            theirs = ref.predict(one, strides, meta, cfg)
            peak_ref = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            det = theirs  # the same survivors: their kernels and priors
            sizes: list[int] = []
            t_e2e = median_ms(
                lambda x=one, d=det, hw=image.shape[:2], out=sizes: out.append(e2e_masks_torch(x, d, strides, hw)), 1
            )
            e2e_bytes = sizes[0]
            m = ours.masks
            ours_bytes = int(m.data.nbytes + m.rects.nbytes + m.offsets.nbytes)
            k = len(ours.boxes)
            rows.append(
                {
                    "image": path.name,
                    "detections": k,
                    "reference_detections": len(theirs["boxes"]),
                    "edgeseg_ms": t_ours,
                    "reference_ms": t_ref,
                    "e2e_mask_stage_torch_ms": t_e2e,
                    "edgeseg_mask_bytes": ours_bytes,
                    "e2e_output_bytes": e2e_bytes,
                    "full_frame_bool_bytes": int(k * image.shape[0] * image.shape[1]),
                    "reference_peak_bytes": int(peak_ref),
                }
            )

        def med(key: str, rows: list[dict] = rows) -> float:
            return float(statistics.median(r[key] for r in rows))

        summary = {
            "setting": name,
            "images": len(rows),
            "median_detections": med("detections"),
            "edgeseg_ms": med("edgeseg_ms"),
            "reference_ms": med("reference_ms"),
            "speedup_vs_reference": med("reference_ms") / med("edgeseg_ms"),
            "e2e_mask_stage_torch_ms": med("e2e_mask_stage_torch_ms"),
            "edgeseg_mask_bytes": med("edgeseg_mask_bytes"),
            "e2e_output_bytes": med("e2e_output_bytes"),
            "full_frame_bool_bytes": med("full_frame_bool_bytes"),
            "reference_peak_bytes": med("reference_peak_bytes"),
            "rows": rows,
        }
        sm = summary
        print(
            f"{model_path.name} {size[0]}x{size[1]} {name}: {len(rows)} images, "
            f"median {sm['median_detections']:.0f} dets; edgeseg {sm['edgeseg_ms']:.2f} ms, "
            f"numpy reference {sm['reference_ms']:.1f} ms ({sm['speedup_vs_reference']:.0f}x), "
            f"e2e mask stage (torch) {sm['e2e_mask_stage_torch_ms']:.1f} ms; masks: edgeseg "
            f"{sm['edgeseg_mask_bytes'] / 1e3:.0f} kB, e2e output {sm['e2e_output_bytes'] / 1e6:.1f} MB, "
            f"full-frame bool {sm['full_frame_bool_bytes'] / 1e6:.1f} MB, "
            f"reference peak {sm['reference_peak_bytes'] / 1e6:.0f} MB"
        )
        out["settings"].append(summary)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=6, help="coco-val-mini images (evenly spaced)")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    paths = list_images(SHARED / "data" / "coco-val-mini" / "images")
    step = max(1, len(paths) // args.images)
    images = paths[::step][: args.images]
    with tempfile.TemporaryDirectory() as tmp:
        big = make_rtmdet.export(Path(tmp) / "rtmdet_ins_raw_640.onnx", model=make_rtmdet.RawRtmdetIns(size=640))
        results = [run(ROOT / "tests" / "fixtures" / "rtmdet" / "rtmdet_ins_raw.onnx", images, args.repeats)]
        results.append(run(big, images, args.repeats))
    write_json(
        args.json,
        {
            "benchmark": "family_rtmdet",
            "machine": platform.platform(),
            "git": git_state(ROOT),
            "versions": versions(("edgeseg", "numpy", "onnxruntime", "torch")),
            "results": results,
        },
    )


if __name__ == "__main__":
    main()
