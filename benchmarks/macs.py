"""Multiply-accumulate (MAC) counts read off the shapes of a model's traced graph.

Tracing `model(x, training=False)` once inlines every layer, including the scorer networks
nested inside `LPSDownsampling2D`, so one walk over the graph's conv and matmul ops sees all
the arithmetic. Elementwise work (BN, ReLU, norms, the APS selection, max-pooling, the
zero-filling of `PolyphaseUpsampling2D`, bilinear resizing) is not counted: MACs measure
the convolutions (transposed ones included) and dense layers, the part the polyphase
layers make bigger.
"""

import numpy as np
import tensorflow as tf


def _dims(tensor):
    shape = tensor.shape
    if shape.rank is None or any(d is None for d in shape):
        raise ValueError(
            f"Op input {tensor.name} has an unknown shape {shape}; give `count_macs` a fully "
            "defined input shape."
        )
    return [int(d) for d in shape]


def _conv_macs(op):
    out = _dims(op.outputs[0])
    kernel = _dims(op.inputs[1])  # [kh, kw, cin/groups, cout]
    return int(np.prod(out)) * kernel[0] * kernel[1] * kernel[2]


def _conv_transpose_macs(op):
    # Conv2DBackpropInput(input_sizes, filter, out_backprop): every pixel of the transposed
    # conv's input (`out_backprop`) is multiplied by a whole [kh, kw, cout] kernel slice.
    kernel = _dims(op.inputs[1])  # [kh, kw, cout, cin]
    return int(np.prod(_dims(op.inputs[2]))) * kernel[0] * kernel[1] * kernel[2]


def _depthwise_macs(op):
    out = _dims(op.outputs[0])
    kernel = _dims(op.inputs[1])  # [kh, kw, cin, multiplier]
    return int(np.prod(out)) * kernel[0] * kernel[1]


def _matmul_macs(op):
    a = _dims(op.inputs[0])
    out = _dims(op.outputs[0])
    transpose_a = op.get_attr("transpose_a") if op.type == "MatMul" else op.get_attr("adj_x")
    inner = a[-2] if transpose_a else a[-1]
    return int(np.prod(out)) * inner


def _einsum_macs(op):
    # out elements x size of every contracted index (letters absent from the output).
    equation = op.get_attr("equation").decode()
    inputs, output = equation.split("->")
    sizes = {}
    for spec, tensor in zip(inputs.split(","), op.inputs, strict=True):
        for letter, size in zip(spec, _dims(tensor), strict=True):
            sizes[letter] = size
    contracted = [sizes[c] for c in set(inputs.replace(",", "")) - set(output)]
    return int(np.prod(_dims(op.outputs[0]))) * int(np.prod(contracted or [1]))


_COUNTERS = {
    "Conv2D": _conv_macs,
    "Conv2DBackpropInput": _conv_transpose_macs,  # Conv2DTranspose
    "DepthwiseConv2dNative": _depthwise_macs,
    "MatMul": _matmul_macs,
    "BatchMatMulV2": _matmul_macs,
    "BatchMatMulV3": _matmul_macs,
    "Einsum": _einsum_macs,
}


def count_macs(model, input_shape, batch_size=1, training=False):
    """MACs of one forward pass of `model` on a batch of `batch_size` inputs.

    Args:
        model: a Keras model (or any callable taking `(x, training=...)`).
        input_shape: `(H, W, C)` of one input.
        batch_size: images per pass; the default gives MACs per image.
        training: count the training-mode forward pass (LPS relaxes its selection but runs
            the same convolutions).

    Returns:
        `(total, per_op_type)`: the total and a dict from op type to its MACs.
    """
    spec = tf.TensorSpec((batch_size, *input_shape), tf.float32)
    graph = tf.function(lambda x: model(x, training=training)).get_concrete_function(spec).graph
    per_type = {}
    _walk(graph, per_type)
    return sum(per_type.values()), per_type


def _walk(graph, per_type):
    for op in graph.get_operations():
        if op.type in ("PartitionedCall", "StatefulPartitionedCall"):
            # Keras runs some ops (grouped convs) as nested functions: count inside them.
            _walk(graph._get_function(op.get_attr("f").name).graph, per_type)
            continue
        counter = _COUNTERS.get(op.type)
        if counter is not None:
            per_type[op.type] = per_type.get(op.type, 0) + counter(op)
