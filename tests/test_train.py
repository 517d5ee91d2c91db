"""Gradient descent with Example 3's stopping rules: reference loop, batched width sweep."""
import math
import re
import shutil

import pytest
import torch

from conftest import assert_close
from lecture_ntk import data, device as dev, network, sweep, train

F64 = torch.float64
# A short setting where all three rules fire: lr and threshold raised so that it takes
# ~10-200 steps (widths 2, 5 use the patience rule, 16 and 70 the threshold rule).
WIDTHS, SEEDS = (2, 5, 16, 70), (0, 3)
RULES = dict(lr=0.03, threshold=2.5, max_steps=170)


@pytest.fixture(scope="module")
def example():
    d = data.example3(generator=dev.make_generator(0))
    return data.with_bias(d.x_train), d.y_train


@pytest.fixture(scope="module")
def references(example):
    X, y = example
    return {(s, k): train.gradient_descent(*train.initial_params(s, k), X, y, **RULES)
            for s in SEEDS for k in WIDTHS}


def _assert_matches(result, references, rtol=1e-10):
    for i, s in enumerate(result.seeds):
        for j, k in enumerate(result.widths):
            ref = references[(s, k)]
            got = (int(result.steps[i, j]), result.reasons[i][j])
            assert got == (ref.steps, ref.reason), (s, k)
            assert_close(result.A[i][j], ref.A, rtol=rtol)
            assert_close(result.B[i][j], ref.B, rtol=rtol)
            assert abs(float(result.loss[i, j]) - ref.loss) <= rtol * ref.loss


def test_initial_params_depend_only_on_seed_and_width():
    A, B = train.initial_params(3, 7)
    assert A.shape == (1, 7) and B.shape == (7, 2) and A.dtype == F64
    A2, B2 = network.init_params(2, 7, generator=dev.make_generator(3 * 2 ** 20 + 7))
    assert torch.equal(A, A2) and torch.equal(B, B2)
    assert not torch.equal(train.initial_params(4, 7)[0], A)


def test_hand_gradients_match_autograd(gen):
    A, B = network.init_params(3, 9, generator=gen)
    X = torch.randn(6, 3, generator=gen, dtype=F64)
    y = torch.randn(6, generator=gen, dtype=F64)
    L, dA, dB = train.loss_and_grad(A, B, X, y)
    A_, B_ = A.clone().requires_grad_(True), B.clone().requires_grad_(True)
    L_ref = train.loss(A_, B_, X, y)
    gA, gB = torch.autograd.grad(L_ref, (A_, B_))
    assert abs(float(L) - L_ref.item()) < 1e-12 * L_ref.item()
    assert_close(dA, gA, rtol=1e-12)
    assert_close(dB, gB, rtol=1e-12)


def test_one_batched_step_is_one_autograd_step(example):
    X, y = example
    res = sweep.width_sweep(X, y, [3, 40], [1], max_steps=1, engine="eager", progress=False)
    for j, k in enumerate((3, 40)):
        A, B = train.initial_params(1, k)
        _, dA, dB = train.loss_and_grad(A, B, X, y)
        assert res.steps[0, j] == 1 and res.reasons[0][j] == "cap"
        assert_close(res.A[0][j], A - 1e-2 * dA, rtol=1e-13)
        assert_close(res.B[0][j], B - 1e-2 * dB, rtol=1e-13)


def test_eager_sweep_equals_reference(example, references):
    X, y = example
    res = sweep.width_sweep(X, y, WIDTHS, SEEDS, engine="eager", progress=False, **RULES)
    reasons = {r for row in res.reasons for r in row}
    assert reasons == {"threshold", "patience", "cap"}  # the setting exercises every rule
    _assert_matches(res, references)
    assert res.engine == "eager"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside torch's compiler stack
def test_compiled_sweep_equals_reference(example, references):
    X, y = example
    res = sweep.width_sweep(X, y, WIDTHS, SEEDS, engine="compiled", progress=False, **RULES)
    if shutil.which("g++") or shutil.which("c++"):
        assert res.engine == "compiled"  # a C++ compiler is present: no silent fallback
    _assert_matches(res, references)


def test_compaction_keeps_results(example, references, monkeypatch):
    # Short blocks: the working set is compacted several times while others keep training.
    monkeypatch.setattr(sweep, "BLOCK", 5)
    X, y = example
    res = sweep.width_sweep(X, y, WIDTHS, SEEDS, engine="eager", progress=False, **RULES)
    _assert_matches(res, references)


def test_falls_back_to_eager_when_compilation_fails(example, references, monkeypatch):
    def broken():
        raise RuntimeError("no compiler")
    monkeypatch.setattr(sweep, "_compiled_block", broken)
    X, y = example
    res = sweep.width_sweep(X, y, WIDTHS, SEEDS, progress=False, **RULES)
    assert res.engine == "eager"
    _assert_matches(res, references)


def test_frozen_networks_do_not_move(example):
    X, y = example
    short = sweep.width_sweep(X, y, WIDTHS, SEEDS, engine="eager", progress=False, **RULES)
    long = sweep.width_sweep(X, y, WIDTHS, SEEDS, engine="eager", progress=False,
                             **{**RULES, "max_steps": 400})
    for i in range(len(SEEDS)):
        for j in range(len(WIDTHS)):
            if short.reasons[i][j] != "cap":  # stopped before the cap: frozen from then on
                assert int(long.steps[i, j]) == int(short.steps[i, j])
                assert torch.equal(long.A[i][j], short.A[i][j])
                assert torch.equal(long.B[i][j], short.B[i][j])
                assert float(long.loss[i, j]) == float(short.loss[i, j])


def test_patience_counts_all_non_decreasing_steps(example):
    # With a large step the loss of a width-3 network goes up and down: the non-decreasing
    # steps come in many short runs, and the rule counts all of them (lecture's footnote).
    X, y = example
    ref = train.gradient_descent(*train.initial_params(0, 3), X, y, lr=0.1, max_steps=300)
    L = ref.losses
    flat = ~(L[1:] < L[:-1] * (1 - train.TOL))
    assert ref.reason == "patience" and int(flat.sum()) == 51 and bool(flat[-1])
    starts = int(flat[0]) + int((flat[1:] & ~flat[:-1]).sum())
    assert starts > 10  # far from 51 consecutive steps
    res = sweep.width_sweep(X, y, [3], [0], lr=0.1, max_steps=300, engine="eager", progress=False)
    assert (res.reasons[0][0], int(res.steps[0, 0])) == ("patience", ref.steps)


def test_threshold_and_patience_on_a_perfect_fit(example):
    X, _ = example
    for k, expected in ((15, ("threshold", 0)), (14, ("patience", 51))):
        A, B = train.initial_params(0, k)
        y = network.forward(A, B, X)[:, 0]  # labels the network already fits: L = 0, grad = 0
        ref = train.gradient_descent(A, B, X, y, max_steps=100)
        assert (ref.reason, ref.steps) == expected
        res = sweep.width_sweep(X, y, [k], [0], max_steps=100, engine="eager", progress=False)
        assert (res.reasons[0][0], int(res.steps[0, 0])) == expected


def test_cap(example):
    X, y = example
    for cap in (0, 5):
        ref = train.gradient_descent(*train.initial_params(0, 32), X, y, max_steps=cap)
        assert (ref.reason, ref.steps, len(ref.losses)) == ("cap", cap, cap + 1)
        res = sweep.width_sweep(X, y, [32], [0], max_steps=cap, engine="eager", progress=False)
        assert (res.reasons[0][0], int(res.steps[0, 0])) == ("cap", cap)
        assert abs(float(res.loss[0, 0]) - ref.loss) < 1e-12 * ref.loss


def test_predict_and_test_mse(example):
    X, y = example
    res = sweep.width_sweep(X, y, [1, 4], [0, 1, 2], max_steps=3, engine="eager", progress=False)
    x_test = torch.linspace(-1, 1, 11, dtype=F64)
    X_test = data.with_bias(x_test)
    out = res.predict(X_test)
    assert out.shape == (3, 2, 11)
    assert_close(out[2, 1], network.forward(res.A[2][1], res.B[2][1], X_test)[:, 0])
    mse = res.test_mse(X_test, data.g(x_test))
    assert mse.shape == (3, 2)
    assert math.isclose(float(mse[0, 0]), float(((out[0, 0] - data.g(x_test)) ** 2).mean()))


def test_float32_sweep(example):
    X, y = example
    res = sweep.width_sweep(X, y, [3, 20], [0], max_steps=20, engine="eager", dtype=torch.float32,
                            progress=False)
    assert res.A[0][1].dtype == torch.float32
    ref = sweep.width_sweep(X, y, [3, 20], [0], max_steps=20, engine="eager", progress=False)
    assert_close(res.A[0][1], ref.A[0][1], rtol=1e-4)


def test_device(example, device):
    X, y = example
    res = sweep.width_sweep(X.to(device), y.to(device), [3, 20], [0], max_steps=20,
                            engine="eager", progress=False, device=device)
    ref = sweep.width_sweep(X, y, [3, 20], [0], max_steps=20, engine="eager", progress=False)
    assert res.A[0][1].device.type == device.type
    assert_close(res.B[0][1], ref.B[0][1], rtol=1e-10)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(widths=[0, 3]), ValueError, "widths"),
    (dict(widths=[2.5]), TypeError, "widths"),
    (dict(widths=[]), ValueError, "widths"),
    (dict(widths=[3, 3]), ValueError, "repeats"),
    (dict(seeds=[-1]), ValueError, "seeds"),
    (dict(lr=0.0), ValueError, "lr"),
    (dict(lr=-1e-2), ValueError, "lr"),
    (dict(threshold=-1.0), ValueError, "threshold"),
    (dict(tol=float("nan")), ValueError, "tol"),
    (dict(max_steps=-1), ValueError, "max_steps"),
    (dict(patience=1.5), TypeError, "patience"),
    (dict(engine="gpu"), ValueError, "engine"),
    (dict(y_train=torch.ones(14, dtype=F64)), ValueError, "y: expected shape"),
    (dict(X_train=torch.ones(15, dtype=F64)), ValueError, "X: expected shape"),
    (dict(y_train=torch.full((15,), float("nan"), dtype=F64)), ValueError, "y: expected finite"),
    (dict(y_train=torch.ones(15)), TypeError, "y: expected dtype"),
])
def test_sweep_bad_inputs(example, kwargs, error, match):
    X, y = example
    args = dict(X_train=X, y_train=y, widths=[3], seeds=[0], max_steps=1, progress=False)
    args.update(kwargs)
    with pytest.raises(error, match=match):
        sweep.width_sweep(**args)


def test_gradient_descent_bad_inputs(example):
    X, y = example
    A, B = train.initial_params(0, 4)
    with pytest.raises(ValueError, match="A: expected shape \\(1, k\\)"):
        train.gradient_descent(torch.ones(2, 4, dtype=F64), B, X, y)
    with pytest.raises(ValueError, match=r"B: expected shape \(k, d\) with k = 4"):
        train.gradient_descent(A, B[:3], X, y)
    with pytest.raises(ValueError, match="X: expected 2 feature columns"):
        train.gradient_descent(A, B, X[:, :1], y)
    with pytest.raises(ValueError, match="lr"):
        train.gradient_descent(A, B, X, y, lr=0)
    with pytest.raises(ValueError, match="k: expected a width below"):
        train.initial_params(0, 2 ** 20)
    with pytest.raises(ValueError, match="seed"):
        train.initial_params(-1, 3)
    for tol in (1.0, 2.0):     # every step would count as "not decreasing"
        with pytest.raises(ValueError, match=r"^tol: expected a relative decrease in \[0, 1\)"):
            train.gradient_descent(A, B, X, y, tol=tol)


def test_inputs_whose_kernel_overflows_still_raise_divergence_with_the_run(example):
    # K(w0) = J J^T overflows float64 (|x| ~ 1e200): no limit, but a DivergenceError with .result
    X, y = example
    X = X * 1e200
    A, B = train.initial_params(0, 16)
    assert math.isnan(train.stability_limit(A, B, X))
    with pytest.raises(train.DivergenceError, match="could not be computed.*rescale") as info:
        train.gradient_descent(A, B, X, y, max_steps=10)
    assert math.isnan(info.value.limit) and info.value.result.reason == "diverged"
    with pytest.raises(train.DivergenceError, match="could not be computed") as info:
        sweep.width_sweep(X, y, [3, 16], [0], max_steps=10, engine="eager", progress=False)
    assert [list(r) for r in info.value.result.reasons] == [["diverged", "diverged"]]
    assert math.isnan(info.value.limit) and len(info.value.limits) == 2


# ------------------------------------------------------------------------------ divergence
# lr = 1.0 on widths (5, 16), seeds (0, 1): seed 1's networks diverge (their limits 2 / lambda_max
# are 0.026 and 0.091), seed 0's do not (a ReLU network may survive a large step by losing units).
DIV_WIDTHS, DIV_SEEDS, DIV_LR = (5, 16), (0, 1), 1.0
NUM = r"(\d+(?:\.\d+)?(?:e[+-]?\d+)?|inf)"                  # a number as the messages print it
LIMIT_RE = r"2 / lambda_max\(K\(w0\)\) = " + NUM


def _jacobian_limit(A, B, X):
    """2 / lambda_max(J J^T), J = d f(X) / d w by torch.autograd.functional.jacobian (float64)."""
    k, d = B.shape

    def f(w):
        return network.forward(*network.unflatten(w, k=k, d=d), X)[:, 0]

    J = torch.autograd.functional.jacobian(f, network.flatten(A, B))       # (n, k + k d)
    return 2.0 / torch.linalg.eigvalsh(J @ J.T)[-1].item()


def test_stability_limit_is_two_over_the_largest_eigenvalue_of_j_jt(example):
    X, _ = example
    for s, k in ((0, 3), (1, 16), (2, 70)):
        A, B = train.initial_params(s, k)
        assert math.isclose(train.stability_limit(A, B, X), _jacobian_limit(A, B, X), rel_tol=1e-12)
        A32, B32 = train.initial_params(s, k, dtype=torch.float32)   # computed in float64 anyway
        assert math.isclose(train.stability_limit(A32, B32, X.float()), _jacobian_limit(A, B, X),
                            rel_tol=1e-5)
    A, B = train.initial_params(0, 4)
    dead = -torch.ones_like(B)                # B x < 0 for every x = (x, 1) with x >= 0: K = 0
    assert train.stability_limit(A, dead, X.abs()) == math.inf


def test_gradient_descent_far_above_the_limit_raises_with_lr_and_limit(example):
    X, y = example
    A, B = train.initial_params(0, 16)
    limit = _jacobian_limit(A, B, X)
    lr = 30 * limit
    with pytest.raises(train.DivergenceError) as info:
        train.gradient_descent(A, B, X, y, lr=lr)
    err, msg = info.value, str(info.value)
    assert isinstance(err, ValueError)
    assert msg.startswith("gradient_descent: the loss diverged at step ")
    assert math.isclose(float(re.search(r"with lr = " + NUM, msg).group(1)), lr, rel_tol=1e-5)
    assert math.isclose(float(re.search(LIMIT_RE, msg).group(1)), limit, rel_tol=1e-5)
    assert err.lr == lr and math.isclose(err.limit, limit, rel_tol=1e-12)
    res = err.result                                  # the run up to the divergence is kept
    L0, ceiling = res.losses[0].item(), 1e3 * max(res.losses[0].item(), 0.5 * float(y @ y))
    assert res.reason == "diverged" and 1 <= res.steps < 10 and len(res.losses) == res.steps + 1
    assert res.loss == res.losses[-1].item() > ceiling >= 1e3 * L0
    assert bool((res.losses[:-1] <= ceiling).all())   # stopped at the first step past the ceiling


def test_gradient_descent_below_the_limit_does_not_raise(example):
    X, y = example
    A, B = train.initial_params(0, 16)
    ref = train.gradient_descent(A, B, X, y, lr=0.9 * _jacobian_limit(A, B, X), max_steps=300)
    assert ref.reason == "cap" and ref.steps == 300 and ref.loss < ref.losses[0].item()


def test_non_finite_loss_is_a_divergence(example, monkeypatch):
    # float32 with lr = 100 x the limit overflows to inf at step 3 (the ceiling switched off, so
    # only the non-finite rule can fire); in the sweep at the same step.
    monkeypatch.setattr(train, "DIVERGENCE", math.inf)
    X, y = example
    X32, y32 = X.float(), y.float()
    A, B = train.initial_params(2, 70, dtype=torch.float32)
    lr = 100 * _jacobian_limit(*train.initial_params(2, 70), X)
    with pytest.raises(train.DivergenceError, match="L = inf") as info:
        train.gradient_descent(A, B, X32, y32, lr=lr)
    assert info.value.result.reason == "diverged" and info.value.result.steps == 3
    with pytest.raises(train.DivergenceError, match="seed 2 width 70 at step 3 \\(L = inf") as info:
        sweep.width_sweep(X32, y32, [70], [2], lr=lr, dtype=torch.float32, engine="eager",
                          progress=False)
    assert info.value.result.reasons == (("diverged",),)
    # A loss that is not finite at the starting weights stops before the first step.
    big = torch.full_like(y32, 1e20)                  # y^2 overflows float32
    with pytest.raises(train.DivergenceError, match="step 0 .*not finite in torch.float32"):
        train.gradient_descent(A, B, X32, big)
    with pytest.raises(train.DivergenceError, match="at step 0 "):
        sweep.width_sweep(X32, big, [70], [2], dtype=torch.float32, engine="eager", progress=False)


def _check_sweep_divergence(example, engine):
    X, y = example
    with pytest.raises(train.DivergenceError) as info:
        sweep.width_sweep(X, y, DIV_WIDTHS, DIV_SEEDS, lr=DIV_LR, max_steps=300, engine=engine,
                          progress=False)
    err, msg = info.value, str(info.value)
    assert isinstance(err, ValueError) and err.lr == DIV_LR
    assert msg.startswith("width_sweep: gradient descent diverged for 2 of 4 networks with lr = 1 ")
    named = re.findall(r"seed (\d+) width (\d+) at step (\d+) \(L = [^;]+; stability limit "
                       + LIMIT_RE + r"\)", msg)
    assert {(int(s), int(k)) for s, k, _, _ in named} == {(1, 5), (1, 16)} == set(err.networks)
    res = err.result                                  # every network's work is kept
    for i, s in enumerate(DIV_SEEDS):
        for j, k in enumerate(DIV_WIDTHS):
            A, B = train.initial_params(s, k)
            try:
                ref = train.gradient_descent(A, B, X, y, lr=DIV_LR, max_steps=300)
            except train.DivergenceError as e:
                ref = e.result
                limit = _jacobian_limit(A, B, X)
                assert math.isclose(err.limits[(s, k)], limit, rel_tol=1e-12)
                shown = next(float(v) for s_, k_, _, v in named if (int(s_), int(k_)) == (s, k))
                assert math.isclose(shown, limit, rel_tol=1e-5)
            assert (res.reasons[i][j], int(res.steps[i, j])) == (ref.reason, ref.steps), (s, k)
            assert_close(res.A[i][j], ref.A, rtol=1e-10)
    assert res.reasons == (("patience", "cap"), ("diverged", "diverged"))
    assert math.isclose(err.limit, min(err.limits.values()))
    assert math.isclose(float(re.search(r"use a smaller lr, e.g. " + NUM, msg).group(1)),
                        0.5 * err.limit, rel_tol=1e-2)
    return res


def test_eager_sweep_names_the_diverged_networks(example):
    assert _check_sweep_divergence(example, "eager").engine == "eager"


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_compiled_sweep_names_the_diverged_networks(example):
    res = _check_sweep_divergence(example, "compiled")
    if shutil.which("g++") or shutil.which("c++"):
        assert res.engine == "compiled"


def test_sweep_below_the_limits_does_not_raise(example):
    X, y = example
    lr = 0.9 * min(train.stability_limit(*train.initial_params(s, k), X)
                   for s in DIV_SEEDS for k in DIV_WIDTHS)
    res = sweep.width_sweep(X, y, DIV_WIDTHS, DIV_SEEDS, lr=lr, max_steps=200, engine="eager",
                            progress=False)
    assert "diverged" not in {r for row in res.reasons for r in row}
    assert train.REASONS == ("threshold", "patience", "cap", "diverged")
    assert set(sweep._CODES.values()) == set(train.REASONS)


def test_results_print_as_summaries_not_weights(example):
    X, y = example
    res = train.gradient_descent(*train.initial_params(0, 16), X, y, max_steps=5)
    assert repr(res) == (f"GDResult(k=16, d=2, steps=5, loss={res.loss:.4g}, reason='cap', "
                         "losses=<6 values>)")
    out = sweep.width_sweep(X, y, [3, 16], [0, 1], max_steps=5, engine="eager", progress=False)
    assert repr(out) == ("SweepResult(widths=[3, 16], seeds=[0, 1], steps 5..5, stops {cap: 4}, "
                         "engine='eager')")
