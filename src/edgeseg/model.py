"""Model: load once, call per frame."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union, overload

import numpy as np

from ._core import Letterbox
from .errors import ImageError, ModelError
from .families import build_spec
from .heads import Head, PostprocessOptions, make_head
from .io import ImageSource, read_image
from .preprocess import fit_input_size, make_input
from .result import Result
from .runtimes import Runtime, open_runtime
from .runtimes.base import TensorInfo
from .spec import NMS_KINDS, ModelSpec

if TYPE_CHECKING:
    from .sources import StreamSource
    from .stream import Counters, Stream
    from .track import Tracker, TrackerConfig

ClassSelector = Iterable[Union[int, str]]
log = logging.getLogger("edgeseg")


class Model:
    """A loaded instance-segmentation model. Create with ``edgeseg.load``.

    Calling it is thread-safe: a Model holds no per-call state, so one instance can serve
    several threads (ONNX Runtime runs concurrent sessions calls safely).
    """

    def __init__(self, runtime: Runtime, spec: ModelSpec, rect: bool = True, max_batch: int = 8) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.runtime = runtime
        self.spec = spec
        self.rect = rect
        self.max_batch = spec.batch if spec.batch is not None else max_batch
        self._head = make_head(spec)
        self._first_inference_checked = False

    def __repr__(self) -> str:
        spec = self.spec
        return (
            f"Model({spec.path!r}, family={spec.family}, head={spec.head}, runtime={self.runtime.name}, "
            f"classes={spec.num_classes})"
        )

    def with_output_quant(self, quant: Mapping[str, tuple[str, float, int]]) -> Model:
        """This model, for raw outputs that another runtime returns as integers (an NPU's int8 outputs).

        NPU runtimes (RKNN with ``want_float=False``, Hailo, QNN) hand back each output as int8/uint8 with its
        own scale and zero point, which the ONNX file the model was converted from does not carry. The returned
        Model (sharing this one's runtime) decodes such arrays in the integer domain with ``postprocess``.

        Args:
            quant: output name -> (dtype ``"int8"`` or ``"uint8"``, scale, zero point), for some or all outputs.
        """
        by_name = {o.name: i for i, o in enumerate(self.spec.outputs)}
        unknown = sorted(set(quant) - set(by_name))
        if unknown:
            raise ValueError(f"no output named {', '.join(unknown)}; the outputs are: {', '.join(by_name)}")
        outputs = list(self.spec.outputs)
        for name, value in quant.items():
            try:
                dtype, scale, zero_point = value
                dtype = np.dtype(dtype)
                scale, zero_point = float(scale), int(zero_point)
            except (TypeError, ValueError):
                raise ValueError(f"quant of {name} must be (dtype, scale, zero_point), got {value!r}") from None
            if dtype not in (np.int8, np.uint8) or not (np.isfinite(scale) and scale > 0):
                raise ValueError(f"quant of {name}: dtype must be int8 or uint8 and scale positive, got {value!r}")
            info = outputs[by_name[name]]
            outputs[by_name[name]] = TensorInfo(info.name, info.shape, dtype, scale, zero_point)
        spec = replace(self.spec, outputs=tuple(outputs))
        return Model(self.runtime, spec, rect=self.rect, max_batch=self.max_batch)

    @property
    def head(self) -> Head:
        """The decoder of this model's raw outputs (``head(outputs, index, letterbox, options)`` -> Instances),
        for timing or reusing the postprocess without building Results; ``postprocess`` wraps it."""
        return self._head

    @property
    def names(self) -> tuple[str, ...]:
        """Class names by class index."""
        return self.spec.names

    @overload
    def __call__(self, images: ImageSource, conf: float | None = ..., iou: float | None = ...,
                 max_det: int | None = ..., classes: ClassSelector | None = ..., agnostic: bool = ..., *,
                 rgb: bool = ..., soft_masks: bool = ..., pre_nms_topk: int = ...,
                 nms: str | None = ...) -> Result: ...  # fmt: skip

    @overload
    def __call__(self, images: Sequence[ImageSource], conf: float | None = ..., iou: float | None = ...,
                 max_det: int | None = ..., classes: ClassSelector | None = ..., agnostic: bool = ..., *,
                 rgb: bool = ..., soft_masks: bool = ..., pre_nms_topk: int = ...,
                 nms: str | None = ...) -> list[Result]: ...  # fmt: skip

    def __call__(
        self,
        images: ImageSource | Sequence[ImageSource],
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        classes: ClassSelector | None = None,
        agnostic: bool = False,
        *,
        rgb: bool = False,
        soft_masks: bool = False,
        pre_nms_topk: int = 30000,
        nms: str | None = None,
    ) -> Result | list[Result]:
        """Segment one image or a list of images.

        Args:
            images: a path, a uint8 array (BGR, OpenCV's convention), or a list of them. Lists go
                through the model in batches when its batch dimension allows.
            conf: minimum class score (strictly above) of a detection. Default: the family's
                reference (``model.spec.defaults``; 0.25 for YOLO, 0.05 for YOLACT, ...).
            iou: IoU above which NMS suppresses the lower-scoring of two boxes (or masks). Default: the
                family's reference.
            max_det: most detections kept per image. Default: the family's reference.
            classes: keep only these classes (indices or names).
            agnostic: NMS across classes instead of within each class.
            rgb: arrays are RGB rather than BGR.
            soft_masks: also compute per-pixel probabilities (``result.masks.soft(i)``).
            pre_nms_topk: most candidates entering NMS, highest scores first.
            nms: ``"box"`` (greedy by box IoU), ``"fast"`` (YOLACT's Fast NMS), ``"matrix"`` (SOLOv2's
                Matrix NMS, Gaussian decay) or ``"mask"`` (greedy by the IoU of the masks, which keeps
                overlapping parts apart). Default: the family's reference.

        Returns:
            A ``Result`` for a single image, a list of them for a list.
        """
        single = isinstance(images, (str, bytes, os.PathLike, np.ndarray))
        if not single and not isinstance(images, (list, tuple)):
            raise ImageError(f"expected an image path, a uint8 array, or a list of them; got {type(images).__name__}")
        items = [images] if single else list(images)
        if not items:
            raise ImageError("no images given: pass a path, an array, or a non-empty list of them")
        options = self.options(conf, iou, max_det, classes, agnostic, soft_masks, pre_nms_topk, nms)
        results: list[Result] = []
        for start in range(0, len(items), self.max_batch):
            results.extend(self._run_batch(items[start : start + self.max_batch], options, rgb))
        return results[0] if single else results

    def stream(
        self,
        source: StreamSource,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        classes: ClassSelector | None = None,
        agnostic: bool = False,
        *,
        track: bool = True,
        tracker: Tracker | TrackerConfig | None = None,
        counters: Counters = None,
        realtime: bool | None = None,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        reconnect: int = 5,
        timeout: float = 10.0,
        keep_images: bool = True,
        soft_masks: bool = False,
        pre_nms_topk: int = 30000,
        nms: str | None = None,
    ) -> Stream:
        """Segment (and track, and count) every frame of a video source, in a pipeline of threads.

        >>> with model.stream("belt.mp4", counters=[LineCounter((320, 0, 320, 384))]) as stream:  # doctest: +SKIP
        ...     for result in stream:
        ...         print(result.frame_index, result.track_ids, result.counters)
        ...     print(stream.summary())

        Args:
            source: a video file, a camera (int index or ``/dev/videoN``), an ``rtsp://``/``http(s)://`` URL,
                a GStreamer pipeline ending in ``appsink``, an image folder or glob, or an iterable of BGR
                arrays (or ``(array, seconds)`` pairs). See ``edgeseg.sources.open_source``.
            conf, iou, max_det, classes, agnostic, soft_masks, pre_nms_topk, nms: as for ``model(image)``.
            track: give instances stable ``track_ids`` across frames (ByteTrack-style, mask IoU).
            tracker: a ``Tracker`` (to keep its state or read its tracks) or a ``TrackerConfig``; default
                ``Tracker()``.
            counters: ``LineCounter``/``ZoneCounter`` objects (a list, or a dict by name) updated every
                frame; their totals are in each ``result.counters`` and in ``stream.summary()``.
            realtime: ``True`` plays files and folders at their own frame rate, dropping frames the model
                cannot keep up with, as a camera would; ``False`` never drops, even for live sources. Default:
                live sources (cameras, network streams) drop stale frames (newest wins), others never drop.
            width, height, fps: requested camera mode; ``fps`` also times folders and iterables.
            reconnect, timeout: network streams: reopen attempts after a stall or disconnect (with backoff)
                and the seconds without a frame that count as a stall.
            keep_images: put each frame in ``result.image`` (turn off to save memory when not drawing).

        Returns:
            A ``Stream``: iterate it for Results (with ``frame_index``, ``timestamp``, ``image``,
            ``track_ids``, ``track_classes``, ``counters`` and ``timings["latency"]``); read ``stats`` or
            ``summary()`` for frames in, processed, dropped, reconnects and latency.

        Raises:
            SourceError: the source cannot be opened (the message says why and what to do).
        """
        from .sources import open_source
        from .stream import Stream

        options = self.options(conf, iou, max_det, classes, agnostic, soft_masks, pre_nms_topk, nms)
        user_conf = options.conf
        if track:
            from .track import Tracker, TrackerConfig

            if tracker is None or isinstance(tracker, TrackerConfig):
                tracker = Tracker(tracker)
            elif not isinstance(tracker, Tracker):
                raise ValueError(f"tracker must be a Tracker or a TrackerConfig, got {type(tracker).__name__}")
            # ByteTrack's second stage continues tracks with detections below the caller's threshold.
            low = tracker.config.low_thresh
            if low < options.conf:
                options = replace(options, conf=float(low))
        elif tracker is not None:
            raise ValueError("tracker= given with track=False")
        src = open_source(source, width=width, height=height, fps=fps, reconnect=reconnect, timeout=timeout)
        try:
            return Stream(
                self,
                src,
                options,
                conf=user_conf,
                tracker=tracker if track else None,
                counters=counters,
                realtime=realtime,
                keep_images=keep_images,
            )
        except BaseException:
            src.close()
            raise

    def _class_flags(self, classes: ClassSelector | None) -> np.ndarray | None:
        if classes is None:
            return None
        if isinstance(classes, (int, str, np.integer)):
            classes = [classes]
        if not isinstance(classes, Iterable):
            raise ValueError(f"classes must be class names or indices (or a list of them), got {classes!r}")
        flags = np.zeros(self.spec.num_classes, dtype=np.uint8)
        for c in classes:
            if isinstance(c, str):
                if c not in self.spec.names:
                    raise ValueError(
                        f"unknown class name {c!r}; this model's classes are: {', '.join(self.spec.names)}"
                    )
                flags[self.spec.names.index(c)] = 1
            elif isinstance(c, (int, np.integer)) and not isinstance(c, bool) and 0 <= c < self.spec.num_classes:
                flags[int(c)] = 1
            else:
                raise ValueError(f"class {c!r} is not a class name or an index in [0, {self.spec.num_classes})")
        return flags

    def input_size(self, image_shapes: Sequence[tuple[int, int]]) -> tuple[int, int]:
        """The model input (height, width) used for a batch of images of these (height, width)s."""
        if self.spec.dynamic_hw and self.rect and len(set(image_shapes)) == 1:
            return fit_input_size(image_shapes[0], self.spec.imgsz, self.spec.stride)
        return self.spec.imgsz

    def preprocess(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Letterbox]]:
        """The model's input tensor for BGR uint8 images, and where each image sits in it.

        Fitted to ``input_size`` as ``spec.preprocess`` says (resize mode, padding, channel order,
        mean/std), in the input's layout and dtype (quantized inputs straight from pixels). For using
        the raw outputs yourself: ``model.infer(tensor)``, then ``model.postprocess``.
        """
        return make_input(images, self.spec, self.input_size([im.shape[:2] for im in images]))

    def options(
        self,
        conf: float | None = None,
        iou: float | None = None,
        max_det: int | None = None,
        classes: ClassSelector | None = None,
        agnostic: bool = False,
        soft_masks: bool = False,
        pre_nms_topk: int = 30000,
        nms: str | None = None,
    ) -> PostprocessOptions:
        """Checked postprocess settings (see ``__call__``), for ``postprocess`` and pipelines; None takes
        the family's reference default (``spec.defaults``)."""
        d = self.spec.defaults
        conf = d.conf if conf is None else conf
        iou = d.iou if iou is None else iou
        max_det = d.max_det if max_det is None else max_det
        nms = d.nms if nms is None else nms
        _check_settings(conf, iou, max_det, pre_nms_topk)
        if nms not in NMS_KINDS:
            raise ValueError(f"nms must be one of {', '.join(map(repr, NMS_KINDS))}, got {nms!r}")
        return PostprocessOptions(
            conf=float(conf),
            iou=float(iou),
            max_det=int(max_det),
            pre_nms_topk=int(pre_nms_topk),
            agnostic=bool(agnostic),
            class_allowed=self._class_flags(classes),
            soft_masks=bool(soft_masks),
            nms=nms,
            mask_threshold=d.mask_threshold,
        )

    def infer(self, tensor: np.ndarray) -> list[np.ndarray]:
        """The raw outputs of the model for an input tensor made by ``preprocess``."""
        outputs = self.runtime.run({self.spec.input.name: tensor})
        if not self._first_inference_checked:
            self._first_inference_checked = True  # a benign race: at worst two threads both check
            self._warn_if_degenerate(outputs)
        return outputs

    def postprocess(
        self, outputs: list[np.ndarray], letterboxes: Sequence[Letterbox], options: PostprocessOptions
    ) -> list[Result]:
        """Instances of each image of a batch from the raw ``outputs`` of ``infer``.

        ``letterboxes`` are the ones ``preprocess`` returned, one per image; ``options`` come from
        ``options()``. Each Result's ``timings`` holds its ``postprocess`` milliseconds.
        """
        results = []
        for i, lb in enumerate(letterboxes):
            t0 = time.perf_counter()
            inst = self._head(outputs, i, lb, options)
            results.append(
                Result(
                    boxes=inst.boxes,
                    scores=inst.scores,
                    class_ids=inst.class_ids,
                    names=self.spec.names,
                    masks=inst.masks,
                    image_shape=(lb.src_h, lb.src_w),
                    timings={"postprocess": (time.perf_counter() - t0) * 1e3},
                )
            )
        return results

    def _run_batch(self, sources: list[ImageSource], options: PostprocessOptions, rgb: bool) -> list[Result]:
        t0 = time.perf_counter()
        images = [read_image(s, rgb=rgb) for s in sources]
        tensor, boxes = self.preprocess(images)
        t1 = time.perf_counter()
        outputs = self.infer(tensor)
        t2 = time.perf_counter()
        n = len(images)
        pre_ms, inf_ms = (t1 - t0) * 1e3 / n, (t2 - t1) * 1e3 / n
        results = self.postprocess(outputs, boxes, options)
        for source, result in zip(sources, results):
            result.timings = {"preprocess": pre_ms, "inference": inf_ms, **result.timings}
            result.path = Path(source) if isinstance(source, (str, os.PathLike)) else None
        return results

    def _warn_if_degenerate(self, outputs: list[np.ndarray]) -> None:
        from .health import inspect_outputs

        report = inspect_outputs(self.spec, outputs, None)  # the user's frame may hold nothing: scores prove nothing
        for problem in report.problems:
            log.warning("%s: %s. Run `edgeseg info %s --check` for details.", self.spec.path, problem, self.spec.path)


MAX_COUNT = 2**31 - 1  # max_det and pre_nms_topk beyond this are typos: the core counts in int32-sized buffers


def _check_settings(conf: float, iou: float, max_det: int, pre_nms_topk: int) -> None:
    # Checked before any work: a typo should not cost an inference (the core checks again). Strict
    # types: bools are ints to Python and 1.5 would silently become 1, so both are refused.
    for name, value in (("conf", conf), ("iou", iou)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value!r}")
    for name, value, low in (("max_det", max_det, 0), ("pre_nms_topk", pre_nms_topk, 1)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
        if not low <= value <= MAX_COUNT:
            raise ValueError(f"{name} must be in [{low}, {MAX_COUNT}], got {value!r}")


MODEL_SUFFIXES = (".onnx", ".tflite")


def _model_in_directory(folder: Path) -> Path:
    """The model of a work directory (MMDeploy's ``end2end.onnx`` beside ``pipeline.json``), or a
    ModelError listing what is there."""
    preferred = folder / "end2end.onnx"
    if preferred.is_file():
        return preferred
    models = sorted(f for f in folder.iterdir() if f.suffix.lower() in MODEL_SUFFIXES and f.is_file())
    if len(models) == 1:
        return models[0]
    found = ", ".join(f.name for f in models) or "no .onnx or .tflite file"
    raise ModelError(f"{folder}: a directory needs exactly one model file (or end2end.onnx); found {found}")


def _looks_like_name(path: str | os.PathLike) -> bool:
    return isinstance(path, str) and not Path(path).suffix and os.sep not in path and "/" not in path


def load(
    path: str | os.PathLike,
    *,
    providers: Sequence[Any] | None = None,
    threads: int | None = None,
    session_options: Any = None,
    imgsz: int | Sequence[int] | None = None,
    rect: bool = True,
    names: Sequence[str] | None = None,
    max_batch: int = 8,
    delegates: Sequence[Any] | None = None,
    xnnpack: bool = True,
    prototypes_layout: str | None = None,
    head: str | None = None,
    options: dict[str, Any] | None = None,
) -> Model:
    """Load a segmentation model; everything about it is read from the file.

    Args:
        path: a model file, or (when no such file exists) a model name from ``edgeseg.zoo``
            (``"yolov8n-seg"``; see ``edgeseg models``) or an http(s) URL, resolved through the
            verified download cache (``$EDGESEG_HOME``, default ``~/.cache/edgeseg``).
            The file: an ``.onnx`` file (Ultralytics YOLOv8/YOLO11-seg export: raw or end-to-end,
            float or dynamically quantized, fixed or dynamic input size) or a ``.tflite`` file
            (float, or int8 with float or int8 input and outputs; needs ``edgeseg[tflite]``).
        providers: ONNX Runtime execution providers in priority order, e.g. ``["tensorrt", "cuda"]``;
            unavailable ones are skipped with a warning; CPU is always the last resort.
        threads: intra-op threads (default: the runtime's choice).
        session_options: ``onnxruntime.SessionOptions`` or a dict of its attributes.
        imgsz: input size for dynamic-size models (int or (h, w)); default from the model's metadata.
        rect: for dynamic-size models, letterbox to the smallest stride multiple that holds the
            image (e.g. 384x640 for 16:9) instead of the full ``imgsz`` square.
        names: class names overriding the model's own.
        max_batch: most images per inference call for models with a dynamic batch dimension.
        delegates: ``.tflite`` only: LiteRT external delegates by library path (Edge TPU, GPU, NPU),
            optionally ``(path, options)``; a delegate that cannot be loaded is an error.
        xnnpack: ``.tflite`` only: use LiteRT's XNNPACK CPU delegate (default).
        prototypes_layout: ``"NCHW"`` or ``"NHWC"``: the layout of the prototypes output, only for a
            model whose shapes cannot tell (loading one says so); read from the model by default.
        head: the model family (``"yolo"``, ``"yolact"``, ``"dets"``, ``"rtmdet"``, ``"solov2"``) when the
            outputs fit several; read from the model by default.
        options: family-specific load options (each family's module lists its own).
    """
    p = Path(path)
    if p.is_dir():
        p = _model_in_directory(p)
    if not p.is_file():
        from . import zoo

        if not zoo.is_model_name(path):
            hint = f" (nor a model name: {', '.join(sorted(zoo.REGISTRY))})" if _looks_like_name(path) else ""
            raise ModelError(f"{p}: no such model file{hint}")
        p = zoo.resolve(str(path))
    if p.suffix.lower() == ".tflite":
        if providers is not None or session_options is not None:
            raise ValueError("providers and session_options apply to ONNX models; .tflite models take delegates=")
        runtime = open_runtime(p, threads=threads, delegates=delegates, xnnpack=xnnpack)
    else:
        if delegates is not None:
            raise ValueError("delegates apply to .tflite models; ONNX models take providers=")
        runtime = open_runtime(p, providers=providers, threads=threads, session_options=session_options)
    spec = build_spec(
        str(p), runtime, names=names, imgsz=imgsz, prototypes_layout=prototypes_layout, head=head, options=options
    )
    return Model(runtime, spec, rect=rect, max_batch=max_batch)
