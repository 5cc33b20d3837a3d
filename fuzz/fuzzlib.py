"""Shared pieces of the atheris harnesses: fuzzed numpy arrays, the "ValueError or a well-formed result"
contract, and the list of open findings a harness steps around by default.

Every harness in this folder runs one entry point on inputs built from a ``FuzzedDataProvider`` and
lets anything but a ``ValueError`` (or a failed well-formedness assertion) escape: atheris reports an
escaped exception, and libFuzzer a signal (segfault, abort), as a crash and writes the input to
``crash-*``. Replay one with ``python fuzz/fuzz_<name>.py crash-<sha>``.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any, Callable, TypeVar

import atheris
import numpy as np
from findings import OPEN_FINDINGS

T = TypeVar("T")

# Overflow and NaN warnings from building fuzzed arrays are expected noise.
np.seterr(all="ignore")
warnings.simplefilter("ignore")

# Open findings (fuzz/findings.py): a harness skips the inputs that trigger one, so a CI run looks for
# *new* problems instead of stopping on a known one within seconds.
CHECK_KNOWN = os.environ.get("EDGESEG_FUZZ_KNOWN", "") == "check"
DEBUG = os.environ.get("EDGESEG_FUZZ_DEBUG", "") == "1"


def known(finding: str, triggered: bool) -> bool:
    """True when this input triggers an open finding that the harness should step around."""
    return triggered and finding in OPEN_FINDINGS and not CHECK_KNOWN


# ---------------------------------------------------------------------------------------------------
# The contract
# ---------------------------------------------------------------------------------------------------


def value_error_or(fn: Callable[[], T]) -> T | None:
    """``fn()``, or None when it raised ``ValueError`` (the only failure the core may report).

    Anything else propagates and is a finding. The error message must say something: an empty or
    C++-internal message (``vector::_M_default_append``) means a C++ exception leaked through pybind.
    """
    try:
        return fn()
    except ValueError as exc:
        msg = str(exc)
        assert msg, f"{type(exc).__name__} without a message"
        assert not msg.startswith(("vector::", "basic_string", "std::")), f"C++ internal message leaked: {msg!r}"
        classify(msg)
        return None


def debug(name: str, **args: Any) -> None:
    """With EDGESEG_FUZZ_DEBUG=1 (when replaying a crash file), print the call about to be made."""
    if not DEBUG:
        return
    parts = []
    for key, value in args.items():
        if isinstance(value, np.ndarray):
            text = f"array(shape={value.shape}, dtype={value.dtype}, strides={value.strides}"
            text += f", aligned={value.flags.aligned})"
            if value.size <= 64:
                text += f" = {value.tolist()!r}"
        else:
            text = repr(value)
        parts.append(f"  {key} = {text}")
    print(f"{name}(\n" + "\n".join(parts) + "\n)", flush=True)


def classify(msg: str) -> int:
    """A coarse bucket per kind of rejection; the branches give libFuzzer coverage to tell them apart."""
    if "must be a numpy array" in msg:
        return 1
    if "must have dtype" in msg:
        return 2
    if "dimensions" in msg:
        return 3
    if "unaligned" in msg:
        return 4
    if "NaN" in msg or "infinit" in msg:
        return 5
    if "quantiz" in msg:
        return 6
    if "must be" in msg:
        return 7
    if "shape" in msg:
        return 8
    if "outside" in msg:
        return 9
    return 0


def bucket(n: int) -> int:
    """Coverage for result sizes: 0, 1, a few, many."""
    if n == 0:
        return 0
    if n == 1:
        return 1
    if n < 8:
        return 2
    return 3


# ---------------------------------------------------------------------------------------------------
# Fuzzed values
# ---------------------------------------------------------------------------------------------------

SPECIAL_FLOATS = (
    0.0,
    -0.0,
    0.5,
    1.0,
    -1.0,
    1e-45,
    1.1754944e-38,
    3.4028235e38,
    -3.4028235e38,
    float("inf"),
    float("-inf"),
    float("nan"),
    2.0**24 + 1,
    0.7,
    0.25,
)
HUGE_INTS = (0, 1, -1, 2**31 - 1, 2**31, -(2**31), 2**32, 2**53, 2**62, 2**63 - 1, -(2**63))


def pick(fdp: atheris.FuzzedDataProvider, values: Sequence[T]) -> T:
    """One of ``values`` (the first when the input is exhausted)."""
    return values[fdp.ConsumeIntInRange(0, len(values) - 1)]


def rarely(fdp: atheris.FuzzedDataProvider, n: int) -> bool:
    """True one time in ``n``; False once the input is used up, so short inputs take the common path."""
    return fdp.ConsumeIntInRange(0, n - 1) == n - 1


def fuzz_float(fdp: atheris.FuzzedDataProvider) -> float:
    """A float that is often special (NaN, inf, denormal, float32 max) and otherwise arbitrary."""
    kind = fdp.ConsumeIntInRange(0, 3)
    if kind == 3:
        return float(pick(fdp, SPECIAL_FLOATS))
    if kind == 2:
        return fdp.ConsumeFloat()
    return fdp.ConsumeFloatInRange(-2.0, 2.0) if kind == 1 else fdp.ConsumeFloatInRange(0.0, 1.0)


def fuzz_int(fdp: atheris.FuzzedDataProvider, lo: int, hi: int) -> int:
    """Mostly in ``[lo, hi]``; sometimes one of the int64 extremes (which must be rejected or handled)."""
    if rarely(fdp, 8):
        return int(pick(fdp, HUGE_INTS))
    return fdp.ConsumeIntInRange(lo, hi)


def fuzz_dim(fdp: atheris.FuzzedDataProvider, hi: int) -> int:
    """An array dimension: 0 and 1 often, otherwise up to ``hi``."""
    kind = fdp.ConsumeIntInRange(0, 5)
    if kind == 4:
        return 0
    if kind == 5:
        return 1
    return fdp.ConsumeIntInRange(1, hi)


def fill(fdp: atheris.FuzzedDataProvider, dtype: np.dtype, size: int) -> np.ndarray:
    """``size`` values of ``dtype``: raw fuzz bytes, a few special values, or a smooth random field."""
    dtype = np.dtype(dtype)
    if size == 0:
        return np.zeros(0, dtype)
    mode = fdp.ConsumeIntInRange(0, 3)
    if mode == 0:  # raw bytes: every bit pattern, NaN payloads included
        raw = fdp.ConsumeBytes(min(size * dtype.itemsize, 1 << 16))
        raw = raw + b"\x00" * (size * dtype.itemsize - len(raw))
        return np.frombuffer(raw, dtype=dtype).copy()
    if mode == 1:  # a constant (often special)
        value = fuzz_float(fdp) if dtype.kind == "f" else fdp.ConsumeInt(8)
        return np.full(size, _cast(value, dtype), dtype=dtype)
    seed = fdp.ConsumeIntInRange(0, 2**32 - 1)
    rng = np.random.default_rng(seed)
    if dtype.kind == "f":
        out = rng.normal(0.0, pick(fdp, (0.5, 3.0, 100.0)), size).astype(dtype)
        if fdp.ConsumeBool():  # sprinkle special values
            idx = rng.integers(0, size, max(1, size // 50))
            out[idx] = _cast(fuzz_float(fdp), dtype)
        return out
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, size, dtype=dtype)
    if dtype.kind == "b":
        return rng.random(size) < 0.5
    return rng.normal(0, 1, size).astype(dtype)


def _cast(value: float | int, dtype: np.dtype) -> Any:
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return int(np.clip(int(value), info.min, info.max)) if np.isfinite(float(value)) else 0
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(value).astype(dtype)


LAYOUTS = ("contiguous", "fortran", "strided", "reversed", "broadcast", "unaligned", "transposed", "readonly")


def layout_array(
    fdp: atheris.FuzzedDataProvider, values: np.ndarray, shape: tuple[int, ...], keep_values: bool = False
) -> np.ndarray:
    """``values`` (flat, product(shape) long) as an array of ``shape`` in a fuzzed memory layout.

    Non-contiguous (every other element of a bigger buffer), reversed (negative strides), broadcast
    (zero strides), unaligned (data pointer off by one byte), Fortran order and transposed views all
    have the same logical shape and contents, except broadcast (the first element repeated), which
    ``keep_values`` leaves out.
    """
    layout = pick(fdp, LAYOUTS)
    if keep_values and layout == "broadcast":
        layout = "contiguous"
    dtype = values.dtype
    size = int(np.prod(shape, dtype=np.int64))
    if layout == "fortran":
        return np.asfortranarray(values.reshape(shape))
    if layout == "strided" and len(shape) > 0:
        big = np.zeros((*shape[:-1], shape[-1] * 2), dtype)
        big[..., ::2] = values.reshape(shape)
        return big[..., ::2]
    if layout == "reversed" and len(shape) > 0:
        arr = values.reshape(shape)[..., ::-1].copy()
        return arr[..., ::-1]
    if layout == "broadcast" and size > 0:
        return np.broadcast_to(values[:1].reshape((1,) * len(shape)), shape)
    if layout == "unaligned" and dtype.itemsize > 1:
        buf = np.zeros(size * dtype.itemsize + 1, np.uint8)
        arr = buf[1:].view(dtype).reshape(shape)
        arr[...] = values.reshape(shape)
        return arr
    if layout == "transposed" and len(shape) >= 2:
        return np.ascontiguousarray(values.reshape(shape).T).T
    if layout == "readonly":
        arr = values.reshape(shape)
        arr.flags.writeable = False
        return arr
    return values.reshape(shape)


WRONG_DTYPES = (np.float64, np.float16, np.int32, np.int64, np.uint16, np.bool_, np.complex64)


def fuzz_array(
    fdp: atheris.FuzzedDataProvider,
    dtypes: Sequence[Any],
    shape: tuple[int, ...],
    wrong: bool = True,
) -> Any:
    """An array of ``shape`` with one of ``dtypes`` in a fuzzed layout; with ``wrong``, now and then a
    wrong dtype, a wrong number of dimensions, a list or None instead (these must give ValueError)."""
    if wrong:
        mistake = fdp.ConsumeIntInRange(0, 23)
        if mistake == 21:
            dtypes = WRONG_DTYPES
        elif mistake == 22:
            shape = (*shape, 1) if fdp.ConsumeBool() else shape[:-1]
        elif mistake == 23:
            return pick(fdp, (None, [[1.0, 2.0]], 3.0, "array", np.float32(1.0)))
    dtype = np.dtype(pick(fdp, dtypes))
    size = int(np.prod(shape, dtype=np.int64))
    return layout_array(fdp, fill(fdp, dtype, size), shape)


def fuzz_quant(fdp: atheris.FuzzedDataProvider, dtype: np.dtype) -> Any:
    """(scale, zero_point) for quantized dtypes (sometimes extreme or missing), None or junk otherwise."""
    kind = fdp.ConsumeIntInRange(0, 15)
    if kind == 15:
        return None
    if kind == 14:
        return pick(fdp, ((1.0,), "q", (1.0, 2, 3), (float("nan"), 0), (1.0, 2**40), (0.1, 3.5)))
    if np.dtype(dtype).kind not in "iu" and kind < 13:
        return None
    scale = pick(fdp, (0.003921, 0.1, 1.0, 1e-30, 1e-45, 3e38, -1.0, 0.0, float("inf"), float("nan")))
    if fdp.ConsumeBool():
        scale = fdp.ConsumeFloat()
    zero_point = fuzz_int(fdp, -128, 300)
    zero_point = int(np.clip(zero_point, -(2**31), 2**31 - 1)) if fdp.ConsumeBool() else zero_point
    return (scale, zero_point)


def malformed_quant(quant: Any) -> bool:
    """Whether ``quant`` is something pybind11 cannot cast to (float, int32): finding F8."""
    if quant is None:
        return False
    if not isinstance(quant, (tuple, list)) or len(quant) != 2:
        return True
    scale, zero_point = quant
    if not isinstance(scale, (float, int)) or not isinstance(zero_point, int):
        return True
    return not -(2**31) <= zero_point < 2**31


def zero_point_overflows(quant: Any) -> bool:
    """Whether ``raw - zero_point`` can overflow int32 for a raw int8/uint8 value: finding F10."""
    if malformed_quant(quant) or quant is None:
        return False
    return not -(2**31) + 255 < int(quant[1]) < 2**31 - 256
