"""What an MMDeploy work directory's JSON files say about its model.

MMDeploy (``tools/deploy.py ... --dump-info``) writes ``pipeline.json`` (the SDK's preprocessing
transforms and its postprocess component with the model's ``test_cfg`` as ``params``),
``deploy.json`` (the model files) and ``detail.json`` (the deploy config). ``families.read_sidecars``
loads them; ``mmdeploy_info`` reads preprocessing, thresholds and class names out of them:

- ``Resize``: ``keep_ratio`` true is MMDetection's keep-ratio resize padded bottom-right, false a plain
  resize; ``size`` is [width, height] (MMDetection's ``scale``), the input size of dynamic models.
- ``Normalize``: ``mean``, ``std`` (in the channel order after ``to_rgb``) and ``to_rgb``.
- ``Pad``: ``size_divisor`` (the stride of dynamic inputs) or ``size`` ([width, height], the input size);
  padded before ``Normalize`` with ``pad_val`` grey (RTMDet's pipeline), after it with zeros
  (MMDetection's data preprocessor, which MMDeploy writes as ``Normalize`` then ``Pad``).
- The postprocess task (``module`` "mmdet"): ``component`` (``ResizeInstanceMask`` for instance
  segmentation) and ``params``: ``score_thr``, ``mask_thr_binary``, ``max_per_img`` (top level, or under
  ``rcnn`` for two-stage models, whose presence marks Mask R-CNN's box-relative masks, as the SDK reads it).
- Class names: a list of strings under ``classes`` / ``class_names`` in the postprocess params or in
  ``detail.json``'s ``codebase`` / ``codebase_config``, where an exporter put them (MMDeploy itself
  does not write them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import ModelError
from .spec import MAX_STRIDE, Preprocess, size_pair

RESIZES = ("Resize", "mmdet.Resize")
IGNORED = {
    "LoadImageFromFile",
    "LoadAnnotations",
    "DefaultFormatBundle",
    "ImageToTensor",
    "Collect",
    "PackDetInputs",
    "mmdet.PackDetInputs",
}


@dataclass(frozen=True)
class MMDeployInfo:
    """Facts from an MMDeploy work directory (None where its files do not say).

    Attributes:
        preprocess: the preprocessing the SDK's transforms describe.
        imgsz: (height, width) of the ``Resize`` (the input size of dynamic models).
        stride: the ``Pad`` size divisor.
        component: the postprocess component (``ResizeInstanceMask``, ``ResizeBBox``, ...).
        params: the postprocess ``params`` (the model's ``test_cfg``).
        roi_masks: True when ``params`` has an ``rcnn`` section (box-relative masks, as the SDK decides).
        names: class names, when a file carries them.
    """

    preprocess: Preprocess | None = None
    imgsz: tuple[int, int] | None = None
    stride: int | None = None
    component: str | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    roi_masks: bool | None = None
    names: tuple[str, ...] | None = None

    def param(self, key: str) -> Any:
        """A postprocess setting: the top-level one (which MMDeploy copies from ``rcnn``), else ``rcnn``'s."""
        if key in self.params:
            return self.params[key]
        rcnn = self.params.get("rcnn")
        return rcnn.get(key) if isinstance(rcnn, Mapping) else None


def _tasks(pipeline: Any, where: str) -> list[Mapping[str, Any]]:
    tasks = pipeline.get("pipeline", {}).get("tasks") if isinstance(pipeline, Mapping) else None
    if not isinstance(tasks, list) or not all(isinstance(t, Mapping) for t in tasks):
        raise ModelError(f"{where}: pipeline.json has no list of tasks under pipeline.tasks; not MMDeploy's")
    return tasks


def _triple(value: Any, what: str, where: str) -> tuple[float, float, float]:
    if (
        not isinstance(value, Sequence)
        or len(value) != 3
        or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise ModelError(f"{where}: pipeline.json Normalize {what} must be three numbers, got {value!r}")
    return float(value[0]), float(value[1]), float(value[2])


def _names(value: Any) -> tuple[str, ...] | None:
    if isinstance(value, Sequence) and not isinstance(value, str) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def mmdeploy_info(sidecars: Mapping[str, Any], where: str) -> MMDeployInfo | None:
    """Read an MMDeploy work directory's ``pipeline.json`` (and ``detail.json``), or None without one.

    A pipeline whose transforms edgeseg cannot reproduce (an unknown resize, say) is a ModelError
    naming the transform: loading it with another preprocessing would give wrong results silently.
    """
    pipeline = sidecars.get("pipeline")
    if pipeline is None:
        return None
    tasks = _tasks(pipeline, where)
    transforms: list[Mapping[str, Any]] = []
    post: Mapping[str, Any] = {}
    for t in tasks:
        if t.get("module") == "Transform" and isinstance(t.get("transforms"), list):
            transforms = [x for x in t["transforms"] if isinstance(x, Mapping)]
        elif t.get("module") == "mmdet":
            post = t

    resize, imgsz, stride = None, None, None
    mean, std, rgb = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), False
    normalized, pad_value = False, None
    for x in transforms:
        kind = str(x.get("type", ""))
        if kind in RESIZES:
            resize = "keep_ratio" if x.get("keep_ratio", True) else "stretch"
            size = x.get("size", x.get("scale"))
            wh = size_pair(list(size)) if isinstance(size, (list, tuple)) else size_pair(size)
            if wh is None:
                raise ModelError(f"{where}: pipeline.json Resize size {size!r} is not [width, height]")
            imgsz = (wh[1], wh[0])  # MMDetection's scale is (width, height)
        elif kind in ("Normalize", "mmdet.Normalize"):
            mean, std = _triple(x.get("mean"), "mean", where), _triple(x.get("std"), "std", where)
            rgb, normalized = bool(x.get("to_rgb", False)), True
        elif kind in ("Pad", "mmdet.Pad"):
            divisor = x.get("size_divisor")
            if isinstance(divisor, int) and not isinstance(divisor, bool) and 1 < divisor <= MAX_STRIDE:
                stride = max(stride or 1, divisor)  # MMDeploy adds a second Pad (divisor 1) after Normalize
            padded = x.get("size")
            if isinstance(padded, (list, tuple)) and (wh := size_pair(list(padded))) is not None:
                imgsz = (wh[1], wh[0])  # padded to a fixed [width, height]: the input size
            if not normalized:  # padded in pixels, before normalization
                val = x.get("pad_val", 0)
                if isinstance(val, Mapping):
                    val = val.get("img", 0)
                if isinstance(val, (list, tuple)) and val:
                    val = val[0]
                pad_value = float(val) if isinstance(val, (int, float)) and 0 <= val <= 255 else 0.0
        elif kind not in IGNORED:
            raise ModelError(
                f"{where}: pipeline.json has a {kind!r} transform edgeseg does not reproduce "
                "(it reads Resize, Normalize and Pad); preprocess the images yourself and call model.postprocess"
            )
    try:
        preprocess = Preprocess(resize=resize or "keep_ratio", pad_value=pad_value, mean=mean, std=std, rgb=rgb)
    except ValueError as e:
        raise ModelError(f"{where}: pipeline.json preprocessing is not usable: {e}") from None

    params = post.get("params", {})
    params = params if isinstance(params, Mapping) else {}
    detail = sidecars.get("detail") if isinstance(sidecars.get("detail"), Mapping) else {}
    names = _names(params.get("classes")) or _names(params.get("class_names"))
    for key in ("codebase", "codebase_config"):
        section = detail.get(key)
        if names is None and isinstance(section, Mapping):
            names = _names(section.get("classes")) or _names(section.get("class_names"))
    return MMDeployInfo(
        preprocess=preprocess,
        imgsz=imgsz,
        stride=stride,
        component=str(post["component"]) if "component" in post else None,
        params=params,
        roi_masks=("rcnn" in params) if post else None,
        names=names,
    )
