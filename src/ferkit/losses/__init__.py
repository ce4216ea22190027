"""Loss functions: pure, explicit inputs, explicit reductions."""

from ferkit.losses.class_balanced import (
    check_class_counts,
    class_weights,
    focal_loss,
    sigmoid_class_balanced_loss,
    weighted_cross_entropy,
)
from ferkit.losses.consistency import attention_consistency, flip_x
from ferkit.losses.soft_targets import rebalanced_smooth_targets, soft_cross_entropy

__all__ = [
    "attention_consistency", "check_class_counts", "class_weights", "flip_x", "focal_loss",
    "rebalanced_smooth_targets", "sigmoid_class_balanced_loss", "soft_cross_entropy",
    "weighted_cross_entropy",
]
