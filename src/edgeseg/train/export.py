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
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A CPU copy in eval mode: export must not flip the training model's batch-norm mode.
    wrapper = ExportWrapper(copy.deepcopy(model).cpu().eval())
    dummy = torch.zeros(1, 3, *input_hw)
    tmp = path.with_suffix(".tmp.onnx")
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of one that needs onnxscript; this graph is
        # static and plain, so the older exporter gives the same ONNX without the extra dependency.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            (dummy,),
            str(tmp),
            dynamo=False,
            opset_version=OPSET,
            input_names=["images"],
            output_names=["output0", "output1"],
            do_constant_folding=True,
        )
    proto = onnx.load(str(tmp))
    meta = {
        "names": repr(dict(enumerate(names))),
        "imgsz": repr(list(input_hw)),
        "stride": "32",
        "task": "segment",
        "description": "edgeseg PartSeg: synthetic factory parts instance segmentation",
        "author": "edgeseg",
        "license": "Apache-2.0",
    }
    del proto.metadata_props[:]
    for key, value in meta.items():
        proto.metadata_props.add(key=key, value=value)
    onnx.save(proto, str(path))
    tmp.unlink()
    return path
