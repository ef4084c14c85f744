"""Optimizers of this project: Entropy-SGD as a TF 1.x tf.train.Optimizer, and Parle's replicas of it."""
from optimizers.entropy_sgd import EntropySGD
from optimizers.parle import ParleReplica, Replica, parle_step

__all__ = ["EntropySGD", "ParleReplica", "Replica", "parle_step"]
