"""Elementwise activations phi with their first and second derivatives.

Each activation is an ``Activation`` holding three elementwise functions:
``phi``, ``dphi`` (phi') and ``ddphi`` (phi''). The dual activations and the
Gaussian expectations built from them live in ``lecture_ntk.kernels``.

Names known to the library (``NAMES``):

- ``"relu"``: max(0, z); phi'' = 0 almost everywhere.
- ``"relu_normalized"``: sqrt(2) max(0, z), the lecture's Example 2 (E[phi(u)^2] = 1).
- ``"erf"``: erf(z).
- ``"tanh"``, ``"sin"``, ``"softplus"``: smooth activations for the Hessian (§10)
  and for the quadrature route of the dual.

Lecture: §3 Theorem 1, Example 2, Proposition 1 (phi twice differentiable).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

Fn = Callable[[torch.Tensor], torch.Tensor]

_SQRT2 = math.sqrt(2.0)
_TWO_OVER_SQRT_PI = 2.0 / math.sqrt(math.pi)


@dataclass(frozen=True)
class Activation:
    """An elementwise activation phi with phi' and phi''.

    Attributes:
        name: short identifier, used in error messages and plot labels.
        phi, dphi, ddphi: elementwise functions of a tensor.
        homogeneous: True when phi(c z) = c phi(z) for c > 0 (ReLU family), which
            lets kernels on any input norm reduce to the sphere (§8).
    """

    name: str
    phi: Fn
    dphi: Fn
    ddphi: Fn
    homogeneous: bool = False

    def __call__(self, z: torch.Tensor) -> torch.Tensor:
        return self.phi(z)


def _step(z: torch.Tensor) -> torch.Tensor:
    return (z > 0).to(z.dtype)


RELU = Activation("relu", torch.relu, _step, torch.zeros_like, homogeneous=True)
RELU_NORMALIZED = Activation(
    "relu_normalized",
    lambda z: _SQRT2 * torch.relu(z),
    lambda z: _SQRT2 * _step(z),
    torch.zeros_like,
    homogeneous=True,
)
ERF = Activation(
    "erf",
    torch.erf,
    lambda z: _TWO_OVER_SQRT_PI * torch.exp(-z * z),
    lambda z: -2.0 * _TWO_OVER_SQRT_PI * z * torch.exp(-z * z),
)
TANH = Activation(
    "tanh",
    torch.tanh,
    lambda z: 1.0 - torch.tanh(z) ** 2,
    lambda z: -2.0 * torch.tanh(z) * (1.0 - torch.tanh(z) ** 2),
)
SIN = Activation("sin", torch.sin, torch.cos, lambda z: -torch.sin(z))
SOFTPLUS = Activation(
    "softplus",
    torch.nn.functional.softplus,
    torch.sigmoid,
    lambda z: torch.sigmoid(z) * (1.0 - torch.sigmoid(z)),
)

_REGISTRY = {a.name: a for a in (RELU, RELU_NORMALIZED, ERF, TANH, SIN, SOFTPLUS)}
NAMES = tuple(_REGISTRY)


def get(activation: str | Activation) -> Activation:
    """Return the ``Activation`` for a name, or the object itself.

    Raises:
        ValueError: for an unknown name (the message lists the known ones).
        TypeError: for anything that is neither a name nor an ``Activation``.
    """
    if isinstance(activation, Activation):
        return activation
    if isinstance(activation, str):
        try:
            return _REGISTRY[activation]
        except KeyError:
            raise ValueError(f"activation: unknown name {activation!r}; "
                             f"known names are {', '.join(NAMES)}") from None
    raise TypeError("activation: expected a name or a lecture_ntk.activations.Activation, "
                    f"got {type(activation).__name__}")
