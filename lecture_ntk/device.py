"""Where tensors live and where random numbers come from.

The library never seeds globally and never moves data behind the caller's back:
functions infer device and dtype from their inputs. Random draws are made on a
CPU ``torch.Generator`` and then moved, so a run on CUDA sees the same numbers as
a run on the CPU.
"""
from __future__ import annotations

import torch


def get_device() -> torch.device:
    """Return CUDA when a GPU is visible, otherwise the CPU.

    Call it once, in the first cell of a notebook or at the top of a script,
    and pass tensors on that device to the library.
    """
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def make_generator(seed: int) -> torch.Generator:
    """Return a CPU ``torch.Generator`` seeded with ``seed``.

    Args:
        seed: a non-negative integer.

    Raises:
        TypeError: if ``seed`` is not an integer.
        ValueError: if ``seed`` is negative.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed: expected a non-negative int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed: expected a non-negative int, got {seed}")
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    return gen


def _type_name(x) -> str:
    """'numpy.random.Generator' rather than 'Generator': the module says which library."""
    t = type(x)
    return t.__name__ if t.__module__ == "builtins" else f"{t.__module__}.{t.__qualname__}"


def randn(*shape: int, generator: torch.Generator, dtype=torch.float64,
          device=None) -> torch.Tensor:
    """Draw iid N(0, 1) numbers on the CPU generator, then move them to ``device``.

    Drawing on the CPU first makes results identical across devices for one seed.
    """
    if not isinstance(generator, torch.Generator):
        raise TypeError("generator: expected a torch.Generator "
                        f"(see lecture_ntk.device.make_generator), got {_type_name(generator)}")
    z = torch.randn(*shape, generator=generator, dtype=dtype, device="cpu")
    return z.to(device) if device is not None else z


def rand(*shape: int, generator: torch.Generator, dtype=torch.float64,
         device=None) -> torch.Tensor:
    """Draw iid U[0, 1) numbers on the CPU generator, then move them to ``device``."""
    if not isinstance(generator, torch.Generator):
        raise TypeError("generator: expected a torch.Generator "
                        f"(see lecture_ntk.device.make_generator), got {_type_name(generator)}")
    u = torch.rand(*shape, generator=generator, dtype=dtype, device="cpu")
    return u.to(device) if device is not None else u
