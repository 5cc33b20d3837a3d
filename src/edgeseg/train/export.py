"""ONNX export with Ultralytics-style metadata, so ``edgeseg.load`` needs no configuration."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch

from .net import ExportWrapper, PartSeg

OPSET = 17


def export_onnx(model: PartSeg, path: str | Path, input_hw: tuple[int, int], names: tuple[str, ...]) -> Path:
    """Write ``model`` as an FP32 ONNX file: input ``images [1, 3, H, W]``, outputs ``output0
    [1, 4 + nc + 32, N]`` and ``output1 [1, 32, H/4, W/4]``, metadata ``names``, ``imgsz``, ``stride``,
    ``task``. Batch norms are folded into the convolutions."""
    # A CPU copy in eval mode: export must not flip the training model's batch-norm mode.
    wrapper = ExportWrapper(copy.deepcopy(model).cpu().eval())
    meta = {
        "names": repr(dict(enumerate(names))),
        "imgsz": repr(list(input_hw)),
        "stride": "32",
        "task": "segment",
        "description": "edgeseg PartSeg: synthetic factory parts instance segmentation",
    }
    return write_onnx(wrapper, path, input_hw, "images", ("output0", "output1"), meta)


def write_onnx(
    wrapper: torch.nn.Module,
    path: str | Path,
    input_hw: tuple[int, int],
    input_name: str,
    output_names: tuple[str, ...],
    meta: dict[str, str],
) -> Path:
    """Export ``wrapper`` (eval mode, on the CPU) at a [1, 3, H, W] input as FP32 ONNX at ``path`` with
    ``meta`` (plus author and licence) as its metadata; the one export path of every trainable head."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of one that needs onnxscript; these graphs are
        # static and plain, so the older exporter gives the same ONNX without the extra dependency.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (torch.zeros(1, 3, *input_hw),),
            str(tmp),
            dynamo=False,
            opset_version=OPSET,
            input_names=[input_name],
            output_names=list(output_names),
            do_constant_folding=True,
        )
    proto = onnx.load(str(tmp))
    del proto.metadata_props[:]
    for key, value in {**meta, "author": "edgeseg", "license": "Apache-2.0"}.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    tmp.unlink()
    return path
