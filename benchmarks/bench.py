"""Benchmarks: empirical NTK routes, the closed-form NTK Gram, kernel regression at scale.

Every table is measured side by side in one run: medians over repetitions, peak extra
memory per call (CPU: peak RSS above the RSS before the call, via /proc/self/clear_refs;
CUDA: torch.cuda.max_memory_allocated), ratios against the fastest route or the GEMM floor.

    python benchmarks/bench.py            # full sizes (tens of minutes on 2 cores)
    python benchmarks/bench.py --quick    # CI sizes (seconds to a minute)
    python benchmarks/bench.py --only ntk,gram --reps 3

See benchmarks/README.md for the targets and the numbers measured so far.
"""
from __future__ import annotations

import argparse
import math
import os
import ctypes
import statistics
import time

import torch
from torch import nn

from lecture_ntk import (data, device as dev, empirical, fast_ntk, kernels, network, solvers,
                         sweep, train)

GiB = 2.0 ** 30
GEN_BUDGET = 4 * 2**30          # memory the generic (torch.func) routes may use


# ------------------------------------------------------------------------------ measuring

def _status(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith(field + ":"))


def _trim():
    """Give memory freed by earlier calls back to the OS (glibc), so that it cannot hide
    the resident-memory peak of the next call."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _call(fn, device, memory):
    """(seconds, peak extra bytes or None, result) of one call; peak only if ``memory``."""
    cuda, ok, base = device.type == "cuda", False, 0
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    elif memory:
        _trim()
        ok, base = _reset_peak(), _status("VmRSS")
    start = time.perf_counter()
    out = fn()
    if cuda:
        torch.cuda.synchronize()
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if cuda else _status("VmHWM") if ok else None
    return elapsed, None if peak is None else peak - base, out


def measure_many(fns, reps, device, warmup=True):
    """{name: (median seconds, peak extra bytes, last result)}, calls interleaved.

    Interleaving the routes round by round keeps their ratio fair on a machine whose
    load changes during the run. With ``warmup`` (the fast routes) the timed calls run
    as in a loop and one more call per route measures memory: returning freed memory to
    the OS first (``_trim``) costs page faults that would distort a short call's time.
    Without it (the slow routes) one call gives both.
    """
    if warmup:
        for fn in fns.values():
            fn()
    runs, last, peaks = {name: [] for name in fns}, {}, {}
    for _ in range(reps):
        for name, fn in fns.items():
            last.pop(name, None)             # drop the previous result before the call
            elapsed, peaks[name], last[name] = _call(fn, device, memory=not warmup)
            runs[name].append(elapsed)
    if warmup:
        for name, fn in fns.items():
            last.pop(name, None)
            _, peaks[name], last[name] = _call(fn, device, memory=True)
    return {name: (statistics.median(runs[name]), peaks[name], last[name]) for name in fns}


def measure(fn, reps, device, warmup=True):
    """(median seconds, peak extra bytes or None, last result) over ``reps`` calls."""
    return measure_many({"fn": fn}, reps, device, warmup)["fn"]


def mem_available():
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable"))


def row(*cells):
    print("  " + " | ".join(f"{c:>12}" if i else f"{c:<34}" for i, c in enumerate(cells)))


def fmt_t(t):
    return "-" if t is None else f"{t * 1e3:.1f} ms" if t < 1 else f"{t:.2f} s"


def fmt_m(b):
    b = None if b is None else max(b, 0)
    return "n/a" if b is None else f"{b / 2**20:.0f} MiB" if b < GiB else f"{b / GiB:.2f} GiB"


def rel(a, b):
    return float(torch.linalg.norm((a - b).double()) / torch.linalg.norm(b.double()))


# ------------------------------------------------------------------------------ the models

def lecture_net(d, k, gen, device):
    return network.ShallowNet.init(d, k, 1, generator=gen, device=device)


def mlp(d, width, depth, gen, device):
    widths = [d] + [width] * depth + [1]
    layers = []
    for i in range(depth + 1):
        layers += [nn.Linear(widths[i], widths[i + 1])] + ([nn.ReLU()] if i < depth else [])
    model = nn.Sequential(*layers).double().to(device)
    with torch.no_grad():  # N(0, 1/fan_in) weights, N(0, 1) biases, from our generator
        for p in model.parameters():
            fan_in = p.shape[1] if p.ndim == 2 else 1
            p.copy_(dev.randn(*p.shape, generator=gen, device=device) / math.sqrt(fan_in))
    return model


def gemm_floor(model, n, device):
    """A function running, one after the other, the GEMMs the structured route issues for
    K(X, X) at full size (forward, back-propagated signals, the Grams H H^T and G G^T)."""
    lin = [op.weight for op in fast_ntk._parse(model) if isinstance(op, fast_ntk._Linear)]
    shapes = [(n, W.shape[1], W.shape[0]) for W in lin[:-1]]          # forward
    shapes += [(n, W.shape[0], W.shape[1]) for W in lin[1:-1]]        # back-propagated signals
    shapes += [(n, W.shape[1], n) for W in lin]                       # H H^T
    shapes += [(n, W.shape[0], n) for W in lin[:-1]]                  # G G^T
    gen = dev.make_generator(1)
    pairs = [(dev.randn(m, k, generator=gen, device=device),
              dev.randn(p, k, generator=gen, device=device)) for m, k, p in shapes]
    return lambda: [A @ C.T for A, C in pairs]


# ------------------------------------------------------------------------------ sections

def section_ntk(args, device, results):
    print("\n== empirical NTK K(X, X): structured vs torch.func routes (float64) ==")
    gen = dev.make_generator(0)
    q = args.quick
    cases = [("lecture net", (128, 784, 128) if q else (1024, 784, 1024)),
             ("3-hidden-layer MLP", (64, 784, 128) if q else (args.mlp_n, 784, 1024))]
    for name, (n, d, k) in cases:
        model = (lecture_net(d, k, gen, device) if name == "lecture net" else
                 mlp(d, k, 3, gen, device))
        p = sum(w.numel() for w in model.parameters())
        X = dev.randn(n, d, generator=gen, device=device) / math.sqrt(d)
        print(f"-- {name}: n = {n}, d = {d}, k = {k}, p = {p}")
        row("route", "median time", "x structured", "peak extra", "rel. error")
        both = measure_many({"s": lambda: fast_ntk.mlp_ntk(model, X),
                             "f": gemm_floor(model, n, device)}, args.reps, device)
        (t_s, m_s, K), t_f = both["s"], both["f"][0]
        row("structured (mlp_ntk)", fmt_t(t_s), "1", fmt_m(m_s), "-")
        row("  its GEMMs alone (the floor)", fmt_t(t_f), f"{t_f / t_s:.2f}", "-",
            f"str/floor {t_s / t_f:.2f}")
        routes = [("jacobian (jacobian_ntk, tiled)", fast_ntk.jacobian_ntk),
                  ("ntk_vp (NTK-vector products)", fast_ntk.ntk_vp)]
        if n * p * 8 < 0.3 * mem_available():
            routes.append(("J J^T, empirical.jacobian (unchunked)", None))
        slow = {}
        for label, route in routes:
            call = (lambda Z=X: _unchunked_jjt(model, Z)) if route is None else \
                (lambda Z=X, r=route: r(model, Z, memory_budget=GEN_BUDGET))
            call(X[:2])  # torch.func's one-time set-up, outside the timing
            t, m, R = measure(call, args.slow_reps, device, warmup=False)
            slow[label] = t
            row(label, fmt_t(t), f"{t / t_s:.0f}", fmt_m(m), f"{rel(K, R):.1e}")
        t_jac = min(t for label, t in slow.items() if not label.startswith("ntk_vp"))
        results[name] = dict(t_struct=t_s, floor=t_s / t_f, speedup=t_jac / t_s, mem=m_s)


def _unchunked_jjt(model, X):
    """The plain torch.func route: the whole Jacobian at once, then one product."""
    J = empirical.jacobian(model, X)[:, 0, :]
    return J @ J.T


def section_memory(args, device, results):
    n, d, k = (512, 784, 1024) if args.quick else (4096, 784, 8192)
    print(f"\n== structured NTK at n = {n}, d = {d}, k = {k} (default memory_budget) ==")
    gen = dev.make_generator(0)
    model = lecture_net(d, k, gen, device)
    X = dev.randn(n, d, generator=gen, device=device) / math.sqrt(d)
    t, m, K = measure(lambda: fast_ntk.mlp_ntk(model, X), max(1, args.reps // 2), device,
                      warmup=False)
    row("route", "median time", "peak extra", "of which K")
    row("structured (mlp_ntk)", fmt_t(t), fmt_m(m), fmt_m(K.numel() * K.element_size()))
    results["memory"] = dict(n=n, k=k, time=t, mem=m)


def section_gram(args, device, results):
    print("\n== closed-form NTK Gram kernels.ntk vs one GEMM of the same shape (d = 784, float64) ==")
    row("case", "GEMM", "kernels.ntk", "ratio", "peak extra")
    gen = dev.make_generator(0)
    for n in ((512, 1024) if args.quick else (4096, 16384)):
        X = dev.randn(n, 784, generator=gen, device=device) / math.sqrt(784)
        reps = args.reps if n <= 4096 else max(1, args.slow_reps)
        both = measure_many({"g": lambda: X @ X.T, "k": lambda: kernels.ntk(X)}, reps, device,
                            warmup=n <= 4096)
        t_g, (t_k, m_k, _) = both["g"][0], both["k"]
        row(f"K(X, X), n = {n}", fmt_t(t_g), fmt_t(t_k), f"{t_k / t_g:.2f}", fmt_m(m_k))
        results[f"gram {n}"] = t_k / t_g
        if n <= 4096:   # no symmetry to exploit: K(X1, X) against X1 X^T
            X1 = dev.randn(n // 2, 784, generator=gen, device=device) / math.sqrt(784)
            both = measure_many({"g": lambda: X1 @ X.T, "k": lambda: kernels.ntk(X1, X)}, reps,
                                device)
            t_g, (t_k, m_k, _) = both["g"][0], both["k"]
            row(f"K(X1, X), {n // 2} x {n}", fmt_t(t_g), fmt_t(t_k), f"{t_k / t_g:.2f}",
                fmt_m(m_k))
            results[f"rectangular gram {n // 2}x{n}"] = t_k / t_g


def _problem(n, m, d, device, seed=0):
    gen = dev.make_generator(seed)
    X = dev.randn(n + m, d, generator=gen, device=device)
    X = X / torch.linalg.norm(X, dim=1, keepdim=True)
    w = dev.randn(d, generator=gen, device=device)
    y = torch.sin(3 * X @ w / math.sqrt(d)) + X[:, 0]
    return X[:n], y[:n], X[n:]


def section_solve(args, device, results):
    n, m, d = (512, 100, 784) if args.quick else (4096, 1000, 784)
    ridge, tol = 1e-3, 1e-8
    print(f"\n== kernel regression with the ReLU NTK, d = {d}, ridge = {ridge}, tol = {tol} ==")
    X, y, X_test = _problem(n, m, d, device)
    row(f"n = {n}, m = {m}", "median time", "iterations", "peak extra", "rel. diff")
    t_d, m_d, direct = measure(lambda: solvers.kernel_regression_auto(
        X, y, X_test, method="cholesky", ridge=ridge), args.slow_reps, device, warmup=False)
    t_c, m_c, cg = measure(lambda: solvers.kernel_regression_cg(
        X, y, X_test, ridge=ridge, tol=tol), args.slow_reps, device, warmup=False)
    row("direct (Cholesky)", fmt_t(t_d), "-", fmt_m(m_d), "-")
    row("matrix-free PCG (Nystrom r=100)", fmt_t(t_c), str(cg.iterations), fmt_m(m_c),
        f"{rel(cg.predictions, direct.predictions):.1e}")
    # Largest n in the time budget: cost ~ n^2 per iteration; extrapolate, then verify.
    n_max = max(256, int(n * math.sqrt(args.solve_budget / t_c)) // 256 * 256)
    print(f"-- largest n for the matrix-free path in {args.solve_budget:.0f} s "
          f"(extrapolated from n = {n}: {n_max}); verifying:")
    if n_max * d * 8 * 3 < mem_available():
        X, y, X_test = _problem(n_max, m, d, device, seed=1)
        t_v, m_v, cg = measure(lambda: solvers.kernel_regression_cg(
            X, y, X_test, ridge=ridge, tol=tol), 1, device, warmup=False)
        row(f"PCG at n = {n_max}", fmt_t(t_v), str(cg.iterations), fmt_m(m_v), "-")
        if t_v > args.solve_budget:   # over budget: scale back as n^2 from the verified run
            print(f"-- over the budget: n ~ {int(n_max * math.sqrt(args.solve_budget / t_v))} "
                  f"would take {args.solve_budget:.0f} s at this run's cost per n^2")
        results["solve"] = dict(n_max=n_max, t=t_v, budget=args.solve_budget)
    dense = int(math.sqrt(mem_available() / (5 * 8)))
    print(f"-- direct route limit from free memory ({fmt_m(mem_available())}): n ~ {dense}")


FIG1_WIDTHS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 20, 32, 64, 128, 256, 512, 1024]


def section_sweep(args, device, results):
    """Example 3's width sweep: one batched run vs a loop over one network at a time."""
    steps = 200 if args.quick else args.sweep_steps
    seeds = [0, 1, 2]
    ex = data.example3(generator=dev.make_generator(0), device=device)
    X, y = data.with_bias(ex.x_train), ex.y_train
    # threshold 0 and the threshold rule for every width: each network makes exactly `steps`
    rules = dict(threshold=0.0, patience_below=1, max_steps=steps)
    print(f"\n== width sweep: {len(FIG1_WIDTHS)} widths x {len(seeds)} seeds, {steps} steps each, "
          f"lr {train.LR}, float64 ==")
    start = time.perf_counter()
    sweep.width_sweep(X, y, FIG1_WIDTHS, seeds, engine="auto", progress=False, **rules)
    first = time.perf_counter() - start

    def loop():
        for seed in seeds:
            for k in FIG1_WIDTHS:
                A, B = train.initial_params(seed, k, dtype=X.dtype, device=device)
                train.gradient_descent(A, B, X, y, **rules)

    runs = measure_many({
        "compiled": lambda: sweep.width_sweep(X, y, FIG1_WIDTHS, seeds, engine="auto",
                                              progress=False, **rules),
        "eager": lambda: sweep.width_sweep(X, y, FIG1_WIDTHS, seeds, engine="eager",
                                           progress=False, **rules)}, args.reps, device)
    t_loop, _, _ = measure(loop, args.slow_reps, device, warmup=False)
    t_c, t_e = runs["compiled"][0], runs["eager"][0]
    engine = runs["compiled"][2].engine
    nets = len(FIG1_WIDTHS) * len(seeds)
    row("route", "time", "x batched", "us / step")
    row(f"batched width_sweep ({engine})", fmt_t(t_c), "1", f"{t_c / steps * 1e6:.0f}")
    row("  its first call (with compilation)", fmt_t(first), f"{first / t_c:.1f}", "-")
    row("batched width_sweep (eager)", fmt_t(t_e), f"{t_e / t_c:.1f}", f"{t_e / steps * 1e6:.0f}")
    row("loop of train.gradient_descent", fmt_t(t_loop), f"{t_loop / t_c:.0f}",
        f"{t_loop / (steps * nets) * 1e6:.0f} per net")
    results["sweep"] = t_loop / t_c


def section_lecture(args, device, results):
    """The lecture command end to end: every notebook, the lecture's settings."""
    if device.type != "cpu":
        return
    import subprocess
    import sys
    print("\n== the lecture end to end: python -m lecture_ntk.course run ==")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "lecture_ntk.course", "run"],
                          capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    for line in proc.stdout.splitlines():
        print("  " + line)
    if proc.returncode:
        print("  failed:\n" + proc.stderr[-2000:])
        return
    row("every notebook (6)", fmt_t(elapsed))
    results["lecture"] = elapsed


def section_keops(args, device, results):
    print("\n== NTK matvec K v: chunked torch (solvers.kernel_matvec) vs KeOps LazyTensor ==")
    try:
        from pykeops.torch import LazyTensor
    except ImportError:
        print("  pykeops is not installed: skipped")
        return
    n, d = (2048, 784) if args.quick else (8192, 784)
    X, y, _ = _problem(n, 1, d, device)
    V = y[:, None].contiguous()
    nrm = torch.linalg.norm(X, dim=1, keepdim=True)

    def keops_matvec():
        xi, xj = LazyTensor(X[:, None, :]), LazyTensor(X[None, :, :])
        s12 = (xi | xj)
        r = LazyTensor(nrm[:, None, :]) * LazyTensor(nrm[None, :, :])
        c = (s12 / r).clamp(-1.0, 1.0)
        K = (r * (1 - c * c).relu().sqrt() + 2 * (math.pi - c.acos()) * s12) / math.pi
        return K @ V

    start = time.perf_counter()
    keops_matvec()
    compile_s = time.perf_counter() - start
    t_t, m_t, ref = measure(lambda: solvers.kernel_matvec(kernels.ntk, X, V, chunk_size=512),
                            args.reps, device)
    t_k, m_k, out = measure(keops_matvec, args.reps, device)
    row(f"n = {n}, d = {d}", "median time", "x torch", "peak extra", "rel. diff")
    row("chunked torch (block 512)", fmt_t(t_t), "1", fmt_m(m_t), "-")
    row(f"KeOps (first call {compile_s:.1f} s)", fmt_t(t_k), f"{t_k / t_t:.1f}", fmt_m(m_k),
        f"{rel(out, ref):.1e}")
    results["keops"] = t_k / t_t


SECTIONS = {"ntk": section_ntk, "memory": section_memory, "gram": section_gram,
            "solve": section_solve, "sweep": section_sweep, "lecture": section_lecture,
            "keops": section_keops}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="CI sizes (seconds)")
    ap.add_argument("--only", default="ntk,memory,gram,solve,sweep,lecture",
                    help=f"comma-separated sections out of {','.join(SECTIONS)} (keops: opt-in; "
                         "--quick leaves out lecture)")
    ap.add_argument("--reps", type=int, default=5, help="repetitions of the fast routes")
    ap.add_argument("--slow-reps", type=int, default=1, help="repetitions of the slow routes")
    ap.add_argument("--mlp-n", type=int, default=512, help="samples for the MLP case")
    ap.add_argument("--solve-budget", type=float, default=None, help="seconds (default 300)")
    ap.add_argument("--sweep-steps", type=int, default=2000, help="steps per network (sweep)")
    args = ap.parse_args()
    args.solve_budget = args.solve_budget or (5.0 if args.quick else 300.0)
    load = os.getloadavg() if hasattr(os, "getloadavg") else ("?",)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average {load[0]:.1f}, CUDA: {torch.cuda.is_available()}")
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    for device in devices:
        print(f"\n######## device: {device.type}")
        results = {}
        for name in args.only.split(","):
            if device.type == "cuda" and name == "keops":
                continue
            if args.quick and name == "lecture" and args.only == ap.get_default("only"):
                continue
            SECTIONS[name](args, device, results)
        summary(results, args)


def summary(results, args):
    print("\n== targets ==")
    checks = []
    if "lecture net" in results:
        r = results["lecture net"]
        checks += [("structured >= 100x faster than J J^T (lecture net)",
                    f"{r['speedup']:.0f}x", r["speedup"] >= 100),
                   ("structured within 1.5x of its GEMM floor (lecture net)",
                    f"{r['floor']:.2f}x", r["floor"] <= 1.5)]
    if "3-hidden-layer MLP" in results:
        r = results["3-hidden-layer MLP"]
        checks.append(("MLP: structured >= 20x faster than J J^T", f"{r['speedup']:.0f}x",
                       r["speedup"] >= 20))
    if "memory" in results and results["memory"]["mem"] is not None:
        r = results["memory"]
        checks.append((f"n = {r['n']}, k = {r['k']} under 1 GiB extra", fmt_m(r["mem"]),
                       r["mem"] < GiB))
    for key in [k for k in results if k.startswith("gram") or k.startswith("rectangular")]:
        extra = " (extra, not an issue target)" if key.startswith("rectangular") else ""
        checks.append((f"closed-form {key} within 1.5x of one GEMM{extra}",
                       f"{results[key]:.2f}x", results[key] <= 1.5))
    if "sweep" in results:
        checks.append(("batched sweep >= 10x faster than the loop", f"{results['sweep']:.0f}x",
                       results["sweep"] >= 10))
    if "lecture" in results:
        checks.append(("the whole lecture under 3 minutes", fmt_t(results["lecture"]),
                       results["lecture"] < 180))
    for label, value, ok in checks:
        row(label, value, ("met" if ok else "MISSED") if not args.quick else
            ("(met)" if ok else "(not met)"))
    if args.quick:
        print("  (--quick sizes: the targets are stated for the full sizes, not judged here)")


if __name__ == "__main__":
    main()
