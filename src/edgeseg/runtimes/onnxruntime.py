"""ONNX Runtime backend."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Union

import numpy as np

from ..errors import ModelError
from ..modelfile import onnx_graph_problem
from .base import TensorInfo

log = logging.getLogger("edgeseg")

# Short names users type on a device, mapped to ONNX Runtime's provider names.
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "xnnpack": "XnnpackExecutionProvider",
    "acl": "ACLExecutionProvider",
    "armnn": "ArmNNExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "dml": "DmlExecutionProvider",
}

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}

ProviderSpec = Union[str, tuple[str, dict[str, Any]]]


def resolve_providers(requested: Sequence[ProviderSpec] | None, available: Sequence[str]) -> list[ProviderSpec]:
    """Requested providers in priority order, minus the ones this onnxruntime build lacks, CPU last.

    A requested provider that is not available is dropped with a logged warning, so the same
    configuration runs on a Jetson (TensorRT, CUDA) and on a laptop (CPU).
    """
    chosen: list[ProviderSpec] = []
    for spec in requested or ["cpu"]:
        name, opts = (spec, None) if isinstance(spec, str) else spec
        full = PROVIDER_ALIASES.get(name.lower(), name)
        if full not in available:
            log.warning(
                "execution provider %s is not available in this onnxruntime build (available: %s); skipping it",
                full,
                ", ".join(available),
            )
            continue
        chosen.append(full if opts is None else (full, opts))
    names = [c if isinstance(c, str) else c[0] for c in chosen]
    if "CPUExecutionProvider" not in names:
        chosen.append("CPUExecutionProvider")
    return chosen


class OnnxRuntime:
    """An ONNX model in an ``onnxruntime.InferenceSession``.

    Args:
        path: the ``.onnx`` file.
        providers: execution providers in priority order, as ONNX Runtime names or short aliases
            (``"cuda"``, ``"tensorrt"``, ``"openvino"``, ``"xnnpack"``, ``"acl"``), optionally as
            ``(name, provider_options)`` pairs. Default: CPU.
        threads: intra-op thread count (default: ONNX Runtime's choice, one per core).
        session_options: an ``onnxruntime.SessionOptions``, or a dict of its attributes
            (e.g. ``{"graph_optimization_level": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}``).
    """

    name = "onnxruntime"

    def __init__(
        self,
        path: Path,
        providers: Sequence[ProviderSpec] | None = None,
        threads: int | None = None,
        session_options: Any = None,
    ) -> None:
        import onnxruntime as ort

        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads must be a positive integer, got {threads!r}")
        if isinstance(session_options, ort.SessionOptions):
            so = session_options
        else:
            so = ort.SessionOptions()
            for key, value in (session_options or {}).items():
                if not hasattr(so, key):
                    raise ValueError(f"onnxruntime.SessionOptions has no option {key!r}")
                setattr(so, key, value)
        if threads is not None:
            so.intra_op_num_threads = threads
        so.log_severity_level = 3  # keep ONNX Runtime's own warnings out of users' logs
        chosen = resolve_providers(providers, ort.get_available_providers())
        # Before ONNX Runtime sees the graph: its shape inference aborts the process (not an exception) on
        # some corrupt graphs (fuzz finding F17). Checked where the optional onnx package is installed.
        problem = onnx_graph_problem(path)
        if problem:
            raise ModelError(f"{path}: the model graph is corrupt: {problem}. Re-export or re-download it.")
        try:
            self._session = ort.InferenceSession(str(path), sess_options=so, providers=chosen)
            # Read here, inside the guard: a metadata value or a dimension name that is not UTF-8 fails
            # in the bindings (UnicodeDecodeError).
            self._metadata = dict(self._session.get_modelmeta().custom_metadata_map)
            self._inputs = [_info(t) for t in self._session.get_inputs()]
            self._outputs = _with_output_quant(path, self._metadata, [_info(t) for t in self._session.get_outputs()])
        except Exception as exc:  # onnxruntime raises several private exception types
            raise ModelError(
                f"{path}: ONNX Runtime cannot load this file ({type(exc).__name__}: {str(exc).strip()[:300]}). "
                "Is it a complete, valid .onnx model? Re-export or re-download it."
            ) from exc
        self._path = path
        self._threads = threads

    @property
    def inputs(self) -> list[TensorInfo]:
        """The model's inputs."""
        return self._inputs

    @property
    def outputs(self) -> list[TensorInfo]:
        """The model's outputs."""
        return self._outputs

    @property
    def metadata(self) -> dict[str, str]:
        """The ONNX custom metadata map (Ultralytics stores names, imgsz, stride, task there)."""
        return self._metadata

    @property
    def providers(self) -> list[str]:
        """Providers the session actually uses."""
        return list(self._session.get_providers())

    @property
    def threads(self) -> int | None:
        """Intra-op threads requested."""
        return self._threads

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the session (thread-safe: ONNX Runtime allows concurrent ``run`` on one session).

        Raises ``ModelError`` when ONNX Runtime fails (a graph that cannot run this input), never one
        of its private exception types.
        """
        try:
            return self._session.run(None, feeds)
        except Exception as exc:  # onnxruntime's private exception types, none a ValueError
            raise ModelError(
                f"{self._path}: ONNX Runtime failed to run the model ({type(exc).__name__}: {str(exc).strip()[:300]})"
            ) from exc


OUTPUT_QUANT_KEY = "edgeseg.output_quant"  # metadata: JSON {output name: [scale, zero_point]}


def _with_output_quant(path: Path, metadata: dict[str, str], outputs: list[TensorInfo]) -> list[TensorInfo]:
    """Integer outputs with their quantization: from the metadata ``edgeseg quantize`` writes, else from the
    QuantizeLinear that makes each one in the graph (read with the onnx package, where installed).

    ONNX Runtime reports an int8 output's dtype but not its scale; without one the output is left as it is
    and the family's loader says which output lacks it.
    """
    wanted = [o.name for o in outputs if o.dtype in (np.int8, np.uint8)]
    if not wanted:
        return outputs
    found: dict[str, tuple[float, int]] = {}
    if OUTPUT_QUANT_KEY in metadata:
        try:
            table = json.loads(metadata[OUTPUT_QUANT_KEY])
            found = {str(k): (float(v[0]), int(v[1])) for k, v in table.items()}
        except (ValueError, TypeError, KeyError, IndexError) as exc:
            raise ModelError(
                f"{path}: metadata {OUTPUT_QUANT_KEY} is not {{name: [scale, zero_point]}} ({exc})"
            ) from None
    missing = [n for n in wanted if n not in found]
    if missing:
        found.update(_graph_output_quant(path, missing))
    return [
        TensorInfo(o.name, o.shape, o.dtype, *found[o.name]) if o.name in found and o.name in wanted else o
        for o in outputs
    ]


def _graph_output_quant(path: Path, names: list[str]) -> dict[str, tuple[float, int]]:
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError:
        return {}
    graph = onnx.load(str(path), load_external_data=False).graph
    inits = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    found = {}
    for name in names:
        node = producer.get(name)
        while node is not None and node.op_type == "Identity":  # renamed outputs
            node = producer.get(node.input[0])
        if node is None or node.op_type != "QuantizeLinear" or len(node.input) < 3:
            continue
        scale, zp = inits.get(node.input[1]), inits.get(node.input[2])
        if scale is None or zp is None:
            continue
        s, z = numpy_helper.to_array(scale), numpy_helper.to_array(zp)
        if s.size == 1 and z.size == 1:  # per-tensor only: the core's Quant
            found[name] = (float(s.reshape(())), int(z.reshape(())))
    return found


def _info(arg: Any) -> TensorInfo:
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in arg.shape)
    return TensorInfo(arg.name, shape, np.dtype(_ORT_DTYPES.get(arg.type, object)))
