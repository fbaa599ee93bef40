"""Tensor conventions between PyTorch state_dicts and Keras weights, and strict assignment.

* Conv kernels: PyTorch `(out, in, kh, kw)` -> Keras `(kh, kw, in, out)`.
* Linear weights: PyTorch `(out, in)` -> Keras Dense kernel `(in, out)`.
* BatchNorm: `weight, bias, running_mean, running_var` -> `gamma, beta, moving_mean,
  moving_variance`; `num_batches_tracked` has no Keras counterpart and is only needed by a
  PyTorch BN with `momentum=None` (cumulative average), which the papers' models do not use.
* Phase orders (only for tensors indexed by polyphase component, e.g. `indices`, `probs`,
  `logits` of the layer fixtures; no *weight* is indexed by phase): ours and the LPS repo's
  `pixel_unshuffle` order index = 2 * row + col; the APS repo orders (0,0), (1,0), (0,1),
  (1,1) (index 1 = row offset), so indices 1 and 2 swap (`APS_TO_OURS`).

`StateDictConsumer` hands out tensors by name and remembers which were used, so a converter
can refuse a checkpoint that has tensors it did not place; `assign_weights` refuses Keras
weights that got nothing.
"""

import math
import re

import numpy as np

__all__ = [
    "APS_TO_OURS",
    "BN_NAMES",
    "ConversionError",
    "StateDictConsumer",
    "assign_weights",
    "binomial_filter",
    "conv_kernel",
    "ddac_weight",
    "dense_kernel",
    "lps_down_weight",
]

# Index i of ours is index APS_TO_OURS[i] of the APS repo (the permutation is its own inverse).
APS_TO_OURS = (0, 2, 1, 3)

BN_NAMES = {
    "weight": "gamma",
    "bias": "beta",
    "running_mean": "moving_mean",
    "running_var": "moving_variance",
}


class ConversionError(ValueError):
    """A checkpoint does not map one-to-one onto the Keras model."""


def conv_kernel(weight):
    """PyTorch conv weight `(out, in, kh, kw)` -> Keras kernel `(kh, kw, in, out)`."""
    weight = np.asarray(weight)
    if weight.ndim != 4:
        raise ConversionError(f"A conv weight must be 4-D (out, in, kh, kw); got {weight.shape}.")
    return np.ascontiguousarray(weight.transpose(2, 3, 1, 0))


def dense_kernel(weight):
    """PyTorch Linear weight `(out, in)` -> Keras Dense kernel `(in, out)`."""
    weight = np.asarray(weight)
    if weight.ndim != 2:
        raise ConversionError(f"A linear weight must be 2-D (out, in); got {weight.shape}.")
    return np.ascontiguousarray(weight.T)


# Official LPS scorer class -> (our logits_model, official sub-module -> our scorer layer).
# Only the scorers whose structure ours reproduces with `scorer_head="official"`.
OFFICIAL_SCORER_LAYERS = {
    "LPSLogitLayers": ("conv", {"conv1": "conv1", "conv2": "conv2"}),
    "LPSLogitLayersV2": ("conv", {"conv1": "conv1", "conv2": "conv2"}),
    "LPSLogitLayersSkip": ("conv_skip", {"conv1": "conv1", "conv2": "conv2"}),
    "ComponentPerceptron": ("perceptron", {"perceptron": "conv1"}),
}


def lps_down_weight(logits_model, name, array):
    """One tensor of the official `PolyphaseInvariantDown2D(component_selection=LPS)` ->
    `(weight path inside our LPSDownsampling2D, Keras array)`.

    `name` is the official state_dict name relative to the pooling module:
    `component_selection.gumbel_tau` -> `"tau"`;
    `component_selection.get_logits.<module>.weight|bias` -> `"logits_model/<layer>/kernel|
    bias"` (conv kernels OIHW -> HWIO) for `logits_model` in `conv`, `conv_skip`,
    `perceptron` built with `scorer_head="official"` (the official `ComponentPerceptron`'s
    `perceptron` conv is our `conv1`); `_antialias_layer.filt` (the fixed binomial blur)
    -> `(None, array)`: no weight, the caller checks it against `binomial_filter`.
    Other names, and the official `SAInner`/`SAInner_bn`/`GraphLogitLayers` tensors (their
    structure differs from our scorers), raise `ConversionError`.
    """
    array = np.asarray(array)
    if name == "component_selection.gumbel_tau":
        return "tau", array
    if re.fullmatch(r"(_antialias_layer|antialias_layer)\.filt", name):
        return None, array
    m = re.fullmatch(r"component_selection\.get_logits\.(\w+)\.(weight|bias)", name)
    layers = next((v[1] for v in OFFICIAL_SCORER_LAYERS.values() if v[0] == logits_model),
                  None)
    if m is None or layers is None or m.group(1) not in layers:
        raise ConversionError(
            f"Official LPS tensor {name!r} has no place in LPSDownsampling2D("
            f"logits_model={logits_model!r}, scorer_head='official'); convertible scorers: "
            f"{sorted(OFFICIAL_SCORER_LAYERS)}.")
    layer = layers[m.group(1)]
    if m.group(2) == "weight":
        return f"logits_model/{layer}/kernel", conv_kernel(array)
    return f"logits_model/{layer}/bias", array


def ddac_weight(name, array):
    """One tensor of the official `DDAC` (`layers.lowpass_filter`) -> `(weight path inside
    our DDAC2D, Keras array)`: `conv.weight` -> `kernel_predictor/kernel` (OIHW -> HWIO;
    the `group * k * k` output channels keep their group-major order), `bn.<leaf>` ->
    `kernel_norm/<gamma|beta|moving_mean|moving_variance>`; `bn.num_batches_tracked` ->
    `(None, array)` (no Keras counterpart, see the module docstring). Build the layer as
    `DDAC2D(k, groups, softmax="joint", epsilon=1e-5, momentum=0.9)`."""
    array = np.asarray(array)
    if name == "conv.weight":
        return "kernel_predictor/kernel", conv_kernel(array)
    if name == "bn.num_batches_tracked":
        return None, array
    m = re.fullmatch(r"bn\.(\w+)", name)
    if m is None or m.group(1) not in BN_NAMES:
        raise ConversionError(f"Official DDAC tensor {name!r} has no place in DDAC2D.")
    return f"kernel_norm/{BN_NAMES[m.group(1)]}", array


def binomial_filter(size):
    """The normalised `size` x `size` binomial blur of the APS/BlurPool/LPS code."""
    row = np.array([math.comb(size - 1, k) for k in range(size)], dtype=np.float64)
    kernel = np.outer(row, row)
    return kernel / kernel.sum()


class StateDictConsumer:
    """A state_dict whose tensors are taken by name; `unused()` lists what was not taken."""

    def __init__(self, state_dict):
        self.tensors = {str(k): v for k, v in state_dict.items()}
        self.used = {}  # name -> why (a Keras weight path or a documented reason)

    def take(self, name, why):
        if name not in self.tensors:
            raise ConversionError(f"The checkpoint has no tensor {name!r} (needed for {why}).")
        if name in self.used:
            raise ConversionError(f"Tensor {name!r} used twice ({self.used[name]}, {why}).")
        self.used[name] = why
        return np.asarray(self.tensors[name])

    def unused(self):
        return [k for k in self.tensors if k not in self.used]

    def check_all_used(self):
        unused = self.unused()
        if unused:
            raise ConversionError(
                f"{len(unused)} checkpoint tensor(s) have no place in the Keras model: "
                f"{unused}. Nothing was silently dropped; check the architecture settings "
                "(overrides) or report the checkpoint layout.")


def assign_weights(model, values, allow_missing=False):
    """Sets `model`'s weights from `values` (Keras weight path -> array), strictly.

    Every entry of `values` must match a weight of the same shape, and (unless
    `allow_missing`) every weight of the model must get a value. Returns the list of
    weight paths left at their initial values.
    """
    values = dict(values)
    missing, shape_errors = [], []
    for weight in model.weights:
        if weight.path not in values:
            missing.append(weight.path)
            continue
        value = np.asarray(values.pop(weight.path))
        if tuple(value.shape) != tuple(weight.shape):
            shape_errors.append(f"{weight.path}: model {tuple(weight.shape)}, checkpoint "
                                f"{tuple(value.shape)}")
            continue
        weight.assign(value.astype(weight.dtype))
    problems = []
    if shape_errors:
        problems.append(f"shape mismatches: {shape_errors}")
    if values:
        problems.append(f"converted tensors for weights the model does not have: "
                        f"{sorted(values)}")
    if missing and not allow_missing:
        problems.append(f"model weights with no checkpoint tensor: {missing}")
    if problems:
        raise ConversionError("The checkpoint does not match the Keras model: "
                              + "; ".join(problems) + ".")
    return missing
