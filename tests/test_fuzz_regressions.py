"""Regression tests for what the fuzz harnesses in fuzz/ found (issue 12), one test per finding F<n>.

Each test is the finding's reproducer with the behaviour edgeseg promises: a ``ValueError`` (or a
well-formed result), never a crash, another exception type, or gigabytes of memory. Reproducers
that crash the interpreter or allocate without bound run in a subprocess (under an address-space
cap where that keeps a machine safe), so an open finding fails its test instead of killing pytest.

A finding still open in the core or the Python code is marked ``xfail(strict=True)`` through
``OPEN_FINDINGS`` (fuzz/findings.py): when a fix lands the test XPASSes, which fails the run until the entry is deleted
(then the test guards the fix). Keep ``OPEN_FINDINGS`` in fuzz/findings.py in step: the harnesses
step around open findings so CI fuzzing looks for new ones.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable, TypeVar

import numpy as np
import pytest

import edgeseg
from edgeseg import ModelError, _core

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "fuzz"))
from findings import OPEN_FINDINGS  # noqa: E402

# Findings not fixed yet (strict xfail): fuzz/findings.py's OPEN_FINDINGS, which the harnesses step around.
# Delete an entry there when its fix lands. Fixed since they were found (the tests below guard them): F1, F2,
# F3, F4 (plans follow the boxes' span), F5-F17.
OPEN = OPEN_FINDINGS


def finding(name: str) -> Callable[[T], T]:
    """The strict xfail marker of an open finding; nothing once it is fixed (the test then guards it)."""
    if name in OPEN:
        return pytest.mark.xfail(strict=True, reason=f"open finding {name}: {OPEN[name]}")
    return lambda test: test


def run_isolated(code: str, mem_mb: int | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter (with an address-space cap of ``mem_mb``); it prints ``OK`` when
    the behaviour is right."""
    prelude = "import resource, sys\n"
    if mem_mb is not None:
        prelude += f"resource.setrlimit(resource.RLIMIT_AS, ({mem_mb} << 20, {mem_mb} << 20))\n"
    prelude += f"sys.path.insert(0, {str(ROOT / 'fuzz')!r})\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    """The isolated reproducer ran to the end and printed OK (a negative returncode is a signal)."""
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), (
        f"returncode {proc.returncode}\nstdout: {proc.stdout[-2000:]}\nstderr: {proc.stderr[-2000:]}"
    )


def value_error_message(fn) -> str:
    """The message of the ValueError ``fn()`` must raise; C++ internals must not leak into it."""
    with pytest.raises(ValueError) as info:
        fn()
    msg = str(info.value)
    assert msg and not msg.startswith(("vector::", "std::", "basic_string")), msg
    return msg


# ------------------------------------------------------------------------------------------------------
# C++ core


@finding("F1")
def test_f1_decode_yolo_huge_num_classes_does_not_crash() -> None:
    """Guards F1: `4 + num_classes` overflowed int64, passed the feature check, and the class loop
    read far out of bounds (SIGSEGV). fuzz_decode_yolo."""
    assert_ok(
        run_isolated(
            """
            import numpy as np
            from edgeseg import _core
            pred = np.ones((10, 5), np.float32)
            for nc in (2**63 - 3, 2**63 - 1):
                try:
                    _core.decode_yolo(pred, nc, 0.25, 0.7, 300, 30000, False)
                except ValueError:
                    continue
                raise SystemExit("no ValueError")
            print("OK")
            """
        )
    )


@finding("F2")
def test_f2_assemble_masks_prototypes_wider_than_int32_do_not_crash() -> None:
    """Guards F2: a (zero-stride) prototype array 2**32 wide overflowed the int32 start index of the
    axis plan and read before the logit buffer (SIGSEGV). fuzz_masks."""
    assert_ok(
        run_isolated(
            """
            import numpy as np
            from edgeseg import _core
            W = 2**32
            protos = np.broadcast_to(np.float32(1), (1, 1, W))
            coeffs = np.ones((1, 1), np.float32)
            boxes = np.array([[0, 0, 4, 1]], np.float32)
            try:
                keep, rects, *_ = _core.assemble_masks(protos, coeffs, boxes, (1, W), (1, 4))
                assert (rects[:, 0] + rects[:, 2] <= 4).all()  # or a well-formed result
            except ValueError:
                pass
            print("OK")
            """,
            mem_mb=4096,
        )
    )


@finding("F3")
def test_f3_rle_encode_rejects_images_whose_area_overflows() -> None:
    """Guards F3: `image_h * image_w` overflowed int64 (2**62 x 4 wraps to 0), passed the 32-bit check
    and returned counts that do not add up to the image. fuzz_rle."""
    bits, offsets, rects = np.ones(1, np.uint8), np.array([0, 1], np.int64), np.array([[0, 0, 1, 1]], np.int32)
    for image_hw in [(2**62, 4), (2**32, 2**32), (2**63 - 1, 2**63 - 1)]:
        value_error_message(lambda hw=image_hw: _core.rle_encode(bits, offsets, rects, hw))


def test_f4_assemble_masks_rejects_images_beyond_int32() -> None:
    """Guards F4 (fixed part): image sizes were not validated: (1, 2**40) raised MemoryError(std::bad_alloc)
    and (2**62, 2**62) ValueError('vector::_M_default_append'). fuzz_masks."""
    protos, coeffs = np.ones((1, 4, 4), np.float32), np.ones((1, 1), np.float32)
    boxes = np.array([[0, 0, 4, 1]], np.float32)
    for hw in [(1, 2**40), (2**62, 2**62), (2**31, 1), (1, 2**31)]:
        value_error_message(lambda hw=hw: _core.assemble_masks(protos, coeffs, boxes, (16, 16), hw))


@finding("F4")
def test_f4_assemble_masks_memory_does_not_scale_with_the_image_side() -> None:
    """Guards F4: the axis plans covered every row and column of the image, whatever the boxes (20 bytes
    each): a 4-pixel mask in a 1 x 2**28 image took 5 GB, and 1 x (2**31 - 1), which passes validation,
    raised MemoryError(std::bad_alloc). Now they cover the boxes' span: a result within 3 GB."""
    assert_ok(
        run_isolated(
            """
            import numpy as np
            from edgeseg import _core
            protos, coeffs = np.ones((1, 4, 4), np.float32), np.ones((1, 1), np.float32)
            boxes = np.array([[0, 0, 4, 1]], np.float32)
            for hw in [(1, 2**31 - 1), (2**31 - 1, 1), (1, 2**28)]:
                try:
                    keep, rects, *_ = _core.assemble_masks(protos, coeffs, boxes, (16, 16), hw)
                    assert rects.tolist() == [[0, 0, min(4, hw[1]), 1]] or len(keep) == 0, rects
                except ValueError as exc:
                    assert not str(exc).startswith(("vector::", "std::")), str(exc)
            print("OK")
            """,
            mem_mb=3072,
        )
    )


@finding("F5")
def test_f5_unletterbox_boxes_rejects_nan() -> None:
    """Guards F5: NaN coordinates came back as NaN (std::clamp passes NaN through) where every other
    entry point raises ValueError for non-finite boxes. fuzz_letterbox."""
    lb = _core.make_letterbox(100, 200, 64, 64)
    boxes = np.array([[np.nan, 1, 2, 3]], np.float32)
    value_error_message(lambda: _core.unletterbox_boxes(boxes, lb))


@finding("F6")
def test_f6_quantized_decode_never_returns_infinite_scores() -> None:
    """Guards F6: with an int8 prediction and scale 3e38, a raw score of 2 dequantizes to +inf and was
    returned as a detection score (float predictions with inf scores raise ValueError). fuzz_decode_yolo."""
    pred = np.zeros((4 + 2 + 1, 3), np.int8)
    pred[4, 0] = 2
    try:
        _, scores, _, _ = _core.decode_yolo(pred, 2, 0.25, 0.7, 300, 30000, False, quant=(3e38, 0))
    except ValueError:
        return
    assert np.isfinite(scores).all(), scores


@finding("F7")
def test_f7_make_letterbox_huge_sizes_are_rejected_or_exact() -> None:
    """Guards F7: sizes past 2**53 are computed in double: near INT64_MAX the double->int64 conversion of
    the resized size overflowed (new size 1 instead of ~2**63) and padding was off by more than a pixel.
    fuzz_letterbox."""
    for args in [(1, 1, 2**63 - 1, 2**63 - 1), (563, 2**31, 2**63 - 1, 2320)]:
        try:
            lb = _core.make_letterbox(*args)
        except ValueError:
            continue
        src_h, src_w, dst_h, dst_w = args
        r = min(dst_h / src_h, dst_w / src_w)
        assert abs(lb.new_w - max(src_w * r, 1)) <= 1 + 1e-12 * src_w * r, lb
        assert abs(lb.new_h - max(src_h * r, 1)) <= 1 + 1e-12 * src_h * r, lb
        assert abs((dst_h - lb.new_h - lb.pad_top) - lb.pad_top) <= 1, lb


@finding("F8")
@pytest.mark.parametrize("quant", [(1.0,), "q", (1.0, 2, 3), (0.1, 3.5), (1.0, 2**40)], ids=repr)
def test_f8_malformed_quant_is_a_value_error(quant) -> None:
    """Guards F8: a quant that is not a (float, int32) pair raised RuntimeError('Unable to cast Python
    instance ...') from pybind11. fuzz_decode_yolo, fuzz_decode_e2e, fuzz_masks."""
    pred = np.zeros((7, 3), np.int8)
    value_error_message(lambda: _core.decode_yolo(pred, 2, 0.25, 0.7, 300, 30000, False, quant=quant))
    rows = np.zeros((3, 8), np.int8)
    value_error_message(lambda: _core.decode_yolo_e2e(rows, 2, 0.25, 300, quant=quant))
    protos = np.zeros((2, 4, 4), np.uint8)
    coeffs, boxes = np.ones((1, 2), np.float32), np.array([[0, 0, 4, 4]], np.float32)
    value_error_message(lambda: _core.assemble_masks(protos, coeffs, boxes, (16, 16), (4, 4), quant=quant))


@finding("F9")
def test_f9_huge_prototypes_are_a_value_error_or_work() -> None:
    """Guards F9: zero-stride prototype arrays of 2**26 and more columns raised RuntimeError('mask
    resampling needs too many taps') (float32 positions lose whole pixels); 2**20 x 2**20 prototypes
    for a 342 x 342 image allocated the logit window in prototype pixels (MemoryError). fuzz_masks."""
    assert_ok(
        run_isolated(
            """
            import numpy as np
            from edgeseg import _core
            cases = [
                (np.broadcast_to(np.float32(1), (1, 3, 2**26)), np.zeros((0, 1), np.float32),
                 np.zeros((0, 4), np.float32), (6, 2**27), (2, 141)),
                (np.broadcast_to(np.float32(1), (7, 2**20, 2**20)), np.ones((1, 7), np.float32),
                 np.array([[94, 113, 364, 464]], np.float32), (2**20, 2**20), (342, 342)),
            ]
            for protos, coeffs, boxes, input_hw, image_hw in cases:
                try:
                    _core.assemble_masks(protos, coeffs, boxes, input_hw, image_hw)
                except ValueError:
                    pass
            print("OK")
            """,
            mem_mb=3072,
        )
    )


@finding("F10")
def test_f10_zero_point_near_int32_limits_does_not_wrap() -> None:
    """Guards F10: `raw - zero_point` in int32 overflowed for zero_point = -2**31 (undefined behaviour):
    scores wrapped to about -2e8 and detections below conf were returned. fuzz_decode_yolo."""
    pred = np.zeros((4 + 12 + 6, 1), np.int8)
    pred[4:16, 0] = np.arange(-31, 89, 10)
    for zero_point in (-(2**31), 2**31 - 1):
        try:
            _, scores, _, _ = _core.decode_yolo(pred, 12, 0.09, 0.7, 83, 4622, False, quant=(0.1, zero_point))
        except ValueError:
            continue
        assert (scores > np.float32(0.09)).all(), scores


# ------------------------------------------------------------------------------------------------------
# Python: load, Model, read_image


def tiny_model(tmp_path: Path, name: str = "m.onnx", **plan: object) -> Path:
    """A tiny YOLO-seg-shaped ONNX model from fuzz/tinymodels.py."""
    pytest.importorskip("onnx")
    import tinymodels

    path = tmp_path / name
    path.write_bytes(tinymodels.build_bytes(tinymodels.Plan(**plan)))
    return path


@finding("F11")
def test_f11_input_with_one_fixed_side_is_not_an_onnxruntime_error(tmp_path: Path) -> None:
    """Guards F11: a model input [1, 3, 64, ?] was letterboxed to sizes ignoring the fixed side, and
    onnxruntime's InvalidArgument escaped from load (the probe at 640 x 640 without imgsz metadata) and
    from calls (a 20 x 64 image letterboxed to 32 x 64). fuzz_load."""
    meta = {"names": "{0: 'a', 1: 'b'}", "stride": "32", "task": "segment"}
    with_imgsz = tiny_model(
        tmp_path, "a.onnx", height=64, width=None, anchors=16, metadata={**meta, "imgsz": "[64, 64]"}
    )
    without = tiny_model(tmp_path, "b.onnx", height=64, width=None, anchors=16, metadata=meta)
    for path in (with_imgsz, without):
        try:
            model = edgeseg.load(path)
        except ModelError:
            continue
        for shape in ((20, 64, 3), (64, 20, 3), (48, 64, 3)):
            try:
                result = model(np.zeros(shape, np.uint8))
            except ValueError:
                continue
            assert isinstance(result, edgeseg.Result)


@finding("F12")
def test_f12_jpeg_claiming_gigapixels_is_refused_cheaply(tmp_path: Path) -> None:
    """Guards F12: a JPEG of under 1 KB whose header claims 12000 x 12000 pixels (its scan data covers
    16 x 16: libjpeg only warns) decoded to a 432 MB grey image (peak RSS about twice that); a 20000 x
    20000 claim took 2.3 GB. fuzz_read_image. Expected: ImageError, without decoding it."""
    assert_ok(
        run_isolated(
            f"""
            import cv2, numpy as np
            from edgeseg import ImageError
            from edgeseg.io import read_image
            small = np.full((16, 16, 3), 100, np.uint8)
            jpg = bytearray(cv2.imencode(".jpg", small)[1].tobytes())
            i = jpg.index(b"\\xff\\xc0")  # baseline start-of-frame: height, width at +5, +7
            jpg[i + 5 : i + 7] = (12000).to_bytes(2, "big")
            jpg[i + 7 : i + 9] = (12000).to_bytes(2, "big")
            path = {str(tmp_path / "bomb.jpg")!r}
            open(path, "wb").write(jpg)
            try:
                read_image(path)
                raise SystemExit("decoded")
            except ImageError:
                pass
            # VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork + exec from the (large) test process.
            status = open("/proc/self/status").read().split("VmHWM:")[1]
            peak = int(status.split()[0]) // 1024
            assert peak < 400, f"peak RSS {{peak}} MB"
            print("OK")
            """
        )
    )


@finding("F13")
def test_f13_png_with_huge_iend_length_is_refused_before_decoding(tmp_path: Path) -> None:
    """Guards F13: this 57-byte PNG (1 x 1, IEND chunk declaring 0xB9000000 bytes) passed the truncation
    check, which reads chunk types only, and OpenCV allocated the declared length: 3 GB and 4 s. Under
    an address-space cap the allocation fails and read_image reports 'cannot decode'; the file must be
    refused as truncated before OpenCV sees it. fuzz_read_image."""
    png = bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010802000000907f53de"
        "00000000010d3ba4b9000000b900000049454e44ae426082"
    )
    path = tmp_path / "iend.png"
    path.write_bytes(png)
    assert_ok(
        run_isolated(
            f"""
            from edgeseg import ImageError
            from edgeseg.io import read_image
            try:
                read_image({str(path)!r})
                raise SystemExit("decoded")
            except ImageError as exc:
                assert "truncated" in str(exc), str(exc)
            print("OK")
            """,
            mem_mb=2048,
        )
    )


@finding("F14")
def test_f14_absurd_class_count_is_a_model_error(tmp_path: Path) -> None:
    """Guards F14: a Reshape asking for 2**44 features (shape inference reports them; an 861-byte file
    from fuzz_load) made build_spec build 2**44 class names: MemoryError after 5 GB and 18 s, or the
    kernel's OOM killer. Expected: ModelError, quickly."""
    path = tiny_model(
        tmp_path,
        height=None,
        width=None,
        anchors=16,
        reshape_features=2**44,
        metadata={"stride": "32", "task": "segment", "imgsz": "[64, 64]"},
    )
    assert_ok(
        run_isolated(
            f"""
            import edgeseg
            try:
                edgeseg.load({str(path)!r})
                raise SystemExit("loaded")
            except edgeseg.ModelError:
                pass
            print("OK")
            """,
            mem_mb=3072,
            timeout=60,
        )
    )


@finding("F15")
def test_f15_metadata_that_is_not_utf8_is_a_model_error(tmp_path: Path) -> None:
    """Guards F15: a metadata value that is not UTF-8 raised a bare UnicodeDecodeError from onnxruntime's
    custom_metadata_map (a ValueError, but not a ModelError naming the file). fuzz_load."""
    path = tiny_model(tmp_path, metadata={"names": "{0: 'a', 1: 'b'}", "task": "segment", "author": "XXXX"})
    path.write_bytes(path.read_bytes().replace(b"XXXX", b"\xc0\xc0\xc0\xc0"))
    with pytest.raises(ModelError, match=path.name):
        edgeseg.load(path)


def test_f16_dimension_name_that_is_not_utf8_is_a_model_error(tmp_path: Path) -> None:
    """Guards F16: a dynamic dimension whose name is not UTF-8 raised a bare UnicodeDecodeError from
    onnxruntime's get_inputs() (found by CI's 60 s run of fuzz_load)."""
    path = tiny_model(tmp_path, height=64, width=None, anchors=16)
    data = path.read_bytes()
    assert b"width" in data
    path.write_bytes(data.replace(b"width", b"w\x9cdth"))
    with pytest.raises(ModelError, match=path.name):
        edgeseg.load(path)


def negative_window_model(tmp_path: Path, kind: str) -> Path:
    """A tiny model whose shape inference gives a negative dimension upstream of its Slice (finding F17).

    ``weight_dims``: what the fuzzer did to fuzz/corpus/load/raw.onnx: the detection convolution's weight
    declared [10, 3, 1, 65] (its data left at 30 floats), a kernel 65 wide on the 16-wide pooled input, so
    'feat' is [1, 10, 16, -48] and the Reshape makes the Slice's input [1, 10, -768]. ``conv_weight``: the
    same kernel with all its data (a complete, checkable weight). ``pool_window``: only an attribute changed,
    an AveragePool window of 4 x 72 on the 64-wide image ([1, 3, 16, -1]).
    """
    pytest.importorskip("onnx")
    import tinymodels
    from onnx import numpy_helper

    model = tinymodels.build(tinymodels.Plan())
    weight = next(t for t in model.graph.initializer if t.name == "wd")
    if kind == "weight_dims":
        weight.dims[3] = 65
    elif kind == "conv_weight":
        wide = np.repeat(numpy_helper.to_array(weight), 65, axis=3) / np.float32(65)
        weight.CopyFrom(numpy_helper.from_array(wide.astype(np.float32), "wd"))
    else:
        pool = next(n for n in model.graph.node if n.op_type == "AveragePool")
        next(a for a in pool.attribute if a.name == "kernel_shape").ints[:] = [4, 72]
    path = tmp_path / f"{kind}.onnx"
    path.write_bytes(model.SerializeToString())
    return path


@finding("F17")
@pytest.mark.parametrize(
    ("kind", "node"),
    [("weight_dims", "Conv"), ("conv_weight", "Conv"), ("pool_window", "AveragePool")],
)
def test_f17_negative_inferred_dimension_is_a_model_error_not_an_abort(tmp_path: Path, kind: str, node: str) -> None:
    """Guards F17: ONNX Runtime 1.32 aborted the process (SIGABRT: libstdc++'s assertion in std::clamp,
    hi < lo, in ONNX's Slice shape inference) while opening a graph whose inferred shapes hold a negative
    dimension (a 857-byte file from fuzz_load, rebuilt here as ``weight_dims``); it happens inside
    InferenceSession(), even with graph optimizations off, so no Python code can catch it. Expected: load
    refuses the file with a ModelError naming it and the node that gives the negative dimension, before
    ONNX Runtime sees it (needs the optional onnx package, which the check uses)."""
    path = negative_window_model(tmp_path, kind)
    proc = run_isolated(
        f"""
        import edgeseg
        try:
            edgeseg.load({str(path)!r})
            raise SystemExit("loaded")
        except edgeseg.ModelError as exc:
            msg = str(exc)
        for part in ({str(path)!r}, "({node})", "negative dimension", "corrupt"):
            assert part in msg, (part, msg)
        print("OK")
        """,
        timeout=60,
    )
    assert proc.returncode != -6, f"aborted (SIGABRT): {proc.stderr[-1000:]}"
    assert_ok(proc)


def test_f17_check_keeps_what_onnxruntime_accepts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The F17 check refuses only negative inferred dimensions: a declared input dimension of -1 (how some
    exporters wrote a dynamic one; ONNX Runtime reads it as dynamic) and a zero-size Slice with a negative
    step still load or pass, and without onnx installed the check is skipped rather than failing."""
    pytest.importorskip("onnx")
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgeseg.modelfile import onnx_graph_problem

    path = tiny_model(tmp_path, height=None, width=None, anchors=16, metadata={"task": "segment", "imgsz": "64"})
    model = onnx.load(str(path))
    for dim in model.graph.input[0].type.tensor_type.shape.dim[2:]:
        dim.dim_value = -1
    onnx.save(model, str(path))
    assert onnx_graph_problem(path) is None
    assert isinstance(edgeseg.load(path), edgeseg.Model)

    consts = [
        numpy_helper.from_array(np.array([v], np.int64), n)
        for n, v in (("s", -1), ("e", -(2**40)), ("a", 1), ("t", -1))
    ]
    graph = helper.make_graph(
        [helper.make_node("Slice", ["x", "s", "e", "a", "t"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 0])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        consts,
    )
    empty = tmp_path / "empty_slice.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(empty))
    assert onnx_graph_problem(empty) is None

    bad = negative_window_model(tmp_path, "weight_dims")
    assert "negative dimension" in (onnx_graph_problem(bad) or "")
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    assert onnx_graph_problem(bad) is None


# ------------------------------------------------------------------------------------------------------
# Inputs the fuzzers produce all the time, which already behave (kept so that they stay that way)


@pytest.mark.parametrize("offset", [1, 2, 3])
def test_unaligned_float_views_decode_like_aligned_ones(offset: int) -> None:
    """np.frombuffer at an odd offset gives a misaligned float32 view: the core must read it as a copy
    would (no crash, same detections). fuzz_decode_yolo, 'unaligned' layout."""
    rng = np.random.default_rng(offset)
    pred = rng.random((4 + 2 + 3, 50)).astype(np.float32)
    pred[:4] *= 64
    buf = np.zeros(pred.nbytes + offset, np.uint8)
    view = buf[offset:].view(np.float32).reshape(pred.shape)
    view[...] = pred
    assert not view.flags.aligned
    want = _core.decode_yolo(pred, 2, 0.25, 0.7, 300, 30000, False)
    got = _core.decode_yolo(view, 2, 0.25, 0.7, 300, 30000, False)
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)


def test_zero_stride_and_reversed_views_are_read_through_their_strides() -> None:
    """Broadcast (stride 0) and reversed (negative stride) views are legal numpy inputs. fuzz_masks."""
    protos = np.broadcast_to(np.float32(1), (2, 8, 8))
    coeffs = np.ones((1, 2), np.float32)
    boxes = np.array([[0, 0, 8, 8]], np.float32)
    keep, _, _, _, _, areas = _core.assemble_masks(protos, coeffs, boxes, (32, 32), (8, 8))
    assert keep.tolist() == [0] and areas.tolist() == [64]
    rev = np.ascontiguousarray(np.random.default_rng(0).normal(0, 1, (2, 8, 8)).astype(np.float32)[:, :, ::-1])[
        :, :, ::-1
    ]
    a = _core.assemble_masks(rev, coeffs, boxes, (32, 32), (8, 8), drop_empty=False)
    b = _core.assemble_masks(np.ascontiguousarray(rev), coeffs, boxes, (32, 32), (8, 8), drop_empty=False)
    np.testing.assert_array_equal(a[3], b[3])


def test_f18_solov2_mask_stride_zero_is_a_value_error_not_sigfpe() -> None:
    """decode_solov2 divided by mask_stride before rejecting it: 0 killed the process. fuzz_families."""
    lb = _core.make_letterbox(20, 20, 32, 32, "keep_ratio")
    args = ([np.zeros((2, 4, 4), np.float32)], [np.zeros((4, 4, 4), np.float32)], np.zeros((4, 8, 8), np.float32))
    for stride in (0, -1):
        with pytest.raises(ValueError, match="mask_stride must be in"):
            _core.decode_solov2(*args, [8.0], lb, mask_stride=stride)


def test_f19_solov2_empty_result_has_one_zero_offset() -> None:
    """With no candidate above conf the MaskSet's offsets were read from an empty vector. fuzz_families."""
    lb = _core.make_letterbox(43, 43, 24, 32, "keep_ratio")
    r = _core.decode_solov2(
        [np.full((2, 6, 6), -160, np.float32)], [np.ones((2, 6, 6), np.float32)], np.ones((2, 7, 8), np.float32),
        [16.0], lb, 0.22, 27,
    )  # fmt: skip
    assert len(r.scores) == 0 and r.masks.offsets.tolist() == [0] and r.masks.bits.size == 0


def test_f20_arrays_that_went_through_pickle_are_accepted() -> None:
    """Dtypes were compared by identity, so an unpickled float32 array was 'not float32'. Found triaging
    fuzz_families; it affected every entry point (multiprocessing, joblib)."""
    import pickle

    boxes = pickle.loads(pickle.dumps(np.array([[0, 0, 10, 10], [1, 1, 10, 10]], np.float32)))
    scores = pickle.loads(pickle.dumps(np.array([0.9, 0.8], np.float32)))
    assert _core.nms(boxes, scores, None, 0.5, 10, False).tolist() == [0]
    assert _core.fast_nms(boxes, scores, iou=0.5).keep.tolist() == [0]


def test_f21_solov2_overflowing_logits_are_a_value_error_not_nan_probabilities() -> None:
    """Finite but huge mask features and kernels overflow the dynamic convolution to +inf + -inf = NaN;
    decode_solov2 kept the instance and returned NaN soft probabilities. Now a ValueError, as masks.cpp and
    yolact.cpp say for the same case. fuzz_families (reproducer: corpus/families/fail-solov2-nan-logits)."""
    lb = _core.make_letterbox(16, 16, 32, 32, "keep_ratio")
    cate = np.zeros((1, 2, 2), np.float32)
    cate[0, 0, 0] = 0.9  # one candidate (probabilities)
    kernel = np.full((2, 2, 2), 3e38, np.float32)
    feat = np.full((2, 8, 8), 2.0, np.float32)
    feat[1] = -2.0  # 3e38 * 2 + 3e38 * -2: each product overflows first, inf - inf = NaN
    with pytest.raises(ValueError, match="NaN logits"):
        _core.decode_solov2([cate], [kernel], feat, [8.0], lb, 0.1, 10, cate_logits=False, soft=True, mask_stride=4)
