"""Writes the real torch.save files in tests/fixtures/torch_files/ and their expected values.

Run once with a Python that has PyTorch (the library itself never needs it):

    python tools/make_torch_files.py tests/fixtures/torch_files

It writes, with torch.manual_seed(0):
  state_zip.pt      torch.save(obj) in the zip format (torch >= 1.6 default)
  state_legacy.pt   torch.save(obj, _use_new_zipfile_serialization=False)
  lightning.ckpt    a Lightning-like dict: state_dict, epoch, optimizer state, and
                    hyper_parameters holding an argparse.Namespace, NumPy scalars,
                    torch.Size and torch.device
  expected.npz      every tensor of the three files as NumPy arrays ("<file>/<key>";
                    bfloat16 as float32), written with numpy.savez
"""

import argparse
import collections
import os
import sys

import numpy as np
import torch


def tensors():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3, bias=True), torch.nn.BatchNorm2d(2), torch.nn.Linear(4, 3)
    )
    model[1].running_mean.uniform_()
    model[1].num_batches_tracked += 5
    state = model.state_dict()
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    extra = collections.OrderedDict()
    extra["f16"] = torch.randn(2, 3).half()
    extra["bf16"] = torch.randn(5).bfloat16()
    extra["f64"] = torch.randn(3, dtype=torch.float64)
    extra["i32"] = torch.tensor([1, -2, 3], dtype=torch.int32)
    extra["u8"] = torch.tensor([0, 255], dtype=torch.uint8)
    extra["bool"] = torch.tensor([[True, False], [False, True]])
    extra["base"] = base
    extra["transposed"] = base.t()  # non-contiguous view of base's storage
    extra["window"] = base[1:, 2::2]  # storage offset and a step
    extra["scalar"] = torch.tensor(3.5)
    extra["param"] = torch.nn.Parameter(torch.randn(2, 2))
    return state, extra


def expected_arrays(prefix, obj, out):
    for key, value in obj.items():
        if isinstance(value, torch.Tensor):
            value = value.detach()
            if value.dtype == torch.bfloat16:
                value = value.float()
            out[f"{prefix}/{key}"] = value.numpy().copy()


def main(folder):
    os.makedirs(folder, exist_ok=True)
    state, extra = tensors()
    obj = {"state_dict": state, "extra": extra, "shared": extra["base"]}
    torch.save(obj, os.path.join(folder, "state_zip.pt"))
    torch.save(obj, os.path.join(folder, "state_legacy.pt"), _use_new_zipfile_serialization=False)
    out = {}
    expected_arrays("state_dict", state, out)
    expected_arrays("extra", extra, out)

    optimizer = torch.optim.SGD([extra["param"]], lr=0.1, momentum=0.9)
    extra["param"].sum().backward()
    optimizer.step()
    lightning = {
        "epoch": 2,
        "global_step": 40,
        "pytorch-lightning_version": "2.0.0",
        "state_dict": state,
        "optimizer_states": [optimizer.state_dict()],
        "hparams_name": "kwargs",
        "hyper_parameters": {
            "args": argparse.Namespace(lr=0.1, arch="resnet18", milestones=[30, 60]),
            "temperature": np.float64(0.5),
            "seed": np.int64(3),
            "size": torch.Size([3, 32, 32]),
            "device": torch.device("cpu"),
        },
    }
    torch.save(lightning, os.path.join(folder, "lightning.ckpt"))

    momentum = optimizer.state_dict()["state"][0]["momentum_buffer"]
    out["lightning/momentum_buffer"] = momentum.numpy().copy()
    np.savez(os.path.join(folder, "expected.npz"), **out)
    print("torch", torch.__version__, "numpy", np.__version__)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/torch_files")
