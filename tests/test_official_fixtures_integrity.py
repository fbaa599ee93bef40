"""The reference fixtures of tests/fixtures/official (made from the official PyTorch code by
tools/make_official_fixtures.py) are complete, small, and follow the conventions their README
states. numpy only: no conversion code and no PyTorch here."""

import json
import lzma
import zipfile
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest

DIR = Path(__file__).resolve().parent / "fixtures" / "official"
NPZ = sorted(DIR.glob("*.npz"))
APS_ORDER = [(0, 0), (1, 0), (0, 1), (1, 1)]  # (row, col) offset of phase k in the APS repo
LPS_ORDER = [(0, 0), (0, 1), (1, 0), (1, 1)]  # ... and in the LPS repo (pixel_unshuffle)


def _load(path):
    z = np.load(path)
    return z, json.loads(str(z["meta"]))


def _phases(x, order):
    return np.stack([x[:, :, r::2, c::2] for r, c in order], axis=-1)


def test_directory_is_small_and_indexed():
    total = sum(p.stat().st_size for p in DIR.iterdir())
    assert total <= 12 * 1000 * 1000  # 12 MB
    index = json.loads((DIR / "index.json").read_text())
    listed = {f["file"] for f in index["fixtures"]}
    assert listed == {p.name for p in NPZ}
    readme = (DIR / "README.md").read_text()
    for p in NPZ:
        assert p.name in readme


@pytest.mark.parametrize("path", NPZ, ids=lambda p: p.stem)
def test_meta_and_dtypes(path):
    z, meta = _load(path)
    assert meta["official_class"]
    if "torchvision" not in path.name:
        assert len(meta["official_commit"]) == 40
    for k in z.files:
        if z[k].dtype.kind == "f" and k.split("/")[-2:-1] != ["sum"] and "sum" not in k \
                and not k.endswith("_float64"):
            assert z[k].dtype == np.float32, k


@pytest.mark.parametrize("path", sorted(DIR.glob("aps_pool_*_f1*.npz")), ids=lambda p: p.stem)
def test_aps_phase_order(path):
    z, _ = _load(path)
    x, y, idx = z["input"], z["output"], z["indices"]
    if x.shape[2] % 2 or x.shape[3] % 2:  # aps_pad: one circular row / column
        x = np.concatenate([x, x[:, :, :1]], 2) if x.shape[2] % 2 else x
        x = np.concatenate([x, x[:, :, :, :1]], 3) if x.shape[3] % 2 else x
    ph = _phases(x, APS_ORDER)
    np.testing.assert_array_equal(y, ph[np.arange(len(idx)), ..., idx])


@pytest.mark.parametrize("name", ["LPSLogitLayers", "LPSLogitLayersSkip", "SAInner", "SAInner_bn",
                                  "GraphLogitLayers", "ComponentPerceptron"])
def test_lps_down_phase_order_and_softmax(name):
    z, meta = _load(DIR / f"lps_down_{name}_eval.npz")
    ph = _phases(z["input"], LPS_ORDER)
    idx = z["logits"].argmax(-1)
    np.testing.assert_array_equal(z["indices"], idx)
    np.testing.assert_array_equal(z["output"], ph[np.arange(len(idx)), ..., idx])
    z, meta = _load(DIR / f"lps_down_{name}_train_softmax.npz")
    logits = z["logits"].astype(np.float64) / meta["tau"]
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    np.testing.assert_allclose(z["probs"], probs, rtol=1e-5, atol=1e-6)
    out = (_phases(z["input"], LPS_ORDER) * z["probs"][:, None, None, None, :]).sum(-1)
    np.testing.assert_allclose(z["output"], out, rtol=1e-5, atol=1e-5)


def test_lps_up_is_the_inverse_selection():
    z, _ = _load(DIR / "lps_up_eval.npz")
    idx = z["logits"].argmax(-1)
    y = z["output"]
    for b, k in enumerate(idx):
        r, c = LPS_ORDER[k]
        np.testing.assert_array_equal(y[b, :, r::2, c::2], z["input"][b])
        assert np.count_nonzero(y[b]) == np.count_nonzero(z["input"][b])


@pytest.mark.parametrize("path", sorted(DIR.glob("*.xz")), ids=lambda p: p.name)
def test_checkpoints_decompress_to_torch_zip_files(path):
    with lzma.open(path) as f:
        data = f.read()
    with zipfile.ZipFile(BytesIO(data)) as zf:
        names = zf.namelist()
    assert any(n.endswith("data.pkl") for n in names)
    keys = path.name.split(".")[0] + ".keys.txt"
    assert (DIR / keys).exists()


def test_lps_network_is_shift_invariant_and_returns_log_softmax():
    z, meta = _load(DIR / "lps_resnet18_cifar10_circular_eval.npz")
    np.testing.assert_array_equal(z["output"], z["output_shifted"])
    np.testing.assert_allclose(np.exp(z["output"]).sum(1), 1.0, rtol=1e-5)
    assert meta["logits_std_over_classes"] > 0.3
