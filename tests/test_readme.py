"""The README's Python examples run as written, and the quick-start model keeps its promise
(bitwise-equal logits for circularly shifted inputs)."""

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def test_readme_has_the_examples():
    assert len(_python_blocks()) >= 2


def test_every_python_block_runs():
    namespace = {}
    for block in _python_blocks():
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102
    model = namespace["model"]  # the quick start's model
    assert model.output_shape == (None, 10)
    assert namespace["seg"].output_shape == (None, 512, 512, 21)
    x = np.random.default_rng(0).random((4, 32, 32, 3)).astype("float32")
    logits = np.asarray(model(x, training=False))
    for shift in [(1, 0), (0, 3), (5, -7), (16, 16)]:
        shifted = np.asarray(model(np.roll(x, shift, (1, 2)), training=False))
        assert np.array_equal(shifted, logits), shift


def test_the_readme_unet_is_exactly_equivariant():
    namespace = {}
    blocks = [b for b in _python_blocks() if "unet(" in b]
    assert blocks, "the README shows the U-Net"
    exec(compile(blocks[0], str(README), "exec"), namespace)  # noqa: S102
    net = namespace["net"]
    x = np.random.default_rng(1).random((2, 32, 32, 1)).astype("float32")
    y = np.asarray(net(x, training=False))
    assert y.shape == (2, 32, 32, 1)
    for shift in [(1, 0), (5, -7), (16, 16)]:
        assert np.array_equal(np.asarray(net(np.roll(x, shift, (1, 2)), training=False)),
                              np.roll(y, shift, (1, 2))), shift
