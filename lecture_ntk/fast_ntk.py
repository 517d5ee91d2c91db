"""The empirical NTK at scale: a structured route for fully connected networks, two generic ones.

- ``mlp_ntk`` (structured): for a stack of linear layers and elementwise activations no
  per-sample Jacobian is ever formed. Writing H_l for the inputs of linear layer l (rows =
  samples), s_l for its scale and G_l for the back-propagated signals d f_a / d z_l at its
  outputs (one per output a), the chain rule gives
      K = sum_l (G_l G~_l^T) * (s_l^2 H_l H~_l^T + [l has a bias]),
  products over the layer width, * entrywise. For the lecture's network (§5) this is
  K = (1/k) [phi(X B^T) phi(X~ B^T)^T + (X X~^T) * ((phi'(X B^T) A)(phi'(X~ B^T) A)^T)].
- ``jacobian_ntk``: Jacobian contraction J J~^T (``empirical.jacobian``, torch.func), any module.
- ``ntk_vp``: NTK-vector products K e_j = J (J~^T e_j) by torch.func vjp then jvp, any module.

All three work in tiles of rows of X1 and X2 under ``memory_budget`` bytes (the returned
kernel is not counted; the budget is met through estimates of each route's buffers, so
treat it as approximate, within some 10%). Several outputs: ``output="full"`` gives K[i, j, a, b] =
<grad f_a(x_i), grad f_b(x~_j)>, ``"diagonal"`` its a = b entries, ``"trace"`` sums or
averages them over a (``reduce``; the mean equals the scalar K of §9 when K is K I_c).

Numerics: every route runs its float32 products with TF32 off (``precision.full_precision``).

Lecture: Definition 2, proof of Theorem 1, §9 (several outputs); FORMULAS.md §3, §5, §9, §12.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jvp, vjp, vmap

from . import empirical, network
from ._checks import as_samples, check_int, check_same_d
from .precision import full_precision

MEMORY_BUDGET = 512 * 2**20   # bytes of working memory per call, the returned kernel excluded
OUTPUTS = ("full", "trace", "diagonal")
METHODS = ("auto", "structured", "jacobian", "ntk_vp")
_VP_ROWS = 64                  # X2 rows pulled back together by ntk_vp (cost grows with it)


class _Linear(NamedTuple):
    weight: torch.Tensor       # (out, in)
    bias: torch.Tensor | None  # (out,)
    scale: float               # z = scale * h W^T + b


class _Act(NamedTuple):
    phi: object
    dphi: object


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def _gelu_dphi(z, approximate):
    if approximate == "tanh":
        u = _SQRT_2_OVER_PI * (z + 0.044715 * z ** 3)
        t = torch.tanh(u)
        return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * z * z)
    cdf = 0.5 * (1 + torch.erf(z / math.sqrt(2.0)))
    return cdf + z * torch.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)


def _elementwise(m: nn.Module) -> _Act | None:
    """phi and phi' of a supported activation module; None for nn.Identity."""
    t = type(m)
    if t is nn.Identity:
        return None
    if t is nn.ReLU:  # phi'(0) = 0, as autograd
        return _Act(torch.relu, lambda z: (z > 0).to(z.dtype))
    if t is nn.LeakyReLU:
        s = m.negative_slope
        return _Act(lambda z: F.leaky_relu(z, s), lambda z: s + (1 - s) * (z > 0).to(z.dtype))
    if t is nn.Tanh:
        return _Act(torch.tanh, lambda z: 1 - torch.tanh(z) ** 2)
    if t is nn.Sigmoid:
        return _Act(torch.sigmoid, lambda z: torch.sigmoid(z) * (1 - torch.sigmoid(z)))
    if t is nn.GELU:
        return _Act(lambda z: F.gelu(z, approximate=m.approximate),
                    lambda z: _gelu_dphi(z, m.approximate))
    if t is nn.Softplus:
        b, th = m.beta, m.threshold  # linear above the threshold, as torch does
        return _Act(lambda z: F.softplus(z, b, th),
                    lambda z: torch.where(z * b > th, torch.ones_like(z), torch.sigmoid(z * b)))
    raise TypeError(f"model: expected layers the structured NTK supports (nn.Linear, nn.ReLU, "
                    "nn.LeakyReLU, nn.Tanh, nn.Sigmoid, nn.GELU, nn.Softplus, nn.Identity, "
                    f"network.ShallowNet), got {t.__name__}; use method='jacobian' or 'ntk_vp'")


def _has_hooks(model: nn.Module) -> bool:
    """True if a hook could change what the module computes (the structured route reads the
    layers' weights and never calls their forward)."""
    glob = nn.modules.module
    if any(getattr(glob, g, None) for g in ("_global_forward_hooks", "_global_forward_pre_hooks",
                                             "_global_backward_hooks",
                                             "_global_backward_pre_hooks")):
        return True
    return any(getattr(m, h, None) for m in model.modules()
               for h in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks",
                         "_backward_pre_hooks"))


def _parse(model: nn.Module) -> list:
    """The model as a list of _Linear / _Act ops, or TypeError if it is not a supported stack."""
    if _has_hooks(model):
        raise TypeError("model: expected a module without hooks (the structured NTK reads the "
                        "layers' weights and never runs their forward), got forward or backward "
                        "hooks registered; use method='jacobian' or 'ntk_vp'")
    if type(model) is network.ShallowNet:
        act = model.activation
        scale = 1 / math.sqrt(model.k) if model.scaled else 1.0
        return [_Linear(model.B, None, 1.0), _Act(act.phi, act.dphi), _Linear(model.A, None, scale)]
    if type(model) is nn.Linear:
        layers = [model]
    elif type(model) is nn.Sequential:
        layers, stack = [], list(model)[::-1]
        while stack:
            m = stack.pop()
            if type(m) is nn.Sequential:
                stack.extend(list(m)[::-1])
            else:
                layers.append(m)
    else:
        raise TypeError(f"model: expected an nn.Sequential of nn.Linear and elementwise "
                        f"activations, an nn.Linear or a network.ShallowNet, got "
                        f"{type(model).__name__}; use method='jacobian' or 'ntk_vp'")
    ops, seen = [], set()
    for m in layers:
        if type(m) is nn.Linear:
            ops.append(_Linear(m.weight, m.bias, 1.0))
            for p in (m.weight, m.bias) if m.bias is not None else (m.weight,):
                if id(p) in seen:
                    raise TypeError("model: expected one use per parameter (the structured NTK), "
                                    "got a parameter shared between layers; use "
                                    "method='jacobian'")
                seen.add(id(p))
        elif (op := _elementwise(m)) is not None:
            ops.append(op)
    if not any(isinstance(op, _Linear) for op in ops):
        raise TypeError(f"model: expected at least one nn.Linear layer (the structured NTK), "
                        f"got none in {type(model).__name__}")
    if seen != {id(p) for p in model.parameters()}:
        raise TypeError("model: expected every parameter inside an nn.Linear layer (the "
                        "structured NTK), got parameters outside them; use method='jacobian'")
    return ops


# ----------------------------------------------------------------------- structured route

def _structured_features(ops, X):
    """Forward once, back-propagate the signals; per linear layer (H, G, scale, bias?).

    G is None for the last layer when nothing follows it (the identity over outputs),
    else (b, c, width). Ops are walked backwards so the pre-activations are freed early;
    neither the network's output nor the signal below the first layer is computed.
    """
    inputs, h = [], X
    for i, op in enumerate(ops):
        inputs.append(h)
        if i == len(ops) - 1:                  # the network's output itself is not needed
            break
        if isinstance(op, _Linear) and op.scale == 1:
            h = F.linear(h, op.weight, op.bias)
        elif isinstance(op, _Linear):
            h = F.linear(h, op.weight) * op.scale
            h = h if op.bias is None else h + op.bias
        else:
            h = op.phi(h)
    feats, G = [], None
    first = next(i for i, op in enumerate(ops) if isinstance(op, _Linear))
    for i in range(len(ops) - 1, first - 1, -1):  # nothing below the first linear layer is needed
        op, h = ops[i], inputs.pop()
        if isinstance(op, _Linear):
            feats.append((h, G, op.scale, op.bias is not None))
            if i == first:
                break
            W = op.weight * op.scale if op.scale != 1 else op.weight
            G = W.expand(h.shape[0], *W.shape) if G is None else G @ W
        else:
            dz = op.dphi(h)
            G = torch.diag_embed(dz) if G is None else G * dz[:, None, :]
    return feats[::-1]


def _gram(G1, G2, output, c):
    """sum over the last dim of G1[i, a] G2[j, b], in the layout of ``output``."""
    b1, b2, w = G1.shape[0], G2.shape[0], G1.shape[-1]
    if c == 1:
        return G1[:, 0] @ G2[:, 0].T
    if output == "trace":
        return G1.reshape(b1, c * w) @ G2.reshape(b2, c * w).T
    if output == "diagonal":
        return torch.bmm(G1.transpose(0, 1), G2.permute(1, 2, 0)).permute(1, 2, 0)
    full = G1.reshape(b1 * c, w) @ G2.reshape(b2 * c, w).T
    return full.reshape(b1, c, b2, c).permute(0, 2, 1, 3)


def _tile_shape(b1, b2, output, c):
    if c == 1 or output == "trace":
        return (b1, b2)
    return (b1, b2, c) if output == "diagonal" else (b1, b2, c, c)


def _structured_tile(F1, F2, output, c):
    """K tile = sum over layers of (G1 G2^T) * (s^2 H1 H2^T + bias)."""
    shape = _tile_shape(F1[0][0].shape[0], F2[0][0].shape[0], output, c)
    K = torch.zeros(shape, dtype=F1[0][0].dtype, device=F1[0][0].device)
    for (H1, G1, s, bias), (H2, G2, _, _) in zip(F1, F2):
        HH = H1 @ H2.T
        if s != 1:
            HH.mul_(s * s)
        if bias:
            HH.add_(1.0)
        HH = HH.reshape(HH.shape + (1,) * (len(shape) - 2))
        if G1 is not None:
            K.addcmul_(_gram(G1, G2, output, c), HH)
        elif len(shape) == 4:                  # G is the identity over outputs: a = b only
            K.diagonal(dim1=2, dim2=3).add_(HH[:, :, :, 0])
        else:                                  # trace sums c equal terms
            K.add_(HH, alpha=c if output == "trace" else 1)
    return K


# -------------------------------------------------------------------------- generic routes

def _outputs(model, params, X):
    out = functional_call(model, params, (X,))
    return out[:, None] if out.ndim == 1 else out


def _from_full(K, output, c):
    """Reduce a (b1, b2, c, c) tile to the layout of ``output``."""
    if c == 1:
        return K[:, :, 0, 0]
    if output == "trace":
        return K.diagonal(dim1=2, dim2=3).sum(-1)
    return K.diagonal(dim1=2, dim2=3) if output == "diagonal" else K


def _vp_tile(model, params, X1b, X2b, output, c):
    """K(X1b, X2b) by NTK-vector products: pull back one-hot cotangents of f(X2b),
    push the parameter tangents forward through f(X1b)."""
    b2 = X2b.shape[0]
    _, pull = vjp(lambda p: _outputs(model, p, X2b), params)
    cotangents = torch.eye(b2 * c, dtype=X2b.dtype, device=X2b.device).reshape(b2 * c, b2, c)
    tangents = vmap(pull)(cotangents)[0]                          # name -> (b2 c, *shape)
    cols = vmap(lambda t: jvp(lambda p: _outputs(model, p, X1b), (params,), (t,))[1])(tangents)
    full = cols.reshape(b2, c, X1b.shape[0], c).permute(2, 0, 3, 1)   # (b1, b2, c_a, c_b)
    return _from_full(full, output, c)


# ------------------------------------------------------------------------- tiles and budget

def _slice(feats, s, e):
    if isinstance(feats, torch.Tensor):
        return feats[s:e]
    if isinstance(feats, (list, tuple)):
        return type(feats)(_slice(f, s, e) for f in feats)
    return feats


def _plan(n1, n2, row_bytes, pair_bytes, budget, symmetric, max_b2=None):
    """Tile sizes (b1, b2) and whether X2's features are computed once and cached.

    Cache when they take at most half the budget; else square tiles with
    2 b row_bytes + b^2 pair_bytes <= budget and features recomputed per tile.
    A symmetric K(X, X) of n >= 512 rows is cut into at least 4 row blocks: only
    blocks on and above the diagonal are multiplied, 5/8 of the Gram products.
    """
    if max_b2 is None and n2 * row_bytes <= budget // 2:
        per_row1 = (0 if symmetric else row_bytes) + n2 * pair_bytes
        b1 = max(1, min(n1, (budget - n2 * row_bytes) // per_row1))
        return (min(b1, -(-n1 // 4)) if symmetric and n1 >= 512 else b1), n2, True
    b = int((-row_bytes + math.sqrt(row_bytes ** 2 + pair_bytes * budget)) / pair_bytes)
    b1, b2 = max(1, min(n1, b)), max(1, min(n2, b, max_b2 or n2))
    return (min(b1, b2), min(b1, b2), False) if symmetric else (b1, b2, False)


def _tiled(featurize, tile, X1, X2, shape, *, row_bytes, pair_bytes, budget, max_b2=None):
    """Fill K tile by tile; with X2 None only tiles on or above the diagonal, mirrored."""
    symmetric = X2 is None
    X2 = X1 if symmetric else X2
    n1, n2 = X1.shape[0], X2.shape[0]
    b1, b2, cache = _plan(n1, n2, row_bytes, pair_bytes, budget, symmetric, max_b2)
    K = torch.empty(n1, n2, *shape, dtype=X1.dtype, device=X1.device)
    cached = featurize(X2) if cache else None
    for s1 in range(0, n1, b1):
        e1 = min(n1, s1 + b1)
        F1 = _slice(cached, s1, e1) if cache and symmetric else featurize(X1[s1:e1])
        for s2 in range(s1 if symmetric else 0, n2, b2):
            e2 = min(n2, s2 + b2)
            F2 = (_slice(cached, s2, e2) if cache else
                  F1 if symmetric and s2 == s1 and e2 == e1 else featurize(X2[s2:e2]))
            T = tile(F1, F2)
            K[s1:e1, s2:e2] = T
            if symmetric and s2 == s1:  # average the diagonal block with its mirror image
                D = K[s1:e1, s1:e1]
                D.copy_(0.5 * (D + _mirror(D)))
            if symmetric and e2 > e1:
                off = max(0, e1 - s2)
                K[s2 + off:e2, s1:e1] = _mirror(T[:, off:])
    return K


def _mirror(T):
    """The tile of K(X2, X1) from a tile of K(X1, X2): swap samples and outputs."""
    M = T.transpose(0, 1)
    return M.transpose(2, 3) if M.ndim == 4 else M


# ---------------------------------------------------------------------------- public API

def _check_inputs(model, X1, X2, output, reduce, memory_budget):
    first = empirical._check_model(model)
    X1 = as_samples(X1, "X1", like=first)
    if X2 is not None:
        X2 = as_samples(X2, "X2", like=first)
        check_same_d(X1, X2)
    for name, X in (("X1", X1), ("X2", X2)):
        if X is not None and X.shape[0] == 0:
            raise ValueError(f"{name}: expected at least one sample (row), "
                             f"got shape {tuple(X.shape)}")
    if output not in OUTPUTS:
        raise ValueError(f"output: expected one of {', '.join(OUTPUTS)}, got {output!r}")
    if reduce not in ("sum", "mean"):
        raise ValueError(f"reduce: expected 'sum' or 'mean', got {reduce!r}")
    budget = MEMORY_BUDGET if memory_budget is None else check_int(memory_budget, "memory_budget")
    return X1, X2, budget


def _finish(K, output, reduce, c):
    if output == "trace" and reduce == "mean" and c > 1:
        K /= c
    return K[:, :, None] if output == "diagonal" and c == 1 else K


def _tail(output, c):
    return _tile_shape(0, 0, output, c)[2:]


@full_precision()
def mlp_ntk(model: nn.Module, X1, X2=None, *, output: str = "full", reduce: str = "mean",
            memory_budget: int = MEMORY_BUDGET) -> torch.Tensor:
    """Empirical NTK of a fully connected network, layer by layer, without Jacobians.

    K(x, x~) = sum_l (G_l(x) G_l(x~)^T) * (s_l^2 H_l(x) H_l(x~)^T + [bias]),
    H_l = inputs of linear layer l, G_l = d f / d z_l at its outputs, s_l its scale.
    One hidden layer (§5): K = (1/k) [phi(X B^T) phi(X~ B^T)^T
                                      + (X X~^T) * ((phi'(X B^T) A)(phi'(X~ B^T) A)^T)].

    Lecture: Definition 2, proof of Theorem 1, §9; FORMULAS.md §3, §5, §9, §12.

    Args:
        model: ``network.ShallowNet``, an ``nn.Linear``, or an ``nn.Sequential`` (nested
            allowed) of ``nn.Linear`` (bias or not) and nn.ReLU, LeakyReLU, Tanh, Sigmoid,
            GELU, Softplus, Identity; c outputs.
        X1: (n1, d) tensor, rows are samples; X2: (n2, d) tensor or None (then X1, and
            only tiles on and above the diagonal are computed).
        output: "full" -> (n1, n2, c, c), or (n1, n2) when c = 1 (as ``empirical_ntk``);
            "diagonal" -> (n1, n2, c), the entries a = b; "trace" -> (n1, n2).
        reduce: for "trace": "sum" over a, or "mean" (= the scalar kernel of §9).
        memory_budget: bytes for features and tiles (the returned kernel is extra);
            None means ``MEMORY_BUDGET`` (512 MiB).

    Returns:
        the kernel in the layout of ``output``, dtype and device of X1, no autograd graph.

    Raises:
        TypeError: for a model that is not such a stack (use ``jacobian_ntk``).

    Numerics: tiles come from the same products in any order, so chunked and
    unchunked results agree to rounding; with X2 = None each diagonal tile is averaged
    with its transpose, so the result is exactly symmetric. float32 products run with
    TF32 off (``precision.full_precision``), as in ``jacobian_ntk`` and ``ntk_vp``.
    """
    X1, X2, budget = _check_inputs(model, X1, X2, output, reduce, memory_budget)
    if X2 is not None and (X2.data_ptr(), X2.shape, X2.stride()) == \
            (X1.data_ptr(), X1.shape, X1.stride()):
        X2 = None  # K(X, X) passed as (X, X): use the symmetric route
    ops = _parse(model)
    lin = [op for op in ops if isinstance(op, _Linear)]
    if lin[0].weight.shape[1] != X1.shape[1]:
        raise ValueError(f"X1: expected {lin[0].weight.shape[1]} feature columns to match the "
                         f"first linear layer, got shape {tuple(X1.shape)}")
    c, item = lin[-1].weight.shape[0], X1.element_size()
    acts = sum(op.weight.shape[0] for i, op in enumerate(ops[:-1])
               if isinstance(op, _Linear) and isinstance(ops[i + 1], _Act))
    row = item * (sum(op.weight.shape[1] + c * op.weight.shape[0] for op in lin) + (2 + c) * acts)
    pair = item * 2 * math.prod(_tail(output, c) or (1,))
    with torch.no_grad():
        K = _tiled(lambda X: _structured_features(ops, X),
                   lambda F1, F2: _structured_tile(F1, F2, output, c),
                   X1, X2, _tail(output, c), row_bytes=row, pair_bytes=pair, budget=budget)
    return _finish(K, output, reduce, c)


def _probe(model, X, name="X1"):
    """(c, activations per sample): one forward on one row, counting module outputs."""
    count = [0]

    def hook(module, args, out):
        count[0] += out.numel() if isinstance(out, torch.Tensor) else 0

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    try:
        with torch.no_grad():
            out = model(X[:1])
    except (RuntimeError, ValueError) as exc:
        raise ValueError(f"{name}: expected rows the model accepts, got shape {tuple(X.shape)} "
                         f"(model({name}[:1]) raised: {exc})") from exc
    finally:
        for h in handles:
            h.remove()
    if out.ndim not in (1, 2) or out.shape[0] != 1:
        raise ValueError(f"model: expected an output of shape (n,) or (n, c), got shape "
                         f"{tuple(out.shape)} for n = 1")
    return (1 if out.ndim == 1 else out.shape[1]), count[0]


@full_precision()
def jacobian_ntk(model: nn.Module, X1, X2=None, *, output: str = "full", reduce: str = "mean",
                 memory_budget: int = MEMORY_BUDGET) -> torch.Tensor:
    """Empirical NTK of any module by Jacobian contraction, in tiles of rows.

    K[i, j, a, b] = sum_p J1[i, a, p] J2[j, b, p],  J = ``empirical.jacobian`` (torch.func).

    Lecture: Definition 2, §9. Args, Returns: as ``mlp_ntk`` (any ``nn.Module``).
    """
    X1, X2, budget = _check_inputs(model, X1, X2, output, reduce, memory_budget)
    c, act = _probe(model, X1)
    p, item = sum(w.numel() for w in model.parameters()), X1.element_size()
    row = item * c * (3 * p + empirical._CHUNK * act)  # J, its block copies, jacrev's buffers
    pair = item * 2 * math.prod(_tail(output, c) or (1,))
    K = _tiled(lambda X: empirical.jacobian(model, X).detach(),
               lambda J1, J2: _gram(J1, J2, output, c),
               X1, X2, _tail(output, c), row_bytes=row, pair_bytes=pair, budget=budget)
    return _finish(K, output, reduce, c)


@full_precision()
def ntk_vp(model: nn.Module, X1, X2=None, *, output: str = "full", reduce: str = "mean",
           memory_budget: int = MEMORY_BUDGET) -> torch.Tensor:
    """Empirical NTK of any module by NTK-vector products (torch.func vjp, then jvp).

    K e_(j, b) = J1 (J2^T e_(j, b)): pull back a one-hot cotangent of f(X2), push the
    parameter tangent forward through f(X1). No Jacobian of X1 is stored.

    Lecture: Definition 2, §9. Args, Returns: as ``mlp_ntk`` (any ``nn.Module``).
    """
    X1, X2, budget = _check_inputs(model, X1, X2, output, reduce, memory_budget)
    c, act = _probe(model, X1)
    p, item = sum(w.numel() for w in model.parameters()), X1.element_size()
    params = {name: w.detach() for name, w in model.named_parameters()}
    K = _tiled(lambda X: X, lambda A, B: _vp_tile(model, params, A, B, output, c).detach(),
               X1, X2, _tail(output, c), row_bytes=item * c * 2 * p,
               pair_bytes=item * c * (4 * act + c), budget=budget, max_b2=_VP_ROWS)
    return _finish(K, output, reduce, c)


def pick_method(model: nn.Module) -> str:
    """"structured" when ``mlp_ntk`` supports the model, else "jacobian" (the generic fallback)."""
    try:
        _parse(model)
    except TypeError:
        return "jacobian"
    return "structured"


def empirical_ntk_auto(model: nn.Module, X1, X2=None, *, method: str = "auto",
                       output: str = "full", reduce: str = "mean",
                       memory_budget: int = MEMORY_BUDGET) -> torch.Tensor:
    """Empirical NTK by the fastest applicable route, or the one ``method`` names.

    K(x, x~) = < grad f_x(w0), grad f_x~(w0) >  (Definition 2).

    Args:
        method: "auto" (``pick_method``), "structured" (``mlp_ntk``), "jacobian"
            (``jacobian_ntk``) or "ntk_vp" (``ntk_vp``).
        model, X1, X2, output, reduce, memory_budget: as ``mlp_ntk``.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {method!r}")
    if method == "auto":
        empirical._check_model(model)
        method = pick_method(model)
    route = {"structured": mlp_ntk, "jacobian": jacobian_ntk, "ntk_vp": ntk_vp}[method]
    return route(model, X1, X2, output=output, reduce=reduce, memory_budget=memory_budget)
