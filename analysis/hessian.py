"""Largest eigenvalues of the Hessian of a loss: Hessian-vector products in the graph, Lanczos in NumPy.

A sharp minimum has large Hessian eigenvalues; Entropy-SGD's claim is that it finds flatter ones. The
Hessian of a network is never formed: ``build_hvp`` adds to the graph the product H v = d/dw (grad(w) . v)
(Pearlmutter's trick, one extra backward pass), and ``top_eigenvalues`` runs the Lanczos iteration in
NumPy with one ``session.run`` per product. The loss must be a deterministic function of the variables
(a fixed batch, model in inference mode: no dropout, batch norm reading its moving statistics), or the
"Hessian" changes between products.

Batch norm makes the raw eigenvalues depend on weight norms: a filter followed by batch norm can be
scaled by a without changing the function, and its Hessian rows and columns then scale by 1/a. The
filter-normalised Hessian D H D (``filter_scale``: D multiplies every weight by the norm of its filter)
is unchanged by such rescalings; ``top_eigenvalues(..., scale=D)`` gives its top eigenvalues.

Memory: Lanczos keeps its basis, ``iters`` float64 vectors of the parameter count (WRN-28-10 with
iters=30: 36.5 M x 30 x 8 B = 8.8 GB); lower ``iters`` for large models.
"""
import numpy as np

from tfcompat import tf


class HessianVectorProduct(object):
    """Graph pieces of H v for a loss and a list of variables, and the flat-vector conversions.

    ``vectors``: one placeholder per variable (v, in the variable's shape and dtype); ``products``: the
    tensors of H v in the same layout. ``dim``: the total number of parameters.
    """

    def __init__(self, vectors, products, var_list):
        self.vectors, self.products, self.var_list = vectors, products, var_list
        self.shapes = [tuple(v.shape.as_list()) for v in var_list]
        self.sizes = [int(np.prod(s)) for s in self.shapes]
        self.dim = sum(self.sizes)

    def feed(self, flat, feed_dict=None):
        """Return ``feed_dict`` extended with the placeholders set to the parts of the flat vector ``flat``."""
        feed = dict(feed_dict or {})
        parts = np.split(np.asarray(flat), np.cumsum(self.sizes)[:-1])
        for placeholder, part, shape in zip(self.vectors, parts, self.shapes):
            feed[placeholder] = part.reshape(shape)
        return feed

    def apply(self, sess, flat, feed_dict=None):
        """Return H v as one flat float64 vector, for the flat vector v (one ``session.run``)."""
        products = sess.run(self.products, self.feed(flat, feed_dict))
        return np.concatenate([np.ravel(p) for p in products]).astype(np.float64)


def build_hvp(loss, var_list):
    """Return a HessianVectorProduct of the scalar ``loss`` with respect to ``var_list`` (graph only).

    Variables the loss does not depend on, or only linearly, have zero rows and columns in the Hessian:
    their products are zeros rather than missing.
    """
    if not var_list:
        raise ValueError("build_hvp needs at least one variable")
    with tf.name_scope("hessian_vector_product"):
        vectors = [tf.placeholder(v.dtype.base_dtype, v.shape, name="v") for v in var_list]
        grads = tf.gradients(loss, var_list)
        dot = tf.add_n([tf.reduce_sum(g * v) for g, v in zip(grads, vectors) if g is not None]
                       or [tf.zeros([], loss.dtype)])
        second = tf.gradients(dot, var_list)
        products = [tf.zeros_like(v) if h is None else tf.convert_to_tensor(h) for h, v in zip(second, var_list)]
    return HessianVectorProduct(vectors, products, list(var_list))


def _orthogonalize(w, basis):
    """Return ``w`` minus its projection on the orthonormal rows of ``basis`` (twice: "twice is enough")."""
    for _ in range(2):
        w = w - basis.T @ (basis @ w)
    return w


def lanczos(matvec, dim, iters, rng):
    """Return the Lanczos tridiagonal matrix (``iters`` x ``iters`` or smaller) of the symmetric ``matvec``.

    Full reorthogonalisation keeps the basis orthonormal, so no spurious copies of converged eigenvalues
    appear. When the Krylov space is exhausted (an invariant subspace: a residual of zero, e.g. repeated
    eigenvalues), a fresh random direction orthogonal to the basis continues the run with a zero
    off-diagonal, until ``dim`` directions are spanned.
    """
    steps = min(iters, dim)
    basis = np.zeros((steps, dim))
    q = rng.standard_normal(dim)
    alphas, betas = [], []
    for j in range(steps):
        basis[j] = q / np.linalg.norm(q)
        w = matvec(basis[j])
        alphas.append(float(basis[j] @ w))
        if j + 1 == steps:
            break
        w = _orthogonalize(w, basis[:j + 1])
        beta = float(np.linalg.norm(w))
        if beta <= 1e-10 * max(np.abs(alphas).max(), max(betas, default=0.0), 1e-30):
            beta, w = 0.0, _orthogonalize(rng.standard_normal(dim), basis[:j + 1])
        betas.append(beta)
        q = w
    return np.diag(alphas) + np.diag(betas, 1) + np.diag(betas, -1)


def filter_scale(values):
    """Return the diagonal D of filter normalisation as one flat float64 vector (the layout of H v).

    ``values``: the variables' current values, in ``hvp.var_list`` order. Every entry of a kernel or
    weight matrix (rank >= 2, output units on the last axis: conv HWIO, dense [in, out]) gets the L2 norm
    of its output unit's weights, the norm over all axes but the last; biases and batch-norm parameters
    (rank < 2) get 1. D H D is the Hessian in the coordinates w / |filter| of Li et al.'s filter
    normalisation (2018), and does not change when a filter feeding batch norm is rescaled.
    """
    parts = []
    for value in values:
        value = np.asarray(value, np.float64)
        if value.ndim < 2:
            parts.append(np.ones(value.size))
        else:
            norms = np.sqrt(np.sum(value ** 2, axis=tuple(range(value.ndim - 1)), keepdims=True))
            parts.append(np.broadcast_to(norms, value.shape).ravel())
    return np.concatenate(parts)


def top_eigenvalues(sess, hvp, k=1, iters=30, seed=0, feed_dict=None, scale=None):
    """Return the ``k`` largest (most positive) Hessian eigenvalues, in decreasing order (float64 array).

    ``hvp`` is from ``build_hvp``; ``feed_dict`` holds whatever the loss needs (its fixed batch). The
    estimates are Ritz values of ``iters`` Lanczos steps from a random start drawn with ``seed``: the
    extreme eigenvalues converge first, so iters of a few times k suffices for well-separated top ones;
    with iters >= the parameter count they are exact up to the float precision of the products.

    ``scale``: a flat vector d (e.g. from ``filter_scale``) for the eigenvalues of diag(d) H diag(d)
    instead, from the same start: (D H D) v = d * H (d * v).
    """
    if not 1 <= k <= hvp.dim:
        raise ValueError("k must be between 1 and the number of parameters (%d), got %r" % (hvp.dim, k))
    if iters < k:
        raise ValueError("iters (%r) must be at least k (%r)" % (iters, k))
    if scale is not None and np.shape(scale) != (hvp.dim,):
        raise ValueError("scale must have one entry per parameter (%d), got shape %r"
                         % (hvp.dim, np.shape(scale)))
    rng = np.random.default_rng(seed)

    def matvec(v):
        if scale is None:
            return hvp.apply(sess, v, feed_dict)
        return scale * hvp.apply(sess, scale * v, feed_dict)

    tridiagonal = lanczos(matvec, hvp.dim, iters, rng)
    return np.linalg.eigvalsh(tridiagonal)[::-1][:k]
