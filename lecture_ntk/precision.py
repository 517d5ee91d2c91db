"""The precision policy: full float32 matrix products wherever results are compared.

Recent GPUs can run float32 matrix products in TF32 (a 10-bit mantissa, relative
error ~1e-3), and PyTorch lets a global flag switch this on
(``torch.backends.cuda.matmul.allow_tf32``, ``torch.backends.cudnn.allow_tf32``,
``torch.set_float32_matmul_precision("high"|"medium")``; on CPUs the last one can
also allow bfloat16 products). A notebook or a user script may set these flags
for speed. Agreement checks against closed forms or float64 would then fail at
the 1e-3 level, far above the float32 tolerances of this package.

Policy: every kernel, empirical-NTK, linearisation, Hessian and regression
function of ``lecture_ntk`` runs inside ``full_precision()``, which switches
TF32 and reduced-precision float32 products off and restores the caller's
settings on exit (also after an exception). float64 is never affected by these
flags. Code that wants TF32 for speed (a float32 width sweep on a GPU) can set
the flags itself; the library functions above ignore them.

Lecture: (numerics, no section); README "Numerics".
"""
from __future__ import annotations

import contextlib
import threading

import torch

_LOCK = threading.RLock()


def settings() -> dict:
    """The current global float32 matmul settings, as a dict (for tests and messages)."""
    return {"cuda.matmul.allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn.allow_tf32": bool(torch.backends.cudnn.allow_tf32),
            "float32_matmul_precision": torch.get_float32_matmul_precision()}


def _apply(saved: dict) -> None:
    # allow_tf32 first: in recent torch it also rewrites the matmul precision string,
    # which is then set back to the exact saved value.
    torch.backends.cuda.matmul.allow_tf32 = saved["cuda.matmul.allow_tf32"]
    torch.backends.cudnn.allow_tf32 = saved["cudnn.allow_tf32"]
    torch.set_float32_matmul_precision(saved["float32_matmul_precision"])


@contextlib.contextmanager
def full_precision():
    """Context manager (and decorator) that runs float32 matrix products in full precision.

    Inside: ``torch.backends.cuda.matmul.allow_tf32 = False``,
    ``torch.backends.cudnn.allow_tf32 = False``,
    ``torch.set_float32_matmul_precision("highest")``. On exit the previous
    values are restored, whatever happened inside. Nesting is allowed.

    Example:
        >>> with precision.full_precision():
        ...     K = X @ X.T          # IEEE float32 products even if TF32 was on

    Numerics: the flags are process-wide; a lock makes save/set/restore
    atomic, but another thread running float32 products at the same moment
    also sees full precision while the block runs.
    """
    with _LOCK:
        saved = settings()
        _apply({"cuda.matmul.allow_tf32": False, "cudnn.allow_tf32": False,
                "float32_matmul_precision": "highest"})
    try:
        yield
    finally:
        with _LOCK:
            _apply(saved)
