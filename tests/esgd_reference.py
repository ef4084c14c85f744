"""The NumPy side of the optimizer tests: an independent float64 transcription of Entropy-SGD (the
pseudocode of the published update, as optimizers/entropy_sgd.py's docstring states it, not the
optimizer's code), hand-derived gradients of two small models, and the matching TF models over the same
fixed batches.
"""
import numpy as np

from tfcompat import tf

BATCH, DIM, CLASSES, HIDDEN = 8, 6, 3, 5
N_BATCHES = 64


# ----- NumPy side -----------------------------------------------------------------------------------

def softmax_xent_grad(logits, labels):
    """Mean cross-entropy of a batch and its gradient with respect to the logits."""
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    onehot = np.eye(logits.shape[1])[labels]
    loss = -np.mean(np.log(p[np.arange(len(labels)), labels]))
    return loss, (p - onehot) / len(labels)


def linear_grads(params, batch):
    """Softmax regression: logits = X W + b."""
    (w, b), (x, y) = params, batch
    _, dz = softmax_xent_grad(x @ w + b, y)
    return [x.T @ dz, dz.sum(axis=0)]


def two_layer_grads(params, batch):
    """logits = tanh(X W1 + b1) W2 + b2, backpropagated by hand."""
    (w1, b1, w2, b2), (x, y) = params, batch
    h = np.tanh(x @ w1 + b1)
    _, dz = softmax_xent_grad(h @ w2 + b2, y)
    dh = (dz @ w2.T) * (1.0 - h ** 2)
    return [x.T @ dh, dh.sum(axis=0), h.T @ dz, dz.sum(axis=0)]


def reference_entropy_sgd(params, batches, grad_fn, steps, learning_rate, L, gamma, scoping, langevin_lr, mu_decay,
                          momentum, nesterov, weight_decay, outer_momentum=None):
    """The pseudocode of Entropy-SGD with epsilon = 0, in float64; returns the weights after `steps` outer steps.
    ``outer_momentum`` (default: ``momentum``) is the outer step's."""
    outer_momentum = momentum if outer_momentum is None else outer_momentum
    x = [p.astype(np.float64) for p in params]
    m = [np.zeros_like(p) for p in x]
    stream = iter(batches)

    def with_momentum(buf, g, momentum=momentum):
        buf *= momentum
        buf += g
        return g + momentum * buf if nesterov else buf.copy()

    for k in range(steps):
        g_k = gamma * (1.0 + scoping) ** k
        if L == 0:
            d = grad_fn(x, next(stream))
        else:
            xp = [p.copy() for p in x]
            mu = [p.copy() for p in x]
            mp = [np.zeros_like(p) for p in x]
            for _ in range(L):
                g = grad_fn(xp, next(stream))
                for j in range(len(x)):
                    gj = with_momentum(mp[j], g[j] + weight_decay * xp[j])
                    gj = gj - g_k * (x[j] - xp[j])
                    xp[j] = xp[j] - langevin_lr * gj
                    mu[j] = mu_decay * mu[j] + (1.0 - mu_decay) * xp[j]
            d = [x[j] - mu[j] for j in range(len(x))]
        for j in range(len(x)):
            dj = with_momentum(m[j], d[j] + weight_decay * x[j], outer_momentum)
            x[j] = x[j] - learning_rate * dj
    return x


# ----- the same models in TF ------------------------------------------------------------------------

def make_data(seed=0):
    rng = np.random.RandomState(seed)
    xs = rng.randn(N_BATCHES, BATCH, DIM).astype(np.float32)
    ys = rng.randint(0, CLASSES, size=(N_BATCHES, BATCH)).astype(np.int32)
    return xs, ys


def init_params(model, seed=1):
    rng = np.random.RandomState(seed)
    if model == "linear":
        shapes = [(DIM, CLASSES), (CLASSES,)]
    else:
        shapes = [(DIM, HIDDEN), (HIDDEN,), (HIDDEN, CLASSES), (CLASSES,)]
    return [(0.5 * rng.randn(*s)).astype(np.float32) for s in shapes]


def mean_loss(model, vs, x, y):
    """The mean cross-entropy of the ``model`` ("linear" or "two_layer") with variables ``vs`` on batch (x, y)."""
    if model == "linear":
        logits = tf.matmul(x, vs[0]) + vs[1]
    else:
        logits = tf.matmul(tf.tanh(tf.matmul(x, vs[0]) + vs[1]), vs[2]) + vs[3]
    return tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))


def build_tf_model(model, params, xs, ys, skip_batches=0, towers=1):
    """Variables set to `params`, an iterator over the fixed batches (no shuffle), and loss_fn.

    With ``towers`` > 1, loss_fn returns one mean loss per equal slice of the batch, each built on its
    own CPU device (the session needs that many CPU devices), as data-parallel towers do."""
    ds = tf.data.Dataset.from_tensor_slices((xs, ys)).repeat().skip(skip_batches)
    it = tf.data.make_one_shot_iterator(ds)
    vs = [tf.get_variable("p%d" % i, initializer=tf.constant(p)) for i, p in enumerate(params)]

    def loss_fn():
        x, y = it.get_next()
        if towers == 1:
            return mean_loss(model, vs, x, y)
        losses = []
        for t, (x_t, y_t) in enumerate(zip(tf.split(x, towers), tf.split(y, towers))):
            with tf.device("/cpu:%d" % t):
                losses.append(mean_loss(model, vs, x_t, y_t))
        return losses

    return vs, loss_fn, it
