"""Input validation: every public function names the bad argument, what it expected, what it got.

One table row per (function, kind of bad input): wrong rank or shape, mismatched feature
dimensions, non-finite values, integer / boolean / complex / half dtypes, mixed dtypes,
mixed devices (a ``meta`` tensor stands in for a second device, so this runs without a GPU),
unknown activation names (the message lists the known ones), depth < 1, negative or
non-finite ridge, widths < 1, bad counts, generators and dtypes. Every message starts with
the argument's name and says what was expected and what was given.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from torch import nn

from lecture_ntk import (activations, data, device, empirical, fast_ntk, hessian, kernels,
                         linearize, network, regression, scaling, solvers, sweep, train)

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


# Rows for train, sweep, scaling, fast_ntk and solvers.
X2D = data.with_bias(torch.linspace(-1, 1, 5, dtype=F64))        # (5, 2), as Example 3
Y5 = torch.sin(3 * X2D[:, 0])
A2, B2 = train.initial_params(0, 4)
NET = network.ShallowNet.init(3, 8, 3, generator=torch.Generator().manual_seed(1))
NTK = kernels.ntk
SWEEP = dict(widths=[3], seeds=[0], max_steps=1, progress=False, engine="eager")


def gd(**kw):
    args = dict(A=A2, B=B2, X=X2D, y=Y5, max_steps=2)
    args.update(kw)
    return train.gradient_descent(args.pop("A"), args.pop("B"), args.pop("X"), args.pop("y"),
                                  **args)


def ws(**kw):
    return sweep.width_sweep(kw.pop("X", X2D), kw.pop("y", Y5), **{**SWEEP, **kw})


def cg(**kw):
    return solvers.kernel_regression_cg(kw.pop("X_train", X), kw.pop("y", Y4),
                                        kw.pop("X_test", Y), **kw)


MORE = [
    # ------------------------------------------------------------------- train
    ("gradient_descent X other device", lambda: gd(X=X2D.to("meta")), ValueError, std("X")),
    ("gradient_descent y other device", lambda: gd(y=Y5.to("meta")), ValueError, std("y")),
    ("gradient_descent X int", lambda: gd(X=X2D.long()), TypeError, std("X")),
    ("gradient_descent X complex", lambda: gd(X=X2D.to(torch.complex128)), TypeError, std("X")),
    ("gradient_descent X float32", lambda: gd(X=X2D.float()), TypeError, std("X")),
    ("gradient_descent X NaN", lambda: gd(X=X2D * float("nan")), ValueError, std("X")),
    ("gradient_descent X 1-D", lambda: gd(X=X2D[:, 0]), ValueError, std("X")),
    ("gradient_descent X other d", lambda: gd(X=X2D[:, :1]), ValueError, std("X")),
    ("gradient_descent X no rows", lambda: gd(X=X2D[:0], y=Y5[:0]), ValueError, std("X")),
    ("gradient_descent A 1-D", lambda: gd(A=A2[0]), ValueError, std("A")),
    ("gradient_descent A two outputs", lambda: gd(A=torch.ones(2, 4, dtype=F64)), ValueError,
     std("A")),
    ("gradient_descent A int", lambda: gd(A=A2.long()), TypeError, std("A")),
    ("gradient_descent B rows", lambda: gd(B=B2[:3]), ValueError, std("B")),
    ("gradient_descent B NaN", lambda: gd(B=B2 * float("nan")), ValueError, std("B")),
    ("gradient_descent y length", lambda: gd(y=Y5[:3]), ValueError, std("y")),
    ("gradient_descent y 2-D", lambda: gd(y=Y5[:, None]), ValueError, std("y")),
    ("gradient_descent y NaN", lambda: gd(y=Y5 * float("nan")), ValueError, std("y")),
    ("gradient_descent lr < 0", lambda: gd(lr=-1.0), ValueError, std("lr")),
    ("gradient_descent lr 0", lambda: gd(lr=0), ValueError, std("lr")),
    ("gradient_descent lr inf", lambda: gd(lr=float("inf")), ValueError, std("lr")),
    ("gradient_descent lr str", lambda: gd(lr="0.1"), TypeError, std("lr")),
    ("gradient_descent threshold < 0", lambda: gd(threshold=-1.0), ValueError, std("threshold")),
    ("gradient_descent tol NaN", lambda: gd(tol=float("nan")), ValueError, std("tol")),
    ("gradient_descent patience float", lambda: gd(patience=1.5), TypeError, std("patience")),
    ("gradient_descent max_steps < 0", lambda: gd(max_steps=-1), ValueError, std("max_steps")),
    ("gradient_descent patience_below 0", lambda: gd(patience_below=0), ValueError,
     std("patience_below")),
    ("initial_params width k 0", lambda: train.initial_params(0, 0), ValueError, std("k")),
    ("initial_params k 2**20", lambda: train.initial_params(0, 2 ** 20), ValueError, std("k")),
    ("initial_params seed < 0", lambda: train.initial_params(-1, 3), ValueError, std("seed")),
    ("initial_params d 0", lambda: train.initial_params(0, 3, 0), ValueError, std("d")),
    ("initial_params dtype int", lambda: train.initial_params(0, 3, dtype=torch.int64), TypeError,
     std("dtype")),
    ("initial_params device name", lambda: train.initial_params(0, 3, device="gpu0"), ValueError,
     std("device")),
    ("initial_params device type", lambda: train.initial_params(0, 3, device=1.5), TypeError,
     std("device")),
    ("loss y 2-D", lambda: train.loss(A2, B2, X2D, Y5[:, None]), ValueError, std("y")),
    ("loss y length 1", lambda: train.loss(A2, B2, X2D, Y5[:1]), ValueError, std("y")),
    ("loss_and_grad X other d", lambda: train.loss_and_grad(A2, B2, X2D[:, :1], Y5), ValueError,
     std("X")),
    ("loss_and_grad X int", lambda: train.loss_and_grad(A2, B2, X2D.long(), Y5), TypeError,
     std("X")),
    ("loss_and_grad y other device", lambda: train.loss_and_grad(A2, B2, X2D, Y5.to("meta")),
     ValueError, std("y")),
    ("stability_limit X other d", lambda: train.stability_limit(A2, B2, X2D[:, :1]), ValueError,
     std("X")),
    ("stability_limit A NaN", lambda: train.stability_limit(A2 * float("nan"), B2, X2D),
     ValueError, std("A")),
    # ------------------------------------------------------------------- sweep
    ("width_sweep dtype int", lambda: ws(dtype=torch.int64), TypeError, std("dtype")),
    ("width_sweep dtype half", lambda: ws(dtype=torch.float16), TypeError, std("dtype")),
    ("width_sweep dtype complex", lambda: ws(dtype=torch.complex128), TypeError, std("dtype")),
    ("width_sweep dtype str", lambda: ws(dtype="float64"), TypeError, std("dtype")),
    ("width_sweep device name", lambda: ws(device="gpu0"), ValueError, std("device")),
    ("width_sweep widths 0", lambda: ws(widths=[0, 3]), ValueError, std("widths")),
    ("width_sweep widths float", lambda: ws(widths=[2.5]), TypeError, std("widths")),
    ("width_sweep widths not a list", lambda: ws(widths=3), TypeError, std("widths")),
    ("width_sweep widths 2**20", lambda: ws(widths=[2 ** 20]), ValueError, std("widths")),
    ("width_sweep widths empty", lambda: ws(widths=[]), ValueError, std("widths, seeds")),
    ("width_sweep widths repeated", lambda: ws(widths=[3, 3]), ValueError, std("widths, seeds")),
    ("width_sweep seeds < 0", lambda: ws(seeds=[-1]), ValueError, std("seeds")),
    ("width_sweep seeds str", lambda: ws(seeds="0"), TypeError, std("seeds")),
    ("width_sweep X int", lambda: ws(X=X2D.long()), TypeError, std("X")),
    ("width_sweep X NaN", lambda: ws(X=X2D * float("nan")), ValueError, std("X")),
    ("width_sweep X no rows", lambda: ws(X=X2D[:0], y=Y5[:0]), ValueError, std("X")),
    ("width_sweep y other device", lambda: ws(y=Y5.to("meta")), ValueError, std("y")),
    ("width_sweep y length", lambda: ws(y=Y5[:2]), ValueError, std("y")),
    ("width_sweep lr 0", lambda: ws(lr=0.0), ValueError, std("lr")),
    ("width_sweep max_steps < 0", lambda: ws(max_steps=-1), ValueError, std("max_steps")),
    ("width_sweep engine", lambda: ws(engine="gpu"), ValueError, std("engine")),
    ("width_sweep num_threads 0", lambda: ws(num_threads=0), ValueError, std("num_threads")),
    ("SweepResult.predict X other d", lambda: ws().predict(X), ValueError, std("X")),
    ("SweepResult.test_mse y length", lambda: ws().test_mse(X2D, Y5[:2]), ValueError, std("y")),
    # ----------------------------------------------------------------- scaling
    ("loglog_slope x 2-D", lambda: scaling.loglog_slope([[1, 2]], [1, 2]), ValueError, std("x")),
    ("loglog_slope x length 1", lambda: scaling.loglog_slope([1], [1]), ValueError, std("x")),
    ("loglog_slope y length", lambda: scaling.loglog_slope([1, 2, 3], [1, 2]), ValueError,
     std("y")),
    ("loglog_slope y negative", lambda: scaling.loglog_slope([1, 2], [1, -1]), ValueError,
     std("y")),
    ("loglog_slope x zero", lambda: scaling.loglog_slope([0, 2], [1, 2]), ValueError, std("x")),
    ("loglog_slope x NaN", lambda: scaling.loglog_slope([1, float("nan")], [1, 2]), ValueError,
     std("x")),
    ("loglog_slope x constant", lambda: scaling.loglog_slope([4, 4], [1, 2]), ValueError,
     std("x")),
    ("loglog_slope x strings", lambda: scaling.loglog_slope(["a", "b"], [1, 2]), TypeError,
     std("x")),
    ("loglog_slope x scalar", lambda: scaling.loglog_slope(3.0, [1, 2]), TypeError, std("x")),
    ("loglog_slope x complex", lambda: scaling.loglog_slope(torch.tensor([1, 2j]), [1, 2]),
     TypeError, std("x")),
    ("loglog_slope y bool", lambda: scaling.loglog_slope([1, 2], np.array([True, True])),
     TypeError, std("y")),
    # ---------------------------------------------------------------- fast_ntk
    ("mlp_ntk reduce", lambda: fast_ntk.mlp_ntk(NET, X, reduce="avg"), ValueError,
     std("reduce")),
    ("mlp_ntk output", lambda: fast_ntk.mlp_ntk(NET, X, output="sum"), ValueError,
     std("output")),
    ("mlp_ntk memory_budget 0", lambda: fast_ntk.mlp_ntk(NET, X, memory_budget=0), ValueError,
     std("memory_budget")),
    ("mlp_ntk X2 other d", lambda: fast_ntk.mlp_ntk(NET, X, Y[:, :2]), ValueError, std("X2")),
    ("mlp_ntk X1 other d", lambda: fast_ntk.mlp_ntk(NET, Y[:, :2]), ValueError, std("X1")),
    ("mlp_ntk X1 int", lambda: fast_ntk.mlp_ntk(NET, X.long()), TypeError, std("X1")),
    ("mlp_ntk X1 NaN", lambda: fast_ntk.mlp_ntk(NET, NAN), ValueError, std("X1")),
    ("mlp_ntk X1 no rows", lambda: fast_ntk.mlp_ntk(NET, X[:0]), ValueError, std("X1")),
    ("mlp_ntk X2 other device", lambda: fast_ntk.mlp_ntk(NET, X, META), ValueError, std("X2")),
    ("mlp_ntk model unsupported", lambda: fast_ntk.mlp_ntk(
        nn.Sequential(nn.Linear(3, 2), nn.Hardtanh()).double(), X), TypeError, std("model")),
    ("mlp_ntk model custom", lambda: fast_ntk.mlp_ntk(nn.Bilinear(3, 3, 1).double(), X), TypeError,
     std("model")),
    ("jacobian_ntk X1 other d", lambda: fast_ntk.jacobian_ntk(NET, Y[:, :2]), ValueError,
     std("X1")),
    ("jacobian_ntk X2 other d", lambda: fast_ntk.jacobian_ntk(NET, X, Y[:, :2]), ValueError,
     std("X2")),
    ("jacobian_ntk X2 no rows", lambda: fast_ntk.jacobian_ntk(NET, X, Y[:0]), ValueError,
     std("X2")),
    ("jacobian_ntk X1 complex", lambda: fast_ntk.jacobian_ntk(NET, X.to(torch.complex128)),
     TypeError, std("X1")),
    ("ntk_vp X1 other d", lambda: fast_ntk.ntk_vp(NET, Y[:, :2]), ValueError, std("X1")),
    ("ntk_vp X1 other device", lambda: fast_ntk.ntk_vp(NET, META), ValueError, std("X1")),
    ("empirical_ntk_auto method", lambda: fast_ntk.empirical_ntk_auto(NET, X, method="fast"),
     ValueError, std("method")),
    ("empirical_ntk_auto model", lambda: fast_ntk.empirical_ntk_auto("net", X), TypeError,
     std("model")),
    # ----------------------------------------------------------------- solvers
    ("kernel_regression_cg ridge < 0", lambda: cg(ridge=-1.0), ValueError, std("ridge")),
    ("kernel_regression_cg ridge NaN", lambda: cg(ridge=float("nan")), ValueError, std("ridge")),
    ("kernel_regression_cg X_test other d", lambda: cg(X_test=X[:, :2]), ValueError,
     std("X_test")),
    ("kernel_regression_cg X_test other device", lambda: cg(X_test=META), ValueError,
     std("X_test")),
    ("kernel_regression_cg y other device", lambda: cg(y=Y4.to("meta")), ValueError, std("y")),
    ("kernel_regression_cg X_train int", lambda: cg(X_train=X.long()), TypeError,
     std("X_train")),
    ("kernel_regression_cg X_train NaN", lambda: cg(X_train=NAN), ValueError, std("X_train")),
    ("kernel_regression_cg X_train no rows", lambda: cg(X_train=X[:0], y=Y4[:0]), ValueError,
     std("X_train")),
    ("kernel_regression_cg y 3-D", lambda: cg(y=Y4[:, None, None]), ValueError, std("y")),
    ("kernel_regression_cg depth 0", lambda: cg(depth=0), ValueError, std("depth")),
    ("kernel_regression_cg activation", lambda: cg(activation="gelu"), ValueError,
     rf"^activation: unknown name 'gelu'; {KNOWN}"),
    ("kernel_regression_cg tol 0", lambda: cg(tol=0.0), ValueError, std("tol")),
    ("kernel_regression_cg rank 0", lambda: cg(rank=0), ValueError, std("rank")),
    ("kernel_regression_cg max_iter 0", lambda: cg(max_iter=0), ValueError, std("max_iter")),
    ("kernel_regression_cg chunk_size 0", lambda: cg(chunk_size=0), ValueError,
     std("chunk_size")),
    ("kernel_regression_cg preconditioner", lambda: cg(preconditioner="ilu"), ValueError,
     std("preconditioner")),
    ("kernel_regression_cg kernel type", lambda: cg(kernel="ntk"), TypeError, std("kernel")),
    ("kernel_regression_cg kernel shape", lambda: cg(kernel=lambda A, B=None: torch.ones(
        2, 2, dtype=F64)), ValueError, std("kernel")),
    ("kernel_regression_cg kernel NaN", lambda: cg(kernel=lambda A, B=None: NTK(A, B) * float(
        "nan")), ValueError, std("kernel")),
    ("kernel_regression_cg kernel NaN, no preconditioner", lambda: cg(
        kernel=lambda A, B=None: NTK(A, B) * float("nan"), preconditioner="none"), ValueError,
     std("kernel")),
    ("kernel_regression_auto method", lambda: solvers.kernel_regression_auto(X, Y4, Y, method="lu"),
     ValueError, std("method")),
    ("kernel_regression_auto memory_budget", lambda: solvers.kernel_regression_auto(
        X, Y4, Y, method="cholesky", memory_budget="1"), TypeError, std("memory_budget")),
    ("kernel_regression_auto ridge < 0", lambda: solvers.kernel_regression_auto(
        X, Y4, Y, ridge=-1.0), ValueError, std("ridge")),
    ("kernel_regression_auto depth 0", lambda: solvers.kernel_regression_auto(X, Y4, Y, depth=0),
     ValueError, std("depth")),
    ("kernel_matvec V length", lambda: solvers.kernel_matvec(NTK, X, Y4[:2], chunk_size=2),
     ValueError, std("V")),
    ("kernel_matvec V float32", lambda: solvers.kernel_matvec(NTK, X, Y4.float(), chunk_size=2),
     TypeError, std("V")),
    ("kernel_matvec chunk_size 0", lambda: solvers.kernel_matvec(NTK, X, Y4, chunk_size=0),
     ValueError, std("chunk_size")),
    ("kernel_matvec ridge < 0", lambda: solvers.kernel_matvec(NTK, X, Y4, chunk_size=2,
                                                              ridge=-1.0),
     ValueError, std("ridge")),
    ("kernel_matvec kernel_fn", lambda: solvers.kernel_matvec("ntk", X, Y4, chunk_size=2),
     TypeError, std("kernel_fn")),
    ("kernel_matvec X int", lambda: solvers.kernel_matvec(NTK, X.long(), Y4, chunk_size=2),
     TypeError, std("X")),
    ("pivoted_cholesky rank 0", lambda: solvers.pivoted_cholesky(NTK, X, 0), ValueError,
     std("rank")),
    ("pivoted_cholesky block 0", lambda: solvers.pivoted_cholesky(NTK, X, 2, block=0), ValueError,
     std("block")),
    ("pivoted_cholesky diag length", lambda: solvers.pivoted_cholesky(NTK, X, 2, diag=Y4[:2]),
     ValueError, std("diag")),
    ("pivoted_cholesky X 1-D", lambda: solvers.pivoted_cholesky(NTK, X[0], 2), ValueError,
     std("X")),
]


@pytest.mark.parametrize("call, exc, match", [c[1:] for c in MORE], ids=[c[0] for c in MORE])
def test_bad_input_raises_in_training_scaling_fast_ntk_solvers(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
