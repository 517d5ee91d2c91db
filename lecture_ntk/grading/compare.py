"""Validate what a submission returned (plain JSON data) and compare it with the reference.

Runs in the grader's own process on numbers only: nothing from the submission is executed
here. ``parse`` turns one plain value (see ``harness.to_plain``) into a ``Value`` and rejects
anything malformed; ``compare`` checks type, device, dtype, shape, finiteness and the
entrywise tolerance |got - expected| <= atol + rtol |expected|.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

MAX_ITEMS = 64
MAX_DIMS = 8
ARRAY_KINDS = ("tensor", "ndarray")


class Invalid(ValueError):
    """The plain data does not describe a value (a corrupted or forged result line)."""


@dataclass
class Value:
    """A validated output: an array (tensor/ndarray), a scalar, a sequence or other."""

    kind: str
    dtype: str = ""
    device: str = ""
    shape: tuple = ()
    data: np.ndarray | None = None
    scalar: object = None
    items: list = field(default_factory=list)
    type_name: str = ""

    def describe(self) -> str:
        if self.kind in ARRAY_KINDS:
            name = "torch.Tensor" if self.kind == "tensor" else "numpy array"
            return f"{name} of shape {self.shape}, dtype {self.dtype} on {self.device}"
        if self.kind == "sequence":
            return f"{self.type_name} of {len(self.items)} items"
        if self.kind == "other":
            return f"a {self.type_name}"
        return f"a {self.kind} ({self.scalar!r:.40})"


def _short(text, limit=80) -> str:
    return str(text)[:limit]


def _array(obj: dict, kind: str) -> Value:
    dtype, device, shape, data = (obj.get(k) for k in ("dtype", "device", "shape", "data"))
    if not (isinstance(dtype, str) and isinstance(device, str) and isinstance(shape, list)):
        raise Invalid(f"malformed {kind} description")
    if len(shape) > MAX_DIMS or not all(isinstance(s, int) and 0 <= s < 2**40 for s in shape):
        raise Invalid(f"malformed {kind} shape")
    value = Value(kind, dtype=_short(dtype, 40), device=_short(device, 40), shape=tuple(shape))
    if data is not None:
        if not isinstance(data, list) or len(data) != math.prod(shape):
            raise Invalid(f"{kind} data does not match its shape {tuple(shape)}")
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in data):
            raise Invalid(f"{kind} data holds something other than numbers")
        value.data = np.asarray(data, dtype=np.float64).reshape(shape)
    return value


def parse(obj, depth: int = 0) -> Value:
    """Validate one plain value and return it as a ``Value`` (raises ``Invalid``)."""
    if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
        raise Invalid("not a value description")
    kind = obj["kind"]
    if kind in ARRAY_KINDS:
        return _array(obj, kind)
    if kind == "number":
        v = obj.get("value")
        if not isinstance(v, (int, float)) or isinstance(v, bool):
            raise Invalid("malformed number")
        return Value("number", scalar=v)
    if kind in ("bool", "str"):
        v = obj.get("value")
        if not isinstance(v, bool if kind == "bool" else str):
            raise Invalid(f"malformed {kind}")
        return Value(kind, scalar=v)
    if kind == "none":
        return Value("none")
    if kind == "sequence" and depth < 4:
        items = obj.get("items")
        if not isinstance(items, list) or len(items) > MAX_ITEMS:
            raise Invalid("malformed sequence")
        length = obj.get("length", len(items))
        parsed = [parse(v, depth + 1) for v in items]
        if length != len(items):  # longer than the harness reports: can only be wrong
            parsed.append(Value("other", type_name=f"{length - len(items)} more items"))
        return Value("sequence", items=parsed, type_name=_short(obj.get("type", "sequence"), 20))
    if kind == "other":
        return Value("other", type_name=_short(obj.get("type", "?"), 80))
    raise Invalid(f"unknown kind {_short(kind, 20)!r}")


def _scalar_of(v: Value):
    """A float from a number or a single-entry array (None if neither)."""
    if v.kind == "number":
        return float(v.scalar)
    if v.kind in ARRAY_KINDS and v.data is not None and v.data.size == 1:
        return float(v.data.reshape(-1)[0])
    return None


def _close(expected: np.ndarray, got: np.ndarray, rtol, atol, postprocess) -> tuple[bool, str]:
    if postprocess is not None:
        try:
            expected, got = (np.asarray(postprocess(a.copy()), dtype=np.float64)
                             for a in (expected, got))
        except Exception as exc:  # the trusted postprocess failing on a strange answer
            return False, f"could not be compared ({type(exc).__name__})"
    bad_values = ~np.isfinite(got) & np.isfinite(expected)
    if bad_values.any():
        return False, f"NaN or inf in {int(bad_values.sum())} of {got.size} entries"
    err = np.abs(got - expected)
    off = ~(err <= atol + rtol * np.abs(expected))
    if not off.any():
        return True, ""
    worst = np.unravel_index(int(np.argmax(np.where(off, err, -1.0))), got.shape)
    where = f" at index {tuple(int(i) for i in worst)}" if got.ndim else ""
    return False, (f"{int(off.sum())} of {got.size} entries differ from the reference; "
                   f"largest |error| {float(err[worst]):.2e}{where} "
                   f"(allowed {atol:.0e} + {rtol:.0e} |expected|)")


def compare(expected: Value, got: Value, *, rtol: float, atol: float,
            postprocess=None) -> tuple[bool, str]:
    """(True, "") when ``got`` matches ``expected``, else (False, a short reason)."""
    if expected.kind in ARRAY_KINDS:
        if got.kind != expected.kind:
            return False, f"expected a {expected.describe()}, got {got.describe()}"
        for what in ("device", "dtype", "shape"):
            if getattr(got, what) != getattr(expected, what):
                return False, (f"wrong {what}: expected {getattr(expected, what)}, "
                               f"got {getattr(got, what)}")
        if got.data is None:
            return False, "the values could not be read back (complex, meta or too large)"
        return _close(expected.data, got.data, rtol, atol, postprocess)
    if expected.kind == "number":
        value = _scalar_of(got)
        if value is None:
            return False, f"expected a number, got {got.describe()}"
        return _close(np.asarray(float(expected.scalar)), np.asarray(value), rtol, atol,
                      postprocess)
    if expected.kind == "sequence":
        if got.kind != "sequence" or len(got.items) != len(expected.items):
            return False, f"expected a tuple of {len(expected.items)} items, got {got.describe()}"
        for i, (e, g) in enumerate(zip(expected.items, got.items)):
            ok, why = compare(e, g, rtol=rtol, atol=atol, postprocess=postprocess)
            if not ok:
                return False, f"item {i}: {why}"
        return True, ""
    if got.kind == expected.kind and got.scalar == expected.scalar:
        return True, ""
    return False, f"expected {expected.describe()}, got {got.describe()}"
