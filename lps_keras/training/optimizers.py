"""SGD exactly as PyTorch's `torch.optim.SGD` computes it, for recipes ported from PyTorch.

Keras' `SGD(weight_decay=wd)` decays decoupled from the gradient (`w -= lr * wd * w`,
outside the momentum), and keeps its momentum as `m = mu * m - lr * g`, with the learning
rate folded in at each step. PyTorch's `SGD(weight_decay=wd)`, which the papers' training
code uses, adds an L2 term to the gradient before the momentum (`g += wd * w`; with
momentum 0.9 the effective decay is about 10x stronger than the decoupled one) and keeps
its buffer free of the learning rate (`b = mu * b + g`, `w -= lr * b`), so a drop of the
learning rate applies at once to the whole buffer. `PyTorchSGD` does both; the update is
step for step the one of `torch.optim.SGD(lr, momentum, weight_decay=wd,
nesterov=nesterov)` with dampening 0.
"""

import keras
from keras import ops

from lps_keras.checks import check_non_negative_number


@keras.saving.register_keras_serializable(package="lps_keras")
class PyTorchSGD(keras.optimizers.Optimizer):
    """SGD with momentum and coupled (L2) weight decay, as `torch.optim.SGD`.

    For every variable `w` with gradient `g` (dampening 0):

        g = g + weight_decay * w          (unless w is excluded from weight decay)
        b = momentum * b + g               (b starts at 0, so the first b is g)
        w = w - lr * (g + momentum * b)    if nesterov
        w = w - lr * b                     otherwise

    Exclusions (`exclude_from_weight_decay`, e.g. the LPS scorers through
    `lps_keras.training.exclude_from_weight_decay`) apply to the L2 term.

    Args:
        learning_rate: a float or a `keras.optimizers.schedules.LearningRateSchedule`.
        momentum: float >= 0.
        nesterov: Nesterov momentum (needs momentum > 0).
        weight_decay: the L2 coefficient added to the gradient (PyTorch's
            `weight_decay`), float >= 0. Keras' decoupled decay is not used.
        name, **kwargs: as for `keras.optimizers.Optimizer` (e.g. `clipnorm`).

    Example:

    >>> optimizer = PyTorchSGD(0.1, momentum=0.9, weight_decay=5e-4)
    >>> optimizer.get_config()["weight_decay"]
    0.0005
    """

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=0.0,
                 name="pytorch_sgd", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, weight_decay=None, **kwargs)
        self.momentum = check_non_negative_number("momentum", momentum)
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("`nesterov=True` needs `momentum` > 0 (as in PyTorch).")
        self.l2 = check_non_negative_number("weight_decay", weight_decay)

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.buffers = (self.add_optimizer_variables(variables, "momentum_buffer")
                        if self.momentum else [])

    def update_step(self, gradient, variable, learning_rate):
        learning_rate = ops.cast(learning_rate, variable.dtype)
        gradient = ops.cast(gradient, variable.dtype)
        if self.l2 and self._use_weight_decay(variable):
            gradient = ops.add(gradient, ops.multiply(ops.cast(self.l2, variable.dtype),
                                                      variable))
        if not self.momentum:
            self.assign_sub(variable, ops.multiply(learning_rate, gradient))
            return
        momentum = ops.cast(self.momentum, variable.dtype)
        buffer = self.buffers[self._get_variable_index(variable)]
        self.assign(buffer, ops.add(ops.multiply(momentum, buffer), gradient))
        step = ops.add(gradient, ops.multiply(momentum, buffer)) if self.nesterov else buffer
        self.assign_sub(variable, ops.multiply(learning_rate, step))

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov,
                       "weight_decay": self.l2})
        return config
