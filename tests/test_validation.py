"""Input validation: every public function names the bad argument, what it expected, what it got.

One table row per (function, kind of bad input): wrong rank or shape, mismatched feature
dimensions, non-finite values, integer / boolean / complex / half dtypes, mixed dtypes,
mixed devices (a ``meta`` tensor stands in for a second device, so this runs without a GPU),
unknown activation names (the message lists the known ones), depth < 1, negative or
non-finite ridge, widths < 1, bad counts, generators and dtypes.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from lecture_ntk import (activations, data, device, empirical, hessian, kernels, linearize,
                         network, regression)

F64 = torch.float64
G = torch.Generator().manual_seed(0)
X = torch.randn(4, 3, dtype=F64, generator=G)
Y = torch.randn(5, 3, dtype=F64, generator=G)
NAN = X.clone()
NAN[1, 2] = float("nan")
META = torch.empty(5, 3, dtype=F64, device="meta")
A, B = network.init_params(3, 6, generator=G)
MODEL = network.ShallowNet(A, B)
P0 = {n: p.detach() for n, p in MODEL.named_parameters()}
PSI = empirical.psi(MODEL, X).detach()
Y4 = torch.randn(4, dtype=F64, generator=G)
K = kernels.ntk(X)
KNOWN = "known names are relu, relu_normalized, erf, tanh, sin, softplus"


def std(arg):
    """The standard message: 'arg: expected ..., got ...'."""
    return rf"^{arg}: expected .*got"


CASES = [
    # ---------------------------------------------------------------- kernels
    ("ntk X1 1-D", lambda: kernels.ntk(X[0]), ValueError, std("X1")),
    ("ntk X1 3-D", lambda: kernels.ntk(X[None]), ValueError, std("X1")),
    ("ntk X1 no columns", lambda: kernels.ntk(torch.zeros(3, 0, dtype=F64)), ValueError, std("X1")),
    ("ntk X2 other d", lambda: kernels.ntk(X, Y[:, :2]), ValueError, std("X2")),
    ("ntk X1 NaN", lambda: kernels.ntk(NAN), ValueError, std("X1")),
    ("ntk X2 inf", lambda: kernels.ntk(X, Y * float("inf")), ValueError, std("X2")),
    ("ntk X1 int", lambda: kernels.ntk(X.long()), TypeError, std("X1")),
    ("ntk X1 bool", lambda: kernels.ntk(X > 0), TypeError, std("X1")),
    ("ntk X1 complex", lambda: kernels.ntk(X.to(torch.complex128)), TypeError, std("X1")),
    ("ntk X1 numpy complex", lambda: kernels.ntk(X.numpy().astype(complex)), TypeError, std("X1")),
    ("ntk X1 numpy int", lambda: kernels.ntk(np.ones((3, 2), dtype=np.int32)), TypeError,
     std("X1")),
    ("ntk X1 half", lambda: kernels.ntk(X.half()), TypeError, std("X1")),
    ("ntk X1 strings", lambda: kernels.ntk([["a"]]), TypeError, std("X1")),
    ("ntk X1 None", lambda: kernels.ntk(None), TypeError, std("X1")),
    ("ntk X2 other dtype", lambda: kernels.ntk(X, Y.float()), TypeError, std("X2")),
    ("ntk X2 other device", lambda: kernels.ntk(X, META), ValueError, std("X2")),
    ("ntk activation unknown", lambda: kernels.ntk(X, activation="gelu"), ValueError,
     rf"^activation: unknown name 'gelu'; {KNOWN}"),
    ("ntk activation type", lambda: kernels.ntk(X, activation=3), TypeError, std("activation")),
    ("ntk depth 0", lambda: kernels.ntk(X, depth=0), ValueError, std("depth")),
    ("ntk depth float", lambda: kernels.ntk(X, depth=2.0), TypeError, std("depth")),
    ("nngp X2 other d", lambda: kernels.nngp(X, Y[:, :2]), ValueError, std("X2")),
    ("nngp depth -1", lambda: kernels.nngp(X, depth=-1), ValueError, std("depth")),
    ("ntk_terms X1 int", lambda: kernels.ntk_terms(X.int()), TypeError, std("X1")),
    ("ntk_terms activation", lambda: kernels.ntk_terms(X, activation="foo"), ValueError,
     rf"^activation: unknown name 'foo'; {KNOWN}"),
    ("relu_dual xi int", lambda: kernels.relu_dual(torch.tensor([1, 2])), TypeError, std("xi")),
    ("relu_dual xi NaN", lambda: kernels.relu_dual(float("nan")), ValueError, std("xi")),
    ("relu_ntk xi complex", lambda: kernels.relu_ntk(torch.tensor([1j])), TypeError, std("xi")),
    ("drelu_dual xi string", lambda: kernels.drelu_dual("a"), TypeError, std("xi")),
    ("expectations s11 < 0", lambda: kernels.gaussian_expectations("erf", -1.0, 1.0, 0.0),
     ValueError, std("s11")),
    ("expectations s12 NaN", lambda: kernels.gaussian_expectations("erf", 1.0, 1.0, float("nan")),
     ValueError, std("s12")),
    ("expectations not a covariance", lambda: kernels.gaussian_expectations("relu", 1.0, 1.0, 5.0),
     ValueError, std("s12")),
    ("expectations s22 other device", lambda: kernels.gaussian_expectations(
        "erf", torch.ones(2, dtype=F64), torch.ones(2, dtype=F64, device="meta"), 0.0),
     ValueError, std("s22")),
    ("expectations activation", lambda: kernels.gaussian_expectations("foo", 1.0, 1.0, 0.0),
     ValueError, rf"^activation: unknown name 'foo'; {KNOWN}"),
    ("quadrature_dual deg 1", lambda: kernels.quadrature_dual("tanh", 0.5, deg=1), ValueError,
     std("deg")),
    ("quadrature_dual activation", lambda: kernels.quadrature_dual(3, 0.5), TypeError,
     std("activation")),
    ("ntk_from_dual not callable", lambda: kernels.ntk_from_dual(1, 2, 0.5), TypeError,
     r"^dual, ddual: expected two callables .*got int and int"),
    # --------------------------------------------------------------- empirical
    ("jacobian model", lambda: empirical.jacobian("m", X), TypeError, std("model")),
    ("jacobian X 1-D", lambda: empirical.jacobian(MODEL, X[0]), ValueError, std("X")),
    ("jacobian X other d", lambda: empirical.jacobian(MODEL, Y[:, :2]), ValueError, std("X")),
    ("jacobian X float32", lambda: empirical.jacobian(MODEL, X.float()), TypeError, std("X")),
    ("jacobian X other device", lambda: empirical.jacobian(MODEL, META), ValueError, std("X")),
    ("jacobian X NaN", lambda: empirical.jacobian(MODEL, NAN), ValueError, std("X")),
    ("jacobian model NaN", lambda: empirical.jacobian(network.ShallowNet(A, B).requires_grad_(False)
                                                      .apply(lambda m: m.A.fill_(float("nan"))), X),
     ValueError, std("model")),
    ("psi several outputs", lambda: empirical.psi(network.ShallowNet.init(3, 4, 2, generator=G), X),
     ValueError, r"^model: psi needs a scalar output, got 2 outputs"),
    ("empirical_ntk X2 other d", lambda: empirical.empirical_ntk(MODEL, X, Y[:, :2]), ValueError,
     std("X2")),
    ("empirical_ntk X2 int", lambda: empirical.empirical_ntk(MODEL, X, Y.long()), TypeError,
     std("X2")),
    ("shallow_grad A 1-D", lambda: empirical.shallow_grad(A[0], B, X), ValueError, std("A")),
    ("shallow_grad A two outputs", lambda: empirical.shallow_grad(torch.ones(2, 6, dtype=F64), B,
                                                                  X), ValueError, std("A")),
    ("shallow_grad B rows", lambda: empirical.shallow_grad(A, B[:5], X), ValueError, std("B")),
    ("shallow_grad X other d", lambda: empirical.shallow_grad(A, B, Y[:, :2]), ValueError,
     std("X")),
    ("shallow_grad activation", lambda: empirical.shallow_grad(A, B, X, activation="gelu"),
     ValueError, rf"^activation: unknown name 'gelu'; {KNOWN}"),
    ("shallow_ntk X2 other d", lambda: empirical.shallow_ntk(A, B, X, Y[:, :2]), ValueError,
     std("X2")),
    ("shallow_ntk A NaN", lambda: empirical.shallow_ntk(A * float("nan"), B, X), ValueError,
     std("A")),
    # --------------------------------------------------------------- linearize
    ("f_lin params keys", lambda: linearize.f_lin(MODEL, P0, X, {"A": P0["A"]}), ValueError,
     std("params")),
    ("f_lin params shape", lambda: linearize.f_lin(MODEL, P0, X, {"A": P0["A"], "B": P0["B"][:2]}),
     ValueError, std(r"params\['B'\]")),
    ("f_lin params NaN", lambda: linearize.f_lin(MODEL, P0, X, {"A": P0["A"] * float("nan"),
                                                                 "B": P0["B"]}),
     ValueError, std(r"params\['A'\]")),
    ("f_lin params0 type", lambda: linearize.f_lin(MODEL, [1], X, P0), TypeError, std("params0")),
    ("f_lin X other d", lambda: linearize.f_lin(MODEL, P0, Y[:, :2], P0), ValueError, std("X")),
    ("train_linear lr < 0", lambda: linearize.train_linear(PSI, Y4, lr=-1.0, num_steps=3),
     ValueError, std("lr")),
    ("train_linear lr NaN", lambda: linearize.train_linear(PSI, Y4, lr=float("nan"), num_steps=3),
     ValueError, std("lr")),
    ("train_linear num_steps < 0", lambda: linearize.train_linear(PSI, Y4, lr=0.1, num_steps=-1),
     ValueError, std("num_steps")),
    ("train_linear y length", lambda: linearize.train_linear(PSI, Y4[:3], lr=0.1, num_steps=1),
     ValueError, std("y")),
    ("train_linear y NaN", lambda: linearize.train_linear(PSI, Y4 * float("nan"), lr=0.1,
                                                          num_steps=1), ValueError, std("y")),
    ("train_linear f0 NaN", lambda: linearize.train_linear(PSI, Y4, Y4 * float("nan"), lr=0.1,
                                                           num_steps=1),
     ValueError, std("f0_train")),
    ("solve_linear y 2-D", lambda: linearize.solve_linear(PSI, Y4[:, None]), ValueError, std("y")),
    ("predict_linear w length", lambda: linearize.predict_linear(PSI, torch.ones(2, dtype=F64)),
     ValueError, std("w_tilde")),
    ("predict_linear w NaN", lambda: linearize.predict_linear(
        PSI, torch.full((PSI.shape[1],), float("nan"), dtype=F64)), ValueError, std("w_tilde")),
    ("train_f_lin lr 0", lambda: linearize.train_f_lin(MODEL, X, Y4, lr=0.0, num_steps=2),
     ValueError, std("lr")),
    ("train_f_lin y NaN", lambda: linearize.train_f_lin(MODEL, X, Y4 * float("nan"), lr=0.1,
                                                        num_steps=2), ValueError, std("y")),
    ("params_from_vector w", lambda: linearize.params_from_vector(MODEL, torch.ones(3, dtype=F64)),
     ValueError, std("w")),
    # -------------------------------------------------------------- regression
    ("kernel_regression ridge < 0", lambda: regression.kernel_regression(K, Y4, K, ridge=-1.0),
     ValueError, std("ridge")),
    ("kernel_regression ridge NaN", lambda: regression.kernel_regression(K, Y4, K,
                                                                         ridge=float("nan")),
     ValueError, std("ridge")),
    ("kernel_regression ridge str", lambda: regression.kernel_regression(K, Y4, K, ridge="1"),
     TypeError, std("ridge")),
    ("kernel_regression K int", lambda: regression.kernel_regression(K.long(), Y4, K), TypeError,
     std("K_train")),
    ("kernel_regression K complex", lambda: regression.kernel_regression(
        K.to(torch.complex128), Y4, K), TypeError, std("K_train")),
    ("kernel_regression K 1-D", lambda: regression.kernel_regression(K[0], Y4, K), ValueError,
     std("K_train")),
    ("kernel_regression K NaN", lambda: regression.kernel_regression(K * float("nan"), Y4, K),
     ValueError, std("K_train")),
    ("kernel_regression y other device", lambda: regression.kernel_regression(K, Y4.to("meta"), K),
     ValueError, std("y")),
    ("kernel_regression K_test_train shape", lambda: regression.kernel_regression(K, Y4, K[:, :2]),
     ValueError, std("K_test_train")),
    ("kernel_regression indefinite", lambda: regression.kernel_regression(
        -torch.eye(4, dtype=F64), Y4, K), ValueError, r"^K_train: expected a positive definite"),
    # ----------------------------------------------------------------- network
    ("init_params d 0", lambda: network.init_params(0, 3, generator=G), ValueError, std("d")),
    ("init_params width k 0", lambda: network.init_params(3, 0, generator=G), ValueError, std("k")),
    ("init_params c 0", lambda: network.init_params(3, 3, 0, generator=G), ValueError, std("c")),
    ("init_params k float", lambda: network.init_params(3, 2.5, generator=G), TypeError, std("k")),
    ("init_params generator", lambda: network.init_params(3, 3, generator=0), TypeError,
     std("generator")),
    ("init_params dtype int", lambda: network.init_params(3, 3, generator=G, dtype=torch.int64),
     TypeError, std("dtype")),
    ("init_params dtype str", lambda: network.init_params(3, 3, generator=G, dtype="float64"),
     TypeError, std("dtype")),
    ("forward X other d", lambda: network.forward(A, B, Y[:, :2]), ValueError, std("X")),
    ("forward A 1-D", lambda: network.forward(A[0], B, X), ValueError, std("A")),
    ("forward B int", lambda: network.forward(A, B.long(), X), TypeError, std("B")),
    ("forward A NaN", lambda: network.forward(A * float("nan"), B, X), ValueError, std("A")),
    ("forward activation", lambda: network.forward(A, B, X, activation="gelu"), ValueError,
     rf"^activation: unknown name 'gelu'; {KNOWN}"),
    ("unflatten w length", lambda: network.unflatten(torch.ones(3, dtype=F64), k=2, d=3),
     ValueError, std("w")),
    ("unflatten k 0", lambda: network.unflatten(torch.ones(3, dtype=F64), k=0, d=3), ValueError,
     std("k")),
    ("ShallowNet A int", lambda: network.ShallowNet(A.long(), B), TypeError, std("A")),
    ("ShallowNet activation", lambda: network.ShallowNet(A, B, activation="foo"), ValueError,
     rf"^activation: unknown name 'foo'; {KNOWN}"),
    ("ShallowNet.init width 0", lambda: network.ShallowNet.init(3, 0, generator=G), ValueError,
     std("k")),
    # -------------------------------------------------------------------- data
    ("g x int", lambda: data.g(torch.tensor([1, 2])), TypeError, std("x")),
    ("g x NaN", lambda: data.g(float("nan")), ValueError, std("x")),
    ("with_bias x 2 columns", lambda: data.with_bias(torch.ones(3, 2, dtype=F64)), ValueError,
     std("x")),
    ("example3 n_train 0", lambda: data.example3(generator=G, n_train=0), ValueError,
     std("n_train")),
    ("example3 n_test 1", lambda: data.example3(generator=G, n_test=1), ValueError, std("n_test")),
    ("example3 generator", lambda: data.example3(generator=1), TypeError, std("generator")),
    ("example3 dtype", lambda: data.example3(generator=G, dtype=torch.int32), TypeError,
     std("dtype")),
    # ----------------------------------------------------------------- hessian
    ("hessian A two outputs", lambda: hessian.hessian(torch.ones(2, 6, dtype=F64), B, X[0],
                                                      activation="tanh"), ValueError, std("A")),
    ("hessian x length", lambda: hessian.hessian(A, B, X[0, :2], activation="tanh"), ValueError,
     std("x")),
    ("hessian x NaN", lambda: hessian.hessian(A, B, X[0] * float("nan"), activation="tanh"),
     ValueError, std("x")),
    ("hessian activation", lambda: hessian.hessian(A, B, X[0], activation="gelu"), ValueError,
     rf"^activation: unknown name 'gelu'; {KNOWN}"),
    ("block_entries d 3", lambda: hessian.block_entries(A, B, X[0], activation="tanh"), ValueError,
     r"^B: .*needs d = 1.*got shape \(6, 3\)"),
    ("pair_order k 0", lambda: hessian.pair_order(0), ValueError, std("k")),
    ("norm_vs_width widths 0", lambda: hessian.norm_vs_width([0, 4], 0.5, activation="tanh",
                                                             generator=G), ValueError,
     std("widths")),
    ("norm_vs_width widths empty", lambda: hessian.norm_vs_width([], 0.5, activation="tanh",
                                                                 generator=G), ValueError,
     std("widths")),
    ("norm_vs_width widths float", lambda: hessian.norm_vs_width([2.5], 0.5, activation="tanh",
                                                                 generator=G), TypeError,
     std("widths")),
    ("norm_vs_width num_draws 0", lambda: hessian.norm_vs_width(
        [2], 0.5, activation="tanh", generator=G, num_draws=0), ValueError, std("num_draws")),
    ("norm_vs_width init", lambda: hessian.norm_vs_width([2], 0.5, activation="tanh", generator=G,
                                                         init="foo"), ValueError, std("init")),
    ("norm_vs_width generator", lambda: hessian.norm_vs_width([2], 0.5, activation="tanh",
                                                              generator=None), TypeError,
     std("generator")),
    ("norm_vs_width x NaN", lambda: hessian.norm_vs_width([2], float("nan"), activation="tanh",
                                                          generator=G), ValueError, std("x")),
    ("norm_vs_width dtype", lambda: hessian.norm_vs_width([2], 0.5, activation="tanh", generator=G,
                                                          dtype=torch.int64), TypeError,
     std("dtype")),
    ("training_drift widths 0", lambda: hessian.training_drift([0], X, Y4, generator=G),
     ValueError, std("widths")),
    ("training_drift lr < 0", lambda: hessian.training_drift([4], X, Y4, generator=G, lr=-1.0),
     ValueError, std("lr")),
    ("training_drift y length", lambda: hessian.training_drift([4], X, Y4[:2], generator=G),
     ValueError, std("y")),
    ("training_drift num_steps < 0", lambda: hessian.training_drift([4], X, Y4, generator=G,
                                                                    num_steps=-1),
     ValueError, std("num_steps")),
    # ------------------------------------------------------ device, activations
    ("make_generator seed < 0", lambda: device.make_generator(-1), ValueError, std("seed")),
    ("make_generator seed str", lambda: device.make_generator("1"), TypeError, std("seed")),
    ("randn generator", lambda: device.randn(3, generator=None), TypeError, std("generator")),
    ("activations.get name", lambda: activations.get("gelu"), ValueError,
     rf"^activation: unknown name 'gelu'; {KNOWN}"),
    ("activations.get type", lambda: activations.get(3), TypeError, std("activation")),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_naming_the_argument(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def _others():
    """Rows for modules written in parallel (solvers, fast_ntk, train): argument names only."""
    rows = []
    try:
        from lecture_ntk import fast_ntk
        net = network.ShallowNet.init(3, 8, 3, generator=torch.Generator().manual_seed(1))
        rows += [
            ("mlp_ntk reduce", lambda: fast_ntk.mlp_ntk(net, X, reduce="avg"), ValueError,
             std("reduce")),
            ("mlp_ntk X2 other d", lambda: fast_ntk.mlp_ntk(net, X, Y[:, :2]), ValueError,
             std("X2")),
            ("mlp_ntk X1 int", lambda: fast_ntk.mlp_ntk(net, X.long()), TypeError, std("X1")),
            ("mlp_ntk X2 other device", lambda: fast_ntk.mlp_ntk(net, X, META), ValueError,
             std("X2")),
        ]
    except ImportError:
        pass
    try:
        from lecture_ntk import solvers
        rows += [
            ("kernel_regression_cg ridge < 0", lambda: solvers.kernel_regression_cg(
                X, Y4, X, ridge=-1.0), ValueError, std("ridge")),
            ("kernel_regression_cg X_test other d", lambda: solvers.kernel_regression_cg(
                X, Y4, X[:, :2]), ValueError, std("X_test")),
            ("kernel_regression_cg depth 0", lambda: solvers.kernel_regression_cg(
                X, Y4, X, depth=0), ValueError, std("depth")),
        ]
    except ImportError:
        pass
    try:
        from lecture_ntk import train
        rows += [
            ("gradient_descent lr < 0", lambda: train.gradient_descent(A, B, X, Y4, lr=-1.0),
             ValueError, std("lr")),
            ("gradient_descent X NaN", lambda: train.gradient_descent(A, B, NAN, Y4), ValueError,
             std("X")),
        ]
    except ImportError:
        pass
    return rows


OTHERS = _others()


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in OTHERS], ids=[c[0] for c in OTHERS])
def test_bad_input_raises_in_parallel_modules(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
