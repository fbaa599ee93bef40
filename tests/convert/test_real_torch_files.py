"""`load_torch_checkpoint` on files written by real `torch.save` (torch 2.14.1).

The files and `expected.npz` were written once by `tools/make_torch_files.py`; see
`tests/fixtures/torch_files/README.md`. PyTorch is not needed to run these tests.
"""

import os

import numpy as np
import pytest

from lps_keras.convert import PickledObject, load_torch_checkpoint

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "torch_files")


@pytest.fixture(scope="module")
def expected():
    with np.load(os.path.join(FIXTURES, "expected.npz")) as data:
        return {key: data[key] for key in data.files}


@pytest.mark.parametrize("name", ["state_zip.pt", "state_legacy.pt"])
def test_state_files_load_with_torch_values(name, expected):
    loaded = load_torch_checkpoint(os.path.join(FIXTURES, name))
    checked = 0
    for key, want in expected.items():
        group, _, tensor_name = key.partition("/")
        if group == "lightning":
            continue
        got = loaded[group][tensor_name]
        assert isinstance(got, np.ndarray) and got.flags.c_contiguous, key
        assert got.dtype == want.dtype and got.shape == want.shape, key
        np.testing.assert_array_equal(got, want, err_msg=key)
        checked += 1
    assert checked == len(loaded["state_dict"]) + len(loaded["extra"]) == 20
    assert list(loaded["state_dict"]) == [
        "0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
        "1.num_batches_tracked", "2.weight", "2.bias",
    ]
    assert loaded["state_dict"]._metadata[""] == {"version": 1}
    assert loaded["extra"]["bf16"].dtype == np.float32  # bfloat16 read as float32
    np.testing.assert_array_equal(loaded["shared"], expected["extra/base"])
    assert loaded["shared"] is loaded["extra"]["base"]  # one tensor, two references


def test_lightning_like_file(expected):
    loaded = load_torch_checkpoint(os.path.join(FIXTURES, "lightning.ckpt"))
    assert loaded["epoch"] == 2 and loaded["global_step"] == 40
    np.testing.assert_array_equal(loaded["state_dict"]["0.weight"], expected["state_dict/0.weight"])
    momentum = loaded["optimizer_states"][0]["state"][0]["momentum_buffer"]
    np.testing.assert_array_equal(momentum, expected["lightning/momentum_buffer"])
    hp = loaded["hyper_parameters"]
    assert hp["args"] == PickledObject(
        "argparse", "Namespace", state={"lr": 0.1, "arch": "resnet18", "milestones": [30, 60]}
    )
    assert hp["temperature"] == 0.5 and hp["temperature"].dtype == np.float64
    assert hp["seed"] == 3 and hp["seed"].dtype == np.int64
    assert hp["size"] == (3, 32, 32)
    assert hp["device"] == PickledObject("torch", "device", args=("cpu",))
