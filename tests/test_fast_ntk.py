"""Tests for lecture_ntk.fast_ntk: the structured, Jacobian and NTK-vector-product routes
against an unchunked torch.func reference J J~^T built here from ``empirical.jacobian``
(float64), so the tests stay independent of how ``empirical.empirical_ntk`` is routed."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from conftest import assert_close
from lecture_ntk import device as dev, empirical, fast_ntk, network

OUTPUTS = ("full", "trace", "diagonal")


def _mlp(gen, d, widths, c, *, bias=True, act=nn.ReLU, device="cpu"):
    layers, width = [], d
    for w in widths:
        layers += [nn.Linear(width, w, bias=bias), act()]
        width = w
    model = nn.Sequential(*layers, nn.Linear(width, c, bias=bias)).double().to(device)
    with torch.no_grad():  # the test generator's draws instead of nn.Linear's own
        for p in model.parameters():
            p.copy_(dev.randn(*p.shape, generator=gen, device=device))
    return model


def _jjt(model, X1, X2=None):
    """K[i, j, a, b] = <J1[i, a], J2[j, b]>, squeezed to (n1, n2) for one output."""
    J1 = empirical.jacobian(model, X1)
    J2 = J1 if X2 is None else empirical.jacobian(model, X2)
    K = torch.einsum("iap,jbp->ijab", J1, J2)
    return K[:, :, 0, 0] if K.shape[-1] == 1 else K


def _reference(model, X1, X2, output, reduce="mean"):
    """The J J~^T reference reduced to ``output`` by hand."""
    K = _jjt(model, X1, X2)
    if K.ndim == 2:
        return K[:, :, None] if output == "diagonal" else K
    D = K.diagonal(dim1=2, dim2=3)
    if output == "full":
        return K
    if output == "diagonal":
        return D
    return D.sum(-1) if reduce == "sum" else D.mean(-1)


@pytest.mark.parametrize("depth,c,bias,act", list(itertools.product(
    [1, 2, 3], [1, 3], [True, False], [nn.ReLU, nn.Tanh])))
def test_structured_matches_jacobian_reference(gen, depth, c, bias, act):
    model = _mlp(gen, 4, [6] * depth, c, bias=bias, act=act)
    X1, X2 = dev.randn(5, 4, generator=gen), dev.randn(3, 4, generator=gen)
    for output, reduce in [("full", "mean"), ("diagonal", "mean"), ("trace", "sum"),
                           ("trace", "mean")]:
        K = fast_ntk.mlp_ntk(model, X1, X2, output=output, reduce=reduce)
        R = _reference(model, X1, X2, output, reduce)
        assert K.shape == R.shape
        assert_close(K, R, rtol=1e-10, msg=f"{output}/{reduce}")


def test_structured_on_device(gen, device):
    model = _mlp(gen, 3, [5, 4], 2, device=device)
    X = dev.randn(6, 3, generator=gen, device=device)
    K = fast_ntk.mlp_ntk(model, X)
    assert K.device == X.device
    assert_close(K, _jjt(model, X), rtol=1e-10)


@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("scaled", [True, False])
def test_shallow_net_matches_reference_and_hand_formula(gen, c, scaled):
    net = network.ShallowNet.init(4, 9, c, generator=gen, activation="tanh", scaled=scaled)
    X1, X2 = dev.randn(5, 4, generator=gen), dev.randn(7, 4, generator=gen)
    K = fast_ntk.mlp_ntk(net, X1, X2)
    assert_close(K, _jjt(net, X1, X2), rtol=1e-10)
    if c == 1:  # the §5 closed form, a third route
        A, B = net.A.detach(), net.B.detach()
        hand = empirical.shallow_ntk(A, B, X1, X2, activation="tanh", scaled=scaled)
        assert_close(K, hand, rtol=1e-12)


@pytest.mark.parametrize("module", [
    nn.LeakyReLU(0.1), nn.Sigmoid(), nn.GELU(), nn.GELU(approximate="tanh"),
    nn.Softplus(beta=2.0, threshold=1.0), nn.Identity()])
def test_other_activations(gen, module):
    model = _mlp(gen, 3, [5], 2)
    model[1] = module
    X = 2 * dev.randn(6, 3, generator=gen)
    assert fast_ntk.pick_method(model) == "structured"
    assert_close(fast_ntk.mlp_ntk(model, X), _jjt(model, X), rtol=1e-10)


def test_nested_sequential_leading_and_trailing_activations(gen):
    inner = _mlp(gen, 3, [4], 4, act=nn.Tanh)
    model = nn.Sequential(nn.Tanh(), inner, nn.Sigmoid(), nn.Linear(4, 2).double(), nn.Tanh())
    with torch.no_grad():
        for p in model[3].parameters():
            p.copy_(dev.randn(*p.shape, generator=gen))
    X = dev.randn(5, 3, generator=gen)
    assert_close(fast_ntk.mlp_ntk(model, X), _jjt(model, X), rtol=1e-10)


@pytest.mark.parametrize("method", ["structured", "jacobian", "ntk_vp"])
@pytest.mark.parametrize("symmetric", [True, False])
def test_chunked_equals_unchunked(gen, method, symmetric):
    model = _mlp(gen, 3, [5, 5], 2)
    X1 = dev.randn(9, 3, generator=gen)
    X2 = None if symmetric else dev.randn(7, 3, generator=gen)
    for output in OUTPUTS:
        whole = fast_ntk.empirical_ntk_auto(model, X1, X2, method=method, output=output)
        tiled = fast_ntk.empirical_ntk_auto(model, X1, X2, method=method, output=output,
                                            memory_budget=2000)  # a few rows per tile
        assert_close(tiled, whole, rtol=1e-12, msg=output)
        assert_close(whole, _reference(model, X1, X2, output), rtol=1e-10, msg=output)


def test_symmetric_result_is_exactly_symmetric(gen):
    model = _mlp(gen, 3, [6], 2)
    X = dev.randn(11, 3, generator=gen)
    K = fast_ntk.mlp_ntk(model, X, memory_budget=3000)
    assert torch.equal(K, K.permute(1, 0, 3, 2))


def test_output_modes_are_consistent(gen):
    model = _mlp(gen, 3, [5], 4)
    X1, X2 = dev.randn(4, 3, generator=gen), dev.randn(6, 3, generator=gen)
    full = fast_ntk.mlp_ntk(model, X1, X2)
    diag = fast_ntk.mlp_ntk(model, X1, X2, output="diagonal")
    assert torch.allclose(diag, full.diagonal(dim1=2, dim2=3), rtol=1e-12, atol=0)
    total = fast_ntk.mlp_ntk(model, X1, X2, output="trace", reduce="sum")
    mean = fast_ntk.mlp_ntk(model, X1, X2, output="trace", reduce="mean")
    assert_close(total, diag.sum(-1), rtol=1e-12)
    assert_close(mean, total / 4, rtol=1e-14)


def test_generic_routes_on_a_module_outside_the_structured_family(gen):
    model = nn.Sequential(nn.Linear(3, 5), nn.LayerNorm(5), nn.Tanh(), nn.Linear(5, 2)).double()
    X1, X2 = dev.randn(5, 3, generator=gen), dev.randn(4, 3, generator=gen)
    assert fast_ntk.pick_method(model) == "jacobian"
    R = _jjt(model, X1, X2)
    assert_close(fast_ntk.empirical_ntk_auto(model, X1, X2), R, rtol=1e-10)
    assert_close(fast_ntk.ntk_vp(model, X1, X2), R, rtol=1e-10)
    with pytest.raises(TypeError, match="model: .*LayerNorm"):
        fast_ntk.mlp_ntk(model, X1)


def test_pick_method_refuses_shared_parameters_and_custom_modules(gen):
    lin = nn.Linear(3, 3).double()
    assert fast_ntk.pick_method(nn.Sequential(lin, nn.ReLU(), lin)) == "jacobian"
    with pytest.raises(TypeError, match="shared"):
        fast_ntk.mlp_ntk(nn.Sequential(lin, nn.ReLU(), lin), dev.randn(2, 3, generator=gen))

    class Custom(nn.Sequential):  # may override forward: not trusted as a plain stack
        pass

    assert fast_ntk.pick_method(Custom(nn.Linear(3, 1))) == "jacobian"
    assert fast_ntk.pick_method(network.ShallowNet.init(3, 4, generator=gen)) == "structured"


def test_hooked_models_take_the_jacobian_route(gen):
    """A hook changes what the layers compute; the structured route never calls forward."""
    model = _mlp(gen, 3, [4], 2)
    X = dev.randn(5, 3, generator=gen)
    plain = _jjt(model, X)
    handle = model[1].register_forward_hook(lambda m, args, out: 2 * out)
    try:
        assert fast_ntk.pick_method(model) == "jacobian"
        hooked = _jjt(model, X)
        assert float((hooked - plain).abs().max()) > 1e-3        # the hook matters
        assert_close(fast_ntk.empirical_ntk_auto(model, X), hooked, rtol=1e-10)
        with pytest.raises(TypeError, match="model: .*hooks"):
            fast_ntk.mlp_ntk(model, X)
    finally:
        handle.remove()
    handle = model[0].register_forward_pre_hook(lambda m, args: (args[0] * 3,))
    try:
        assert fast_ntk.pick_method(model) == "jacobian"
        assert_close(empirical.empirical_ntk(model, X), _jjt(model, X), rtol=1e-10)
    finally:
        handle.remove()
    assert fast_ntk.pick_method(model) == "structured"


@pytest.mark.parametrize("layer", [nn.Dropout(0.5), nn.BatchNorm1d(4)], ids=["dropout", "batchnorm"])
def test_training_mode_dropout_and_batchnorm_are_refused_without_side_effects(gen, layer):
    model = nn.Sequential(nn.Linear(3, 4), layer, nn.ReLU(), nn.Linear(4, 1)).double()
    X = dev.randn(5, 3, generator=gen)
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    for method in ("auto", "jacobian", "ntk_vp"):
        with pytest.raises(ValueError, match=r"model: expected a model in eval mode.*model\.eval"):
            fast_ntk.empirical_ntk_auto(model, X, method=method)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())
    model.eval()
    K = fast_ntk.empirical_ntk_auto(model, X)
    assert torch.equal(K, fast_ntk.empirical_ntk_auto(model, X))     # deterministic
    assert_close(K, _jjt(model, X), rtol=1e-10)


def test_bad_inputs(gen):
    model = _mlp(gen, 3, [4], 2)
    X = dev.randn(4, 3, generator=gen)
    with pytest.raises(ValueError, match="output"):
        fast_ntk.mlp_ntk(model, X, output="sum")
    with pytest.raises(ValueError, match="reduce"):
        fast_ntk.mlp_ntk(model, X, output="trace", reduce="max")
    with pytest.raises(ValueError, match="memory_budget"):
        fast_ntk.mlp_ntk(model, X, memory_budget=0)
    with pytest.raises(ValueError, match="method"):
        fast_ntk.empirical_ntk_auto(model, X, method="fast")
    with pytest.raises(ValueError, match="X2"):
        fast_ntk.mlp_ntk(model, X, dev.randn(4, 2, generator=gen))
    with pytest.raises(ValueError, match="X1"):
        fast_ntk.mlp_ntk(model, dev.randn(4, 2, generator=gen))
    with pytest.raises(TypeError, match="X1"):
        fast_ntk.mlp_ntk(model, X.float())
    with pytest.raises(TypeError, match="model"):
        fast_ntk.empirical_ntk_auto("not a module", X)


def test_symmetric_blocking_of_large_n_matches_the_plain_product(gen):
    # n >= 512 with X2 = None: row blocks on and above the diagonal only, then mirrored.
    model = _mlp(gen, 3, [4], 2, act=nn.Tanh)
    X = dev.randn(520, 3, generator=gen)
    K = fast_ntk.mlp_ntk(model, X, memory_budget=None)
    assert torch.equal(fast_ntk.mlp_ntk(model, X, X), K)    # (X, X) is spotted as symmetric
    assert_close(K, fast_ntk.mlp_ntk(model, X, X.clone()), rtol=1e-13)  # one plain tile


@pytest.mark.parametrize("method", ["structured", "jacobian", "ntk_vp"])
def test_every_route_runs_under_the_precision_policy(loose_precision, monkeypatch, method):
    # Settings seen inside the network's activation and the Gram products of the routes: full
    # float32 precision while the call runs, the caller's settings restored afterwards.
    from lecture_ntk import activations, precision
    seen = []

    def phi(z):
        seen.append(precision.settings())
        return torch.tanh(z)

    gram = fast_ntk._gram

    def spy(*args):
        seen.append(precision.settings())
        return gram(*args)

    monkeypatch.setattr(fast_ntk, "_gram", spy)
    probe = activations.Activation("probe", phi, lambda z: 1 - torch.tanh(z) ** 2, lambda z: z)
    g = torch.Generator().manual_seed(0)
    net = network.ShallowNet(*network.init_params(3, 5, 2, generator=g, dtype=torch.float32),
                             activation=probe)
    X = dev.randn(4, 3, generator=g, dtype=torch.float32)
    fast_ntk.empirical_ntk_auto(net, X, method=method)
    assert len(seen) >= 2
    assert all(s == {"cuda.matmul.allow_tf32": False, "cudnn.allow_tf32": False,
                     "float32_matmul_precision": "highest"} for s in seen)
    assert precision.settings() == loose_precision
