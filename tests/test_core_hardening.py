"""The C++ core's entry points against hostile arguments (issue 12).

Sizes, counts and strides that overflow int64 arithmetic, Python ints beyond 64 bits, malformed
pairs, quantization parameters that make the dequantization undefined, and misaligned buffers
must all end as a ValueError naming the argument (or, for alignment, as correct results), never
as a crash, a wrong result or a pybind11 TypeError/RuntimeError. Calls that crashed the
interpreter before the fix run in a subprocess, so a regression fails one test instead of ending
the run. .ci/sanitize runs this file under ASan + UBSan, which also catches what leaves no visible
trace (a misaligned load, a signed overflow that happens to wrap harmlessly).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from edgeseg import _core

BIG = [2**63, 2**64 + 5, -(2**63) - 1, 10**30]  # Python ints no int64 holds


def run_isolated(code: str, limit_memory: bool = True) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter; a segfault or abort there fails the calling test only.

    With ``limit_memory`` the address space is capped (8 GiB) so that a regression that allocates
    without bound ends as MemoryError rather than taking the machine down. Not under ASan, which
    reserves terabytes of address space for its shadow memory.
    """
    preexec = None
    if limit_memory and "asan" not in os.environ.get("LD_PRELOAD", ""):

        def preexec() -> None:
            import resource

            resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))

    prelude = "import numpy as np\nfrom edgeseg import _core\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=preexec,
    )


def expect_value_error(code: str, match: str) -> None:
    """``code`` (in a subprocess) must raise a ValueError whose message contains ``match``."""
    body = textwrap.indent(textwrap.dedent(code), "    ")
    wrapped = f"try:\n{body}\nexcept ValueError as e:\n    print('ValueError:', e)\n"
    proc = run_isolated(wrapped)
    assert proc.returncode == 0, f"exit status {proc.returncode}\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert "ValueError:" in proc.stdout, f"no ValueError:\n{proc.stdout}\n{proc.stderr[-3000:]}"
    assert match in proc.stdout, proc.stdout


def pred(nc: int = 2, nm: int = 1, anchors: int = 10) -> np.ndarray:
    p = np.zeros((4 + nc + nm, anchors), np.float32)
    p[:4] = [[50], [50], [20], [20]]
    p[4, 3] = 0.9
    return p


def mask_inputs():
    protos = np.random.default_rng(0).normal(0, 1, (4, 160, 160)).astype(np.float32)
    coeffs = np.ones((2, 4), np.float32)
    boxes = np.float32([[0, 0, 50, 40], [10, 10, 90, 80]])
    return protos, coeffs, boxes


# ---------------------------------------------------------------------------------------------
# Sizes whose arithmetic overflows


@pytest.mark.parametrize("num_classes", [2**63 - 4, 2**63 - 3, 2**63 - 1])
def test_decode_num_classes_overflow_is_rejected(num_classes: int) -> None:
    # `4 + num_classes` wrapped negative, passed the shape check and the scan read far out of
    # bounds (segfault).
    expect_value_error(
        f"_core.decode_yolo(np.zeros((116, 10), np.float32), {num_classes}, 0.25, 0.7, 300, 100, False)",
        "num_classes",
    )


def test_decode_num_classes_beyond_int32_is_rejected() -> None:
    # A stride-0 (broadcast) view can claim 2^31 + 8 feature rows at no memory cost: class ids are
    # int32, so such a class count overflowed the scan's int32 index.
    view = np.broadcast_to(np.zeros((1, 3), np.float32), (2**31 + 8, 3))
    with pytest.raises(ValueError, match="num_classes"):
        _core.decode_yolo(view, 2**31 + 1, 0.25, 0.7, 300, 100, False)
    with pytest.raises(ValueError, match="num_classes"):
        _core.decode_yolo_e2e(np.zeros((1, 6), np.float32), 2**31, 0.25, 300)


def test_rle_image_size_overflow_is_rejected() -> None:
    bits, offsets, rects = np.ones(1, np.uint8), np.array([0, 1]), np.array([[0, 0, 1, 1]], np.int32)
    # 2^32 x 2^32 pixels wrapped to 0 in the size check and gave a wrong RLE (b"0").
    for image_hw in [(2**32, 2**32), (2**33, 2**31), (2**62, 4)]:
        with pytest.raises(ValueError, match="too large"):
            _core.rle_encode(bits, offsets, rects, image_hw)
    # Images up to 2^32 - 1 pixels, all 32-bit counts can describe, still work.
    for image_hw in [(65535, 65537), (1, 2**32 - 1), (2**32 - 1, 1)]:
        (rle,) = _core.rle_encode(bits, offsets, rects, image_hw)
        assert rle.startswith(b"01")  # no leading zeros, one set pixel, then the rest


def test_rle_offsets_that_overflow_are_rejected() -> None:
    bits = np.zeros(4, np.uint8)
    rects = np.array([[0, 0, 8, 1], [0, 0, 8, 1]], np.int32)
    for offsets in ([0, 1, -(2**63)], [0, 1, 2**63 - 1], [0, -(2**63), 1], [2**63 - 1, 1, 2]):
        with pytest.raises(ValueError, match="offsets"):
            _core.rle_encode(bits, np.array(offsets, np.int64), rects, (10, 10))


@pytest.mark.parametrize("args", [(2**63 - 1, 1, 2**63 - 1, 1), (2**31, 640, 640, 640), (480, 640, 640, 2**40)])
def test_letterbox_sizes_beyond_int32_are_rejected(args) -> None:
    # 2^63 - 1 as a double rounds to 2^63, which does not convert back to int64 (it came back as a
    # letterbox of 1 row).
    with pytest.raises(ValueError, match="size must be in"):
        _core.make_letterbox(*args)


def test_masks_sizes_beyond_int32_are_rejected() -> None:
    protos, coeffs, boxes = mask_inputs()
    # Crops are int32 rects: larger images wrapped them negative.
    for image_hw in [(2**31, 100), (100, 2**31), (2**40, 2**40)]:
        with pytest.raises(ValueError, match="image size"):
            _core.assemble_masks(protos, coeffs, boxes, (640, 640), image_hw)
    with pytest.raises(ValueError, match="model input size"):
        _core.assemble_masks(protos, coeffs, boxes, (160 * 2**28, 160 * 2**28), (100, 100))
    # Prototype sides index int32 axis plans: a stride-0 view may be wider than that.
    wide = np.broadcast_to(np.zeros((4, 1, 1), np.float32), (4, 1, 2**31))
    with pytest.raises(ValueError, match="too large"):
        _core.assemble_masks(wide, coeffs, boxes, (1, 2**31), (100, 100))


def test_masks_total_size_overflow_is_rejected() -> None:
    # Four image-sized soft masks of a 2^31 - 1 square image: 2^64 probabilities wrapped to 0 and
    # sized the output buffer at nothing. Must be refused before any allocation (a subprocess, with
    # its address space capped: before the fix this allocated the image-sized axis plans first).
    expect_value_error(
        """
        protos = np.zeros((4, 160, 160), np.float32)
        boxes = np.tile(np.float32([0, 0, 2**31, 2**31]), (4, 1))
        _core.assemble_masks(protos, np.zeros((4, 4), np.float32), boxes, (640, 640), (2**31 - 1, 2**31 - 1), soft=True)
        """,
        "too large",
    )


# ---------------------------------------------------------------------------------------------
# Python ints beyond 64 bits and malformed arguments: ValueError naming the argument


def _int_calls():
    p, (protos, coeffs, boxes) = pred(), mask_inputs()
    bits, offsets, rects = np.ones(1, np.uint8), np.array([0, 1]), np.array([[0, 0, 1, 1]], np.int32)
    return {
        "decode num_classes": ("num_classes", lambda v: _core.decode_yolo(p, v, 0.25, 0.7, 300, 100, False)),
        "decode max_det": ("max_det", lambda v: _core.decode_yolo(p, 2, 0.25, 0.7, v, 100, False)),
        "decode pre_nms_topk": ("pre_nms_topk", lambda v: _core.decode_yolo(p, 2, 0.25, 0.7, 300, v, False)),
        "e2e num_classes": ("num_classes", lambda v: _core.decode_yolo_e2e(np.zeros((1, 7), np.float32), v, 0.25, 9)),
        "e2e max_det": ("max_det", lambda v: _core.decode_yolo_e2e(np.zeros((1, 7), np.float32), 2, 0.25, v)),
        "nms max_det": (
            "max_det",
            lambda v: _core.nms(np.zeros((1, 4), np.float32), np.ones(1, np.float32), max_det=v),
        ),
        "letterbox src_h": ("src_h", lambda v: _core.make_letterbox(v, 640, 640, 640)),
        "letterbox dst_w": ("dst_w", lambda v: _core.make_letterbox(480, 640, 640, v)),
        "masks input_hw": ("input_hw", lambda v: _core.assemble_masks(protos, coeffs, boxes, (640, v), (100, 100))),
        "masks image_hw": ("image_hw", lambda v: _core.assemble_masks(protos, coeffs, boxes, (640, 640), (v, 100))),
        "rle image_hw": ("image_hw", lambda v: _core.rle_encode(bits, offsets, rects, (10, v))),
    }


@pytest.mark.parametrize("call", sorted(_int_calls()))
@pytest.mark.parametrize("value", BIG)
def test_huge_python_ints_are_value_errors(call: str, value: int) -> None:
    # pybind11's int64 caster refused these with a TypeError listing the whole signature.
    name, fn = _int_calls()[call]
    with pytest.raises(ValueError, match=f"{name}.*(out of range|must)"):
        fn(value)


@pytest.mark.parametrize("call", sorted(_int_calls()))
def test_non_integer_sizes_are_value_errors(call: str) -> None:
    name, fn = _int_calls()[call]
    for value in (3.0, "3", None):
        with pytest.raises(ValueError, match=name):
            fn(value)


def test_numpy_scalars_are_accepted() -> None:
    p = pred()
    want = _core.decode_yolo(p, 2, 0.25, 0.7, 300, 100, False)
    got = _core.decode_yolo(
        p, np.int64(2), np.float32(0.25), np.float64(0.7), np.int32(300), np.uint16(100), np.bool_(False)
    )
    for a, b in zip(want, got):
        np.testing.assert_array_equal(a, b)
    lb = _core.make_letterbox(np.int64(480), np.int32(640), np.uint16(640), 640)
    assert (lb.new_h, lb.new_w) == (480, 640)


def _pair_calls():
    p, q = pred(), pred().astype(np.int8)
    protos, coeffs, boxes = mask_inputs()
    protos8 = protos.astype(np.int8)
    bits, offsets, rects = np.ones(1, np.uint8), np.array([0, 1]), np.array([[0, 0, 1, 1]], np.int32)
    return [
        # (argument named in the message, call)
        ("quant", lambda: _core.decode_yolo(q, 2, 0.25, 0.7, 300, 100, False, quant=(1.0, "a"))),
        ("quant", lambda: _core.decode_yolo(q, 2, 0.25, 0.7, 300, 100, False, quant=("a", 0))),
        ("quant", lambda: _core.decode_yolo(q, 2, 0.25, 0.7, 300, 100, False, quant=(1.0,))),
        ("quant", lambda: _core.decode_yolo(q, 2, 0.25, 0.7, 300, 100, False, quant=(1.0, 0, 0))),
        ("quant", lambda: _core.decode_yolo(q, 2, 0.25, 0.7, 300, 100, False, quant="ab")),
        ("quant", lambda: _core.decode_yolo(q, 2, 0.25, 0.7, 300, 100, False, quant=1.0)),
        ("quant", lambda: _core.decode_yolo(q, 2, 0.25, 0.7, 300, 100, False, quant=(1.0, 0.5))),
        ("quant", lambda: _core.decode_yolo_e2e(np.zeros((1, 7), np.int8), 2, 0.25, 9, quant=(None, 0))),
        ("quant", lambda: _core.assemble_masks(protos8, coeffs, boxes, (640, 640), (100, 100), quant=(0.1, "z"))),
        ("box_scale", lambda: _core.decode_yolo(p, 2, 0.25, 0.7, 300, 100, False, box_scale=(1.0, "a"))),
        ("box_scale", lambda: _core.decode_yolo(p, 2, 0.25, 0.7, 300, 100, False, box_scale=1.0)),
        ("box_scale", lambda: _core.decode_yolo_e2e(np.zeros((1, 7), np.float32), 2, 0.25, 9, box_scale=[1.0])),
        ("input_hw", lambda: _core.assemble_masks(protos, coeffs, boxes, (640, 640, 3), (100, 100))),
        ("input_hw", lambda: _core.assemble_masks(protos, coeffs, boxes, "ab", (100, 100))),
        ("image_hw", lambda: _core.assemble_masks(protos, coeffs, boxes, (640, 640), 100)),
        ("image_hw", lambda: _core.rle_encode(bits, offsets, rects, (10,))),
        ("conf", lambda: _core.decode_yolo(p, 2, "0.25", 0.7, 300, 100, False)),
        ("iou", lambda: _core.nms(np.zeros((1, 4), np.float32), np.ones(1, np.float32), iou=[0.5])),
        ("agnostic", lambda: _core.decode_yolo(p, 2, 0.25, 0.7, 300, 100, "yes")),
        ("soft", lambda: _core.assemble_masks(protos, coeffs, boxes, (640, 640), (100, 100), soft="no")),
        ("letterbox", lambda: _core.unletterbox_boxes(np.zeros((1, 4), np.float32), (480, 640))),
    ]


@pytest.mark.parametrize("index", range(len(_pair_calls())))
def test_malformed_arguments_are_value_errors(index: int) -> None:
    # A bad element of a pair was a RuntimeError (pybind11's cast_error, "Unable to cast Python
    # instance ... to C++ type '?'"); a wrong type elsewhere a TypeError with the full signature.
    name, call = _pair_calls()[index]
    with pytest.raises(ValueError, match=name) as info:
        call()
    assert "incompatible function arguments" not in str(info.value)


# ---------------------------------------------------------------------------------------------
# Quantization parameters that make the dequantization undefined


@pytest.mark.parametrize(
    "dtype,zero_point",
    [(np.int8, -(2**31)), (np.int8, 2**31 - 1), (np.int8, 128), (np.int8, -129), (np.uint8, -1), (np.uint8, 256)],
)
def test_zero_point_outside_dtype_range_is_rejected(dtype, zero_point: int) -> None:
    # (q - zero_point) in int overflowed for INT32_MIN (undefined behaviour; UBSan reports it) and
    # silently dequantized every score to garbage otherwise.
    p = pred().astype(dtype)
    with pytest.raises(ValueError, match="zero point"):
        _core.decode_yolo(p, 2, 0.25, 0.7, 300, 100, False, quant=(0.01, zero_point))
    with pytest.raises(ValueError, match="zero point"):
        _core.decode_yolo_e2e(np.zeros((1, 7), dtype), 2, 0.25, 9, quant=(0.01, zero_point))
    protos, coeffs, boxes = mask_inputs()
    with pytest.raises(ValueError, match="zero point"):
        _core.assemble_masks(protos.astype(dtype), coeffs, boxes, (640, 640), (100, 100), quant=(0.01, zero_point))


@pytest.mark.parametrize("scale", [float("nan"), float("inf"), -float("inf"), 0.0, -0.5, 1e38, 1e300, -1e300])
def test_bad_quantization_scale_is_rejected(scale: float) -> None:
    # 1e38: finite, but 255 steps of it overflow float, so dequantized values would be inf.
    # 1e300: beyond float's range (the conversion itself is undefined without a range check).
    p = pred().astype(np.int8)
    with pytest.raises(ValueError, match="scale"):
        _core.decode_yolo(p, 2, 0.25, 0.7, 300, 100, False, quant=(scale, 0))
    with pytest.raises(ValueError, match="scale"):
        _core.decode_yolo_e2e(np.zeros((1, 7), np.uint8), 2, 0.25, 9, quant=(scale, 0))
    protos, coeffs, boxes = mask_inputs()
    with pytest.raises(ValueError, match="scale"):
        _core.assemble_masks(protos.astype(np.int8), coeffs, boxes, (640, 640), (100, 100), quant=(scale, 0))


def test_extreme_valid_quantization_still_works() -> None:
    for dtype, zp in [(np.int8, -128), (np.int8, 127), (np.uint8, 0), (np.uint8, 255)]:
        p = np.zeros((7, 10), dtype)
        _boxes, scores, *_ = _core.decode_yolo(p, 2, 0.25, 0.7, 300, 100, False, quant=(1e-30, zp))
        assert len(scores) == 0


# ---------------------------------------------------------------------------------------------
# Misaligned buffers: copied at the boundary, same results


def misaligned(a: np.ndarray) -> np.ndarray:
    """A copy of ``a`` whose data starts one byte past an aligned address (as np.frombuffer at an
    odd offset gives)."""
    raw = np.zeros(a.nbytes + 1, np.uint8)
    out = np.frombuffer(raw.data, a.dtype, count=a.size, offset=1).reshape(a.shape)
    out[...] = a
    assert not out.flags.aligned
    return out


def packed_field(a: np.ndarray) -> np.ndarray:
    """``a`` as a field of a packed record array: misaligned data and strides (not a multiple of
    the item size)."""
    rec = np.zeros(a.shape[0], [("pad", "u1"), ("v", a.dtype, a.shape[1:])])
    rec["v"] = a
    return rec["v"]


@pytest.mark.parametrize("make", [misaligned, packed_field])
def test_misaligned_arrays_give_the_same_results(make) -> None:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 100, (20, 2))
    boxes = np.concatenate([xy, xy + rng.uniform(5, 40, (20, 2))], 1).astype(np.float32)
    scores = rng.uniform(0, 1, 20).astype(np.float32)
    classes = rng.integers(0, 3, 20).astype(np.int32)
    want = _core.nms(boxes, scores, classes, iou=0.5)
    np.testing.assert_array_equal(_core.nms(make(boxes), scores, classes, iou=0.5), want)
    np.testing.assert_array_equal(
        _core.nms(boxes, make(scores[:, None])[:, 0], make(classes[:, None])[:, 0], iou=0.5), want
    )

    p = rng.uniform(0, 1, (4 + 3 + 2, 50)).astype(np.float32)
    p[:4] *= 100
    for view in (p, p.T.copy().T):  # feature-major and anchor-major data
        want = _core.decode_yolo(view, 3, 0.5, 0.7, 300, 100, False)
        got = _core.decode_yolo(make(view) if make is misaligned else make(view.T).T, 3, 0.5, 0.7, 300, 100, False)
        for a, b in zip(want, got):
            np.testing.assert_array_equal(a, b)
    coeffs = rng.normal(0, 1, (5, 2))
    rows = np.concatenate([boxes[:5], scores[:5, None], classes[:5, None], coeffs], 1).astype(np.float32)
    for a, b in zip(_core.decode_yolo_e2e(rows, 3, 0.1, 9), _core.decode_yolo_e2e(make(rows), 3, 0.1, 9)):
        np.testing.assert_array_equal(a, b)

    lb = _core.make_letterbox(480, 640, 640, 640)
    np.testing.assert_array_equal(_core.unletterbox_boxes(make(boxes), lb), _core.unletterbox_boxes(boxes, lb))

    protos, coeffs, mboxes = mask_inputs()
    want = _core.assemble_masks(protos, coeffs, mboxes, (640, 640), (100, 100), soft=True)
    for args in [(make(protos), coeffs, mboxes), (protos, make(coeffs), mboxes), (protos, coeffs, make(mboxes))]:
        got = _core.assemble_masks(*args, (640, 640), (100, 100), soft=True)
        for a, b in zip(want, got):
            np.testing.assert_array_equal(a, b)

    _keep, rects, offsets, bits, *_ = want
    want_rle = _core.rle_encode(bits, offsets, rects, (100, 100))
    assert _core.rle_encode(bits, make(offsets[:, None])[:, 0], make(rects), (100, 100)) == want_rle
