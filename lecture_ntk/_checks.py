"""Input validation shared by every public function.

Each check raises ``TypeError`` or ``ValueError`` with a message that names the
argument, says what was expected and what was given.
"""
from __future__ import annotations

import numbers

import numpy as np
import torch

# float16/bfloat16 are refused: their ~1e-3 resolution is coarser than every
# tolerance of the package, and several kernels (Cholesky, angles) need more.
FLOAT_DTYPES = (torch.float32, torch.float64)


def as_tensor(x, name: str, *, like: torch.Tensor | None = None) -> torch.Tensor:
    """Turn a tensor, numpy array or nested list into a floating tensor.

    Integer, boolean, complex and half-precision inputs are refused (a silent
    cast would hide a bug). numpy arrays keep their dtype; python lists become
    float64. With ``like``, the result must share its device and dtype.
    """
    if isinstance(x, torch.Tensor):
        t = x
    elif isinstance(x, np.ndarray):
        if x.dtype.kind not in "f":
            raise TypeError(f"{name}: expected a floating-point array (float32 or float64), "
                            f"got dtype {x.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, (list, tuple, numbers.Real)) and not isinstance(x, bool):
        try:
            t = torch.as_tensor(x, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise TypeError(f"{name}: expected a tensor or array of real numbers, got a "
                            f"{type(x).__name__} that torch cannot read as one ({exc})") from None
    else:
        raise TypeError(f"{name}: expected a torch.Tensor or numpy array, got {type(x).__name__}")
    if t.device.type == "meta":
        raise ValueError(f"{name}: expected a tensor holding data (on cpu or cuda), "
                         f"got a meta tensor")
    if t.dtype not in FLOAT_DTYPES:
        hint = " (convert with .double() or .float())" if t.dtype.is_floating_point else ""
        raise TypeError(f"{name}: expected a floating dtype (float32 or float64), "
                        f"got {t.dtype}{hint}")
    if like is not None:
        if t.device != like.device:
            raise ValueError(f"{name}: expected a tensor on {like.device} (like the other inputs), "
                             f"got one on {t.device}")
        if t.dtype != like.dtype:
            raise TypeError(f"{name}: expected dtype {like.dtype} (like the other inputs), "
                            f"got {t.dtype}")
    return t


def check_dtype(dtype, name: str = "dtype") -> torch.dtype:
    """Raise unless ``dtype`` is torch.float32 or torch.float64; return it."""
    if not isinstance(dtype, torch.dtype):
        raise TypeError(f"{name}: expected torch.float32 or torch.float64, "
                        f"got {type(dtype).__name__} {dtype!r}")
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected torch.float32 or torch.float64, got {dtype}")
    return dtype


def check_finite(t: torch.Tensor, name: str) -> torch.Tensor:
    """Raise if ``t`` holds a NaN or an infinity."""
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise ValueError(f"{name}: expected finite values, got {bad} NaN/inf entries")
    return t


def check_ndim(t: torch.Tensor, ndim: int, name: str, shape_doc: str) -> torch.Tensor:
    """Raise unless ``t`` has ``ndim`` dimensions; ``shape_doc`` reads like '(n, d)'."""
    if t.ndim != ndim:
        raise ValueError(f"{name}: expected shape {shape_doc}, got shape {tuple(t.shape)}")
    return t


def as_samples(X, name: str = "X", *, like: torch.Tensor | None = None) -> torch.Tensor:
    """Validate a sample matrix: floating, finite, shape (n, d) with rows as samples."""
    t = as_tensor(X, name, like=like)
    check_ndim(t, 2, name, "(n, d) with rows as samples")
    if t.shape[1] == 0:
        raise ValueError(f"{name}: expected at least one feature column, got shape {tuple(t.shape)}")
    return check_finite(t, name)


def check_same_d(X1: torch.Tensor, X2: torch.Tensor, names=("X1", "X2")) -> None:
    """Raise unless two sample matrices have the same number of columns d."""
    if X1.shape[1] != X2.shape[1]:
        raise ValueError(f"{names[1]}: expected {X1.shape[1]} feature columns to match {names[0]}, "
                         f"got {X2.shape[1]}")


def check_int(value, name: str, *, minimum: int = 1) -> int:
    """Raise unless ``value`` is an int >= ``minimum``; return it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an int >= {minimum}, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name}: expected an int >= {minimum}, got {value}")
    return int(value)


def check_real(value, name: str, *, minimum: float | None = None, strict: bool = False) -> float:
    """Raise unless ``value`` is a finite real number (>= or > ``minimum``); return it."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")
    if minimum is not None and (value <= minimum if strict else value < minimum):
        op = ">" if strict else ">="
        raise ValueError(f"{name}: expected a number {op} {minimum}, got {value}")
    return value


def check_device(device, name: str = "device") -> torch.device | None:
    """Raise unless ``device`` is None, a torch.device or a name torch reads ('cpu', 'cuda:0')."""
    if device is None or isinstance(device, torch.device):
        return device
    if not isinstance(device, (str, int)) or isinstance(device, bool):
        raise TypeError(f"{name}: expected None, a torch.device or a device name such as 'cpu' "
                        f"or 'cuda', got {type(device).__name__}")
    try:
        return torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise ValueError(f"{name}: expected None, a torch.device or a device name such as 'cpu' "
                         f"or 'cuda', got {device!r}") from None
