"""Example 3's width sweep: every width and every seed trained together, batched.

All networks (one per (seed, width)) share one big hidden layer: their units are
stored side by side in chunks of ``CHUNK`` units, each network owning whole chunks
(the last one padded with inert units: A = B = 0 and scale 0, which stay exactly
zero under gradient descent). One step of gradient descent for all networks is:

    Z = X B^T (every unit, every sample);  F[:, net] = segment sum of sqrt(2/k) a relu(Z)
    R = F - y;  L[net] = 1/2 sum_i R_i^2;  then the §5 gradients from the residuals:
    dL/da_u = sqrt(2/k) b_u . S_u,   dL/db_u = sqrt(2/k) a_u S_u,
    S_u = sum_i R_i[net(u)] 1[z_iu > 0] x_i

(the relu factor sqrt(2) is folded into the scale). Each network checks its own
stopping rules (``train`` module docstring, divergence included) before each step and is
frozen from its stopping step on: ``torch.where`` masks keep its weights and loss exactly
fixed. When few units are still training, the tensors are compacted to the active ones.

Divergence: a network whose loss becomes non-finite or exceeds 1e3 max(L_0, 1/2 |y|^2)
stops with reason "diverged" at the same step as ``train.gradient_descent`` would (the
test is a few operations on the N per-network losses, fused into the compiled step, not
a per-step synchronisation); the others train on. At the end ``width_sweep`` raises
``train.DivergenceError`` naming each diverged (seed, width), the learning rate and each
network's 2 / lambda_max(K(w0)); the complete result is the exception's ``result``.

Speed: the step loop runs as one ``torch.compile``d ``torch.while_loop`` per block of
``BLOCK`` steps (fused C++ kernels, no Python per step). Measured on 2 CPU cores in
float64 for Example 3's 3 x 8 networks of width >= 15 (about 6500 units): ~0.2 ms per
step compiled, ~0.5-1 ms in eager torch with preallocated buffers, ~2-3 ms without;
compiling costs ~10-30 s per tensor shape (a compaction is a new shape). Without a
working compiler the sweep falls back to the eager step. By default it runs on one
thread: on two busy cores a second thread made each step several times slower.

Lecture: Section 5, Example 3, Figure 1; FORMULAS.md §5, §11; notebook 06.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from tqdm import tqdm

from . import network, train
from ._checks import as_samples, check_device, check_dtype, check_int

CHUNK = 64
BLOCK = 1000
_CODES = dict(enumerate(train.REASONS, start=1))   # reason codes; 0 = still training
_THR, _PAT, _CAP, _DIV = (train.REASONS.index(r) + 1
                          for r in ("threshold", "patience", "cap", "diverged"))


def _step(a, b, active, steps, count, prev, loss, reason, X, y, c, chunk_net, use_thr,
          ceiling, lr, threshold, keep, patience, max_steps, buf=None):
    """One gradient step for every active network (all others frozen); see the module docstring.

    Shapes: a, c (nch, CHUNK); b (d, nch, CHUNK); per network (N,): active, steps,
    count, prev, loss, reason, use_thr, ceiling (the divergence level, float64);
    X (n, d); y (n,); chunk_net (nch,) network of each chunk.
    ``buf`` optionally holds preallocated (n, nch, CHUNK) float tensors "Z", "M", "H" that
    the three large intermediates are written into (eager mode: no allocation per step;
    M then holds the 0/1 mask 1[z > 0] as floats, which avoids casting a bool mask).
    """
    buf = buf or {}
    n, d = X.shape
    Z = torch.mul(X[:, 0, None, None], b[0], out=buf.get("Z"))     # pre-activations
    for j in range(1, d):
        Z.addcmul_(X[:, j, None, None], b[j])
    M = torch.gt(Z, 0, out=buf.get("M"))
    ca = c * a
    H = torch.clamp(Z, min=0.0, out=buf.get("H")).mul_(ca)         # sqrt(2/k) a relu(z)
    R = torch.zeros(n, active.shape[0], dtype=Z.dtype, device=Z.device)
    R.index_add_(1, chunk_net, H.sum(-1)).sub_(y[:, None])           # residuals F - y (n, N)
    L = (0.5 * (R * R).sum(0)).to(loss.dtype)
    blown = ~torch.isfinite(L) | (L > ceiling)                      # checked first, as in train
    hit = use_thr & (L < threshold)
    flat = ~use_thr & ~(L < prev * keep)
    count = count + (active & flat).long()
    tired = flat & (count > patience)
    stop = active & (blown | hit | tired | (steps >= max_steps))
    reason = torch.where(stop, torch.where(blown, _DIV, torch.where(
        hit, _THR, torch.where(tired, _PAT, _CAP))), reason)
    loss = torch.where(active, L, loss)
    prev = torch.where(active, L, prev)
    active = active & ~stop
    Q = torch.mul(M, R[:, chunk_net][..., None], out=buf.get("H"))  # R where z > 0
    S = torch.tensordot(X, Q, dims=([0], [0]))                       # sum_i R_i 1[z > 0] x_i
    live = active[chunk_net][:, None]
    a = torch.where(live, a - lr * (c * (b * S).sum(0)), a)
    b = torch.where(live, b - lr * (ca * S), b)
    return a, b, active, steps + active.long(), count, prev, loss, reason


def _block(num, a, b, active, steps, count, prev, loss, reason, *consts):
    """Up to ``num`` steps (0-d tensor) in one ``torch.while_loop``; ends early when all stopped."""
    def cond(i, a, b, active, *rest):
        return (i < num) & active.any()

    def body(i, *state):
        return (i + 1, *_step(*state, *consts))

    i = torch.zeros((), dtype=torch.long, device=a.device)
    return torch.while_loop(cond, body, (i, a, b, active, steps, count, prev, loss, reason))


def _eager_block(num, *state_and_consts):
    """The same as ``_block`` in plain eager torch, writing into preallocated buffers."""
    state, consts = list(state_and_consts[:8]), state_and_consts[8:]
    shape = (consts[0].shape[0],) + tuple(state[0].shape)
    buf = {name: state[0].new_empty(shape) for name in ("Z", "M", "H")}
    for i in range(int(num)):
        if not bool(state[2].any()):
            return (i, *state)
        state = _step(*state, *consts, buf=buf)
    return (int(num), *state)


_COMPILED = None


def _compiled_block():
    global _COMPILED
    if _COMPILED is None:
        _COMPILED = torch.compile(_block, fullgraph=True, dynamic=False)
    return _COMPILED


def _run(num, state, consts, engine):
    """Run one block with the requested engine; return (engine used, steps run, new state)."""
    if engine == "compiled":
        # Each compaction is a new shape, hence a recompile: allow more than dynamo's default 8.
        limits = {k: v for k, v in (("recompile_limit", 64), ("accumulated_recompile_limit", 512))
                  if hasattr(torch._dynamo.config, k)}
        try:
            with torch._dynamo.config.patch(**limits):
                out = _compiled_block()(num, *state, *consts)
            return engine, int(out[0]), list(out[1:])
        except Exception:  # no C++ compiler, unsupported platform or torch version: fall back
            engine = "eager"
    out = _eager_block(num, *state, *consts)
    return engine, int(out[0]), list(out[1:])


class _Packed:
    """Every network's weights in the chunk layout, with which chunks are still trained."""

    def __init__(self, widths, seeds, X, y, patience_below):
        nets = [(s, k) for s in seeds for k in widths]
        d, dtype, device = X.shape[1], X.dtype, X.device
        a, b, c, owner, ceiling = [], [], [], [], []
        for j, (seed, k) in enumerate(nets):
            A, B = train.initial_params(seed, k, d, dtype=dtype)
            L0 = train._loss(A.to(device), B.to(device), X, y).item()
            ceiling.append(train._ceiling(L0, y))
            pad = -k % CHUNK
            a.append(torch.nn.functional.pad(A[0], (0, pad)))
            b.append(torch.nn.functional.pad(B.T, (0, pad)))
            c.append(torch.nn.functional.pad(torch.full((k,), math.sqrt(2.0 / k), dtype=dtype),
                                             (0, pad)))
            owner.append(torch.full(((k + pad) // CHUNK,), j))
        self.a = torch.cat(a).view(-1, CHUNK).to(device)
        self.b = torch.cat(b, dim=1).view(d, -1, CHUNK).to(device)
        self.c = torch.cat(c).view(-1, CHUNK).to(device)
        self.owner = torch.cat(owner).to(device)
        N = len(nets)
        f64 = dict(dtype=torch.float64, device=device)
        self.active = torch.ones(N, dtype=torch.bool, device=device)
        self.steps = torch.zeros(N, dtype=torch.long, device=device)
        self.count = torch.zeros(N, dtype=torch.long, device=device)
        self.prev = torch.full((N,), math.inf, **f64)
        self.loss = torch.full((N,), math.nan, **f64)
        self.reason = torch.zeros(N, dtype=torch.long, device=device)
        self.use_thr = torch.tensor([k >= patience_below for _, k in nets], device=device)
        self.ceiling = torch.tensor(ceiling, **f64)
        self.nets = torch.arange(N, device=device)
        self.chunks = torch.arange(len(self.owner), device=device)

    def working(self):
        """State and per-chunk constants of the networks still in the working set."""
        local = torch.searchsorted(self.nets, self.owner[self.chunks])
        state = [self.a[self.chunks], self.b[:, self.chunks]] + [
            getattr(self, k)[self.nets] for k in ("active", "steps", "count", "prev", "loss",
                                                  "reason")]
        return state, (self.c[self.chunks], local, self.use_thr[self.nets],
                       self.ceiling[self.nets])

    def store(self, state):
        """Write a working state back into the full arrays."""
        self.a[self.chunks], self.b[:, self.chunks] = state[0], state[1]
        for k, v in zip(("active", "steps", "count", "prev", "loss", "reason"), state[2:]):
            getattr(self, k)[self.nets] = v

    def shrink(self):
        """Keep only the networks still training in the working set."""
        self.nets = self.nets[self.active[self.nets]]
        self.chunks = self.chunks[self.active[self.owner[self.chunks]]]


@dataclass(frozen=True)
class SweepResult:
    """Outcome of ``width_sweep``; index [s, w] means seeds[s], widths[w].

    Attributes:
        widths, seeds: as given.
        steps: (S, W) int64, updates made; loss: (S, W) float64, final training loss.
        reasons: S tuples of W strings from ``train.REASONS`` ("threshold", "patience",
            "cap"; "diverged" only in the result a ``train.DivergenceError`` carries).
        A, B: S tuples of W tensors, the trained (1, k) and (k, d) weights.
        engine: "compiled" or "eager"; seconds: wall time of the training loop.
    """

    widths: tuple
    seeds: tuple
    steps: torch.Tensor
    loss: torch.Tensor
    reasons: tuple
    A: tuple
    B: tuple
    engine: str
    seconds: float

    def __repr__(self) -> str:
        counts = {}
        for row in self.reasons:
            for r in row:
                counts[r] = counts.get(r, 0) + 1
        stops = ", ".join(f"{r}: {c}" for r, c in sorted(counts.items()))
        return (f"SweepResult(widths={list(self.widths)}, seeds={list(self.seeds)}, "
                f"steps {int(self.steps.min())}..{int(self.steps.max())}, stops {{{stops}}}, "
                f"engine={self.engine!r})")

    def predict(self, X) -> torch.Tensor:
        """Outputs of every trained network on the rows of X (n, d): shape (S, W, n).

        X is converted to the dtype and device the networks were trained in.
        """
        like = self.A[0][0]
        X = as_samples(X, "X").to(dtype=like.dtype, device=like.device)
        return torch.stack([torch.stack([network.forward(A, B, X)[:, 0] for A, B in zip(As, Bs)])
                            for As, Bs in zip(self.A, self.B)])

    def test_mse(self, X, y) -> torch.Tensor:
        """Mean squared error 1/m sum_i (f(x_i) - y_i)^2 of every network: shape (S, W)."""
        X, y = train.check_training_data(X, y)
        like = self.A[0][0]
        return ((self.predict(X) - y.to(dtype=like.dtype, device=like.device)) ** 2).mean(-1)


def _ints(values, name, minimum):
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name}: expected a list of ints >= {minimum}, "
                        f"got {type(values).__name__}")
    return tuple(check_int(v, name, minimum=minimum) for v in values)


def _check_sweep_args(X_train, y_train, widths, seeds):
    X, y = train.check_training_data(X_train, y_train)
    widths, seeds = _ints(widths, "widths", 1), _ints(seeds, "seeds", 0)
    if widths and max(widths) >= train._SEED_STRIDE:
        raise ValueError(f"widths: expected widths below {train._SEED_STRIDE}, "
                         f"got {max(widths)}")
    if not widths or not seeds:
        raise ValueError(f"widths, seeds: expected non-empty lists, got {len(widths)} widths "
                         f"and {len(seeds)} seeds")
    if len(set(widths)) != len(widths) or len(set(seeds)) != len(seeds):
        raise ValueError(f"widths, seeds: expected no repeats, got widths={widths}, seeds={seeds}")
    return X, y, widths, seeds


def _result(packed, widths, seeds, engine, seconds):
    S, W, d = len(seeds), len(widths), packed.b.shape[0]
    As, Bs, start = [], [], 0
    for k in widths * S:
        q = -(-k // CHUNK)
        As.append(packed.a[start:start + q].reshape(-1)[:k][None, :].clone())
        Bs.append(packed.b[:, start:start + q].reshape(d, -1)[:, :k].T.clone())
        start += q
    nest = lambda v: tuple(tuple(v[s * W:(s + 1) * W]) for s in range(S))  # noqa: E731
    reasons = [_CODES[int(r)] for r in packed.reason]
    return SweepResult(widths, seeds, packed.steps.view(S, W).cpu(), packed.loss.view(S, W).cpu(),
                       nest(reasons), nest(As), nest(Bs), engine, seconds)


def width_sweep(X_train, y_train, widths, seeds, *, lr: float = train.LR,
                threshold: float = train.THRESHOLD, patience: int = train.PATIENCE,
                tol: float = train.TOL, max_steps: int = 100_000,
                patience_below: int = train.PATIENCE_BELOW, dtype=torch.float64, device=None,
                engine: str = "auto", num_threads: int | None = 1,
                progress: bool = True) -> SweepResult:
    """Train f_k(x) = sqrt(2/k) A relu(B x) for every (seed, width) by gradient descent, together.

    Each network starts from ``train.initial_params(seed, k, d)`` and follows exactly
    ``train.gradient_descent`` (same rules, same updates up to rounding), but all are
    advanced in one batched computation (module docstring).

    Args:
        X_train: (n, d) inputs, rows are samples (``data.with_bias(x)`` for Example 3).
        y_train: (n,) labels.
        widths: list of widths k >= 1; seeds: list of seeds >= 0 (no repeats).
        lr, threshold, patience, tol, max_steps, patience_below: as in
            ``train.gradient_descent`` (defaults: the lecture's values, tol = 1e-8).
        dtype, device: where the networks are trained (inputs are converted; device=None
            keeps the device of X_train).
        engine: "auto" (compiled when possible), "compiled" (same fallback) or "eager".
        num_threads: torch threads during the sweep (restored afterwards); None keeps them.
        progress: show a tqdm progress bar of the step count.

    Returns:
        ``SweepResult`` with per-(seed, width) steps, final loss, reason, weights.

    Raises:
        train.DivergenceError: after the loop, if some network's loss became non-finite or
            exceeded 1e3 max(L_0, 1/2 |y|^2); the message names those (seed, width), lr and
            their 2 / lambda_max(K(w0)); ``.result`` is the full ``SweepResult``.

    Numerics:
        The stopping rules compare losses in float64 whatever ``dtype`` is (in float32 a
        relative ``tol`` below ~1e-7 is not resolved anyway). Frozen networks are held by
        ``torch.where``, so their weights and loss stay bit for bit what they were.

    Lecture: Section 5, Example 3; FORMULAS.md §11; notebook 06.
    """
    X, y, widths, seeds = _check_sweep_args(X_train, y_train, widths, seeds)
    lr, threshold, patience, tol, max_steps, patience_below = train.check_rules(
        lr, threshold, patience, tol, max_steps, patience_below)
    if engine not in ("auto", "compiled", "eager"):
        raise ValueError(f"engine: expected 'auto', 'compiled' or 'eager', got {engine!r}")
    dtype, device = check_dtype(dtype), check_device(device)
    if num_threads is not None:
        num_threads = check_int(num_threads, "num_threads")
    X, y = X.to(dtype=dtype, device=device), y.to(dtype=dtype, device=device)
    packed = _Packed(widths, seeds, X, y, patience_below)
    hyper = (torch.tensor(lr, dtype=dtype, device=X.device),) + tuple(
        torch.tensor(v, dtype=t, device=X.device) for v, t in
        ((threshold, torch.float64), (1.0 - tol, torch.float64), (patience, torch.long),
         (max_steps, torch.long)))
    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        engine, seconds = _train(packed, X, y, hyper, max_steps,
                                 "eager" if engine == "eager" else "compiled", progress)
    finally:
        torch.set_num_threads(old_threads)
    result = _result(packed, widths, seeds, engine, seconds)
    if bool((packed.reason == _DIV).any()):
        _raise_divergence(result, X, lr)
    return result


def _raise_divergence(result, X, lr, shown=10):
    """Raise train.DivergenceError for the networks of ``result`` with reason "diverged"."""
    bad = [(i, j) for i, row in enumerate(result.reasons) for j, r in enumerate(row)
           if r == "diverged"]
    limits, X64 = {}, X.detach().to("cpu", torch.float64)
    for i, j in bad:
        seed, k = result.seeds[i], result.widths[j]
        limits[(seed, k)] = train.stability_limit(*train.initial_params(seed, k, X.shape[1]), X64)
    items = [f"seed {result.seeds[i]} width {result.widths[j]} at step {int(result.steps[i, j])} "
             f"(L = {float(result.loss[i, j]):.3g}; stability limit 2 / lambda_max(K(w0)) = "
             f"{limits[(result.seeds[i], result.widths[j])]:.6g})" for i, j in bad]
    more = f", and {len(items) - shown} more" if len(items) > shown else ""
    finite = [v for v in limits.values() if not math.isnan(v)]
    limit = min(finite) if finite else math.nan
    total = len(result.seeds) * len(result.widths)
    raise train.DivergenceError(
        f"width_sweep: gradient descent diverged for {len(bad)} of {total} networks with "
        f"lr = {lr:.6g} (the loss became non-finite or exceeded {train.DIVERGENCE:g} x "
        f"max(L_0, |y|^2 / 2)): {', '.join(items[:shown])}{more}. "
        f"{train._advice(limit, X.shape[0])} The other networks trained to their own "
        "stopping rule; the full result, with reason 'diverged' for these, is the exception's "
        ".result.", lr=lr, limit=limit, result=result, networks=list(limits), limits=limits)


def _train(packed, X, y, hyper, max_steps, engine, progress):
    """The block loop: run, report progress, compact when it pays off. Returns (engine, seconds)."""
    start = time.perf_counter()
    num = torch.tensor(BLOCK, device=X.device)
    state, consts = packed.working()
    size = len(packed.chunks)
    with tqdm(total=max_steps, disable=not progress, unit="step", desc="width sweep",
              mininterval=2.0) as bar:
        left = int(state[2].sum())
        while left:
            engine, ran, state = _run(num, state, (X, y) + consts + hyper, engine)
            bar.update(min(ran, max_steps - bar.n))
            left, was = int(state[2].sum()), left
            bar.set_postfix(training=left, refresh=False)
            # Shrink once the work has fallen 4x (a recompile costs seconds), and only when no
            # network stopped in the last block: networks tend to stop in bunches.
            chunks = int(state[2][consts[1]].sum())
            if left and left == was and chunks * (4 if engine == "compiled" else 4 / 3) <= size:
                packed.store(state)
                packed.shrink()
                state, consts = packed.working()
                size = len(packed.chunks)
    packed.store(state)
    return engine, time.perf_counter() - start
