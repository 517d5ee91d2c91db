"""lecture_ntk: an executable course on the Neural Tangent Kernel.

Modules, in the order of the lecture:

- ``device``       get_device(), make_generator(seed): where tensors live, where randomness comes from
- ``activations``  phi, phi', phi'' for ReLU (plain and sqrt(2)-scaled), erf, tanh, sin, softplus
- ``network``      f(w; x) = A phi(B x) / sqrt(k), the parameter vector w (§1, Example 1)
- ``empirical``    psi(x) = grad_w f_x(w0), the empirical NTK, the hand-written gradients (§2-3, §5)
- ``linearize``    f~ and its training as linear regression on psi (Definition 1)
- ``kernels``      dual activations, the infinite-width NNGP and NTK (Theorem 1, Example 2, §12)
- ``hessian``      the Hessian of f_x(w) and its 2x2-block eigenvalues (Proposition 1, Appendix A)
- ``regression``   kernel regression by Cholesky
- ``data``         Example 3's data
- ``train``        gradient descent with the lecture's stopping rules (Example 3)
- ``sweep``        every width and seed of Example 3 trained together in one batched loop
- ``fast_ntk``     structured empirical NTK of fully connected networks (no per-sample Jacobian)
- ``solvers``      matrix-free kernel regression (preconditioned conjugate gradients)
- ``precision``    the float32/TF32 policy for kernel computations on GPUs
- ``scaling``      power-law slopes on log-log axes
- ``plots``        matplotlib helpers that draw arrays and compute nothing
"""
import importlib

__version__ = "0.1.0"

_MODULES = ("device", "activations", "network", "empirical", "linearize", "kernels", "hessian",
            "regression", "data", "train", "sweep", "scaling", "plots", "fast_ntk", "solvers",
            "precision", "course")


def __getattr__(name):
    # Submodules load on first use, so `import lecture_ntk` stays cheap and
    # `lecture_ntk.kernels` works without a separate import.
    if name in _MODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'lecture_ntk' has no attribute {name!r}")


__all__ = list(_MODULES)
