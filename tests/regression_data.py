"""Small regression data for the reconstruction tests: the first examples of the built-in
`synthetic_mri` test split (64x64x1 phantoms; zero-filled inputs), as `eval.py` reads
them."""

from lps_keras.evaluation import load_arrays

NAME = "synthetic_mri"
SIDE = 64


def arrays(split="test", num_examples=12):
    """`(inputs, targets)` float32 `[N, 64, 64, 1]` of `synthetic_mri`."""
    return load_arrays(NAME, split, num_examples=num_examples)
