"""Optimizers of this project: Entropy-SGD as a TF 1.x tf.train.Optimizer."""
from optimizers.entropy_sgd import EntropySGD

__all__ = ["EntropySGD"]
