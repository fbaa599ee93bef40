#!/usr/bin/env python
"""Reference PSNR/SSIM values from scikit-image for `lps_keras.evaluation.reconstruction`.

NOT part of the lps_keras package (which must not depend on scikit-image) and never run
by CI. It runs in a scratch environment with scikit-image, e.g.:

    /work/torchenv/bin/pip install scikit-image      # PyPI: scikit-image 0.26.0, scipy 1.17.1
    /work/torchenv/bin/python tools/make_reconstruction_fixtures.py \
        --out tests/fixtures/reconstruction/skimage_reference.json

For a handful of seeded image pairs (float64 arrays, stored in the JSON so the test does
not depend on NumPy's generators) it records, per 2-D image:

- `psnr`: `peak_signal_noise_ratio(gt, pred, data_range=maxval)`;
- `ssim`: `structural_similarity(gt, pred, data_range=maxval)` with scikit-image's
  defaults (7x7 uniform window, K1 = 0.01, K2 = 0.03, `use_sample_covariance=True`),

with `maxval = gt.max()` (fastMRI's `data_range`) and, for some cases, a given maxval.
Inputs are float64, so scikit-image computes in float64 too.
"""

import argparse
import json
import os

import numpy as np
import skimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity


def _cases():
    rng = np.random.default_rng(20210715)
    cases = []
    for index, (h, w, noise, maxval) in enumerate([
            (16, 16, 0.1, None), (12, 20, 0.5, None), (7, 9, 0.05, None),
            (24, 17, 1.0, 8.0), (9, 9, 0.0, None), (10, 13, 0.3, 12.0)]):
        # MRI-like: instance-normalised, clamped to [-6, 6].
        gt = np.clip(rng.normal(size=(h, w)) + np.linspace(0, 2, w)[None, :], -6, 6)
        pred = gt + noise * rng.normal(size=(h, w))
        if index == 4:
            pred = gt * 0.9 + 0.05  # a smooth, noise-free error
        gt = np.round(gt, 6)
        pred = np.round(pred, 6)
        cases.append((gt, pred, maxval))
    return cases


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="tests/fixtures/reconstruction/skimage_reference.json")
    args = parser.parse_args()
    out = []
    for gt, pred, maxval in _cases():
        data_range = float(gt.max()) if maxval is None else maxval
        out.append({
            "gt": gt.tolist(), "pred": pred.tolist(), "maxval": maxval,
            "psnr": float(peak_signal_noise_ratio(gt, pred, data_range=data_range)),
            "ssim": float(structural_similarity(gt, pred, data_range=data_range)),
        })
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"generator": "tools/make_reconstruction_fixtures.py",
                   "scikit_image": skimage.__version__, "numpy": np.__version__,
                   "cases": out}, f)
        f.write("\n")
    print(f"Wrote {len(out)} cases to {args.out}")


if __name__ == "__main__":
    main()
