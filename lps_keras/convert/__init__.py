"""Converting weights of the official PyTorch models to lps_keras.

`load_torch_checkpoint` reads `torch.save` files without PyTorch and without running any
code from the file (see `lps_keras.convert.torch_checkpoint`).
"""

from lps_keras.convert.torch_checkpoint import (
    CheckpointFormatError,
    PickledGlobal,
    PickledObject,
    TorchCheckpointError,
    UnsafeCheckpointError,
    load_torch_checkpoint,
)

__all__ = [
    "CheckpointFormatError",
    "PickledGlobal",
    "PickledObject",
    "TorchCheckpointError",
    "UnsafeCheckpointError",
    "load_torch_checkpoint",
]
