r"""A/B: the working tree's layers and models against those of an earlier git revision.

    python -m benchmarks.ab --baseline=c48e256
    python -m benchmarks.ab --baseline=HEAD~3 --layers=aps --models= --compilers=xla

The baseline revision's `lps_keras/` is extracted with `git archive` into a temporary
directory and imported under the name `lps_keras_baseline`, so both versions live in one
process. Each case (a layer or a model, a compiler, a pass) is timed for both versions in
interleaved rounds, and the reported number is the ratio current / baseline of the median
times: load from other processes hits both alike. A ratio of 1.00 means no cost.
"""

import importlib
import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_string("baseline", None, "Git revision to compare the working tree against.")
flags.DEFINE_list("layers", ["aps", "lps_conv_16", "lps_conv_full", "lps_perceptron"],
                  "Layer cases (names of benchmarks/layer_cases.py that build one layer).")
flags.DEFINE_list("models", ["resnet18_cifar"], "Model cases (resnet18_cifar, resnet20_cifar).")
flags.DEFINE_list("modes", ["strided", "aps", "lps"], "Downsampling modes of the models.")
flags.DEFINE_list("compilers", ["graph", "xla"], "graph and/or xla.")
flags.DEFINE_integer("warmup", 2, "Untimed calls per case (>= 1).")
flags.DEFINE_integer("repeats", 7, "Timed calls per case; the median is used.")
flags.DEFINE_string("output", "benchmarks/results/ab_latest.json", "Where to write the JSON.")
flags.mark_flag_as_required("baseline")

BASELINE_PACKAGE = "lps_keras_baseline"
LAYER_SHAPES = ((64, 32, 32, 64), (16, 56, 56, 256))
# name -> layer factory taking the `layers` module of either version.
LAYERS = {
    "aps": lambda L: L.APSDownsampling2D(2),
    "aps_lowpass3": lambda L: L.APSDownsampling2D(2, antialias="lowpass3"),
    "lps_conv_16": lambda L: L.LPSDownsampling2D(2, "conv", hidden_channels=16, seed=0),
    "lps_conv_full": lambda L: L.LPSDownsampling2D(2, "conv", seed=0),
    "lps_perceptron": lambda L: L.LPSDownsampling2D(2, "perceptron", seed=0),
    "lps_attention_16": lambda L: L.LPSDownsampling2D(2, "attention", hidden_channels=16,
                                                      seed=0),
}
# name -> (builder taking the `models` module and a mode, input size, batch).
MODELS = {
    "resnet18_cifar": (lambda M, mode: M.resnet(18, num_classes=10, input_shape=(32, 32, 3),
                                                stem="cifar", downsampling=mode), 32, 32),
    "resnet20_cifar": (lambda M, mode: M.resnet(20, num_classes=10, input_shape=(32, 32, 3),
                                                stem="cifar", downsampling=mode), 32, 64),
}


def extract_baseline(revision, directory):
    """Writes the revision's `lps_keras/` to `directory/lps_keras_baseline/`, imports renamed."""
    try:
        archive = subprocess.run(["git", "archive", "--format=tar", revision, "lps_keras"],
                                 capture_output=True, check=True).stdout
    except subprocess.CalledProcessError as e:
        raise app.UsageError(f"--baseline={revision}: git archive failed: "
                             f"{e.stderr.decode().strip()}") from None
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(directory, filter="data")
    root = os.path.join(directory, BASELINE_PACKAGE)
    os.rename(os.path.join(directory, "lps_keras"), root)
    for folder, _, files in os.walk(root):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                with open(path) as f:
                    text = f.read()
                # Imports and the Keras registration package: both versions register apart.
                with open(path, "w") as f:
                    f.write(re.sub(r"\blps_keras\b", BASELINE_PACKAGE, text))
    sys.path.insert(0, directory)
    return importlib.import_module(BASELINE_PACKAGE)


def _cases(versions, compilers, rng):
    """`{(case, compiler, pass, version): (fn, args)}` for every layer and model case."""
    import numpy as np
    import tensorflow as tf

    from benchmarks import layer_cases, model_cases

    cases = {}
    for shape in LAYER_SHAPES:
        x = tf.constant(rng.standard_normal(shape, dtype=np.float32))
        shape_name = "x".join(map(str, shape))
        for name in FLAGS.layers:
            for compiler in compilers:
                for version, package in versions.items():
                    layer = LAYERS[name](package.layers)
                    infer, fwd_bwd = layer_cases._functions(layer, False, compiler == "xla")
                    out = layer(x, training=True)
                    upstream = tf.constant(rng.standard_normal(out.shape, dtype=np.float32))
                    key = (f"{name} {shape_name}", compiler)
                    cases[key + ("inference", version)] = (infer, (x, None))
                    cases[key + ("forward_backward", version)] = (fwd_bwd, (x, None, upstream))
    for name in FLAGS.models:
        build, size, batch = MODELS[name]
        data = model_cases._batch((size, size, 3), (10,), batch, "classification", rng)
        for mode in FLAGS.modes:
            for compiler in compilers:
                for version, package in versions.items():
                    infer, train = model_cases._functions(build(package.models, mode),
                                                          compiler == "xla", "classification")
                    key = (f"{name} {mode}", compiler)
                    cases[key + ("inference", version)] = (infer, data)
                    cases[key + ("train_step", version)] = (train, data)
    return cases


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    unknown = [n for n in FLAGS.layers if n not in LAYERS] + \
        [n for n in FLAGS.models if n not in MODELS]
    if unknown:
        raise app.UsageError(f"Unknown cases {unknown}; layers: {sorted(LAYERS)}, models: "
                             f"{sorted(MODELS)}.")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np

    import lps_keras
    from benchmarks.timing import interleaved_median_seconds, machine_info

    with tempfile.TemporaryDirectory() as tmp:
        baseline = extract_baseline(FLAGS.baseline, tmp)
        versions = {"baseline": baseline, "current": lps_keras}
        rng = np.random.default_rng(0)
        cases = _cases(versions, FLAGS.compilers, rng)
        # One case (layer or model, compiler, pass) at a time, both versions interleaved.
        groups = sorted({key[:3] for key in cases}, key=str)
        records = []
        for group in groups:
            pair = {key: cases[key] for key in cases if key[:3] == group}
            seconds, errors = interleaved_median_seconds(pair, FLAGS.warmup, FLAGS.repeats)
            record = {"case": group[0], "compiler": group[1], "pass": group[2]}
            for version in versions:
                key = group + (version,)
                if key in seconds:
                    record[f"{version}_ms"] = seconds[key] * 1e3
                else:
                    record[f"{version}_error"] = str(errors.get(key))
            if "current_ms" in record and "baseline_ms" in record:
                record["ratio"] = record["current_ms"] / record["baseline_ms"]
            records.append(record)
            ratio = f"{record['ratio']:.3f}" if "ratio" in record else "error"
            print(f"{group[0]:<36} {group[1]:<5} {group[2]:<17} "
                  f"{record.get('baseline_ms', float('nan')):9.2f} ms -> "
                  f"{record.get('current_ms', float('nan')):9.2f} ms  ratio {ratio}",
                  flush=True)
    ratios = [r["ratio"] for r in records if "ratio" in r]
    if ratios:
        print(f"Geometric mean ratio over {len(ratios)} cases: "
              f"{float(np.exp(np.mean(np.log(ratios)))):.3f}")
    result = {"machine": machine_info(), "baseline": FLAGS.baseline,
              "settings": {"warmup": FLAGS.warmup, "repeats": FLAGS.repeats,
                           "statistic": "median ms per call; ratio current / baseline"},
              "records": records}
    os.makedirs(os.path.dirname(os.path.abspath(FLAGS.output)), exist_ok=True)
    with open(FLAGS.output, "w") as f:
        json.dump(result, f, indent=2)
    print(f"Wrote {FLAGS.output}")


if __name__ == "__main__":
    app.run(main)
