r"""Runs the lps_keras benchmarks: prints tables and target checks, writes JSON.

    python -m benchmarks.run                          # everything (about N minutes here)
    python -m benchmarks.run --suite=layers           # layer cases only
    python -m benchmarks.run --models=resnet18_cifar --compilers=xla
    python -m benchmarks.run --suite=models --models=unet4  # the U-Nets (not in the default)
    python -m benchmarks.run --tiny                   # seconds: checks the command works

Every time is the median of `--repeats` calls after `--warmup` calls; every ratio compares
two cases measured in the same run. Nothing else should be running on the machine.
"""

import json
import os
import sys
import time

from absl import app, flags

from benchmarks.timing import machine_info

_SUITES = ("all", "layers", "models")
FLAGS = flags.FLAGS
flags.DEFINE_enum("suite", "all", _SUITES, "Which cases to run.")
flags.DEFINE_list("layers", None, "Layer cases (default: all). See benchmarks/layer_cases.py.")
flags.DEFINE_list("models", None, "Model cases (default: the four of the benchmark plan).")
flags.DEFINE_list("modes", None, "Downsampling modes of the model cases (default: all four).")
flags.DEFINE_list("compilers", ["graph", "xla"], "graph (tf.function) and/or xla (jit_compile).")
flags.DEFINE_integer("warmup", 2, "Untimed calls before timing (tracing, XLA compilation); "
                     ">= 1.")
flags.DEFINE_integer("repeats", 7, "Timed calls; the median is reported.")
flags.DEFINE_bool("tiny", False, "Tiny shapes and one tiny model, for checking the command.")
flags.DEFINE_string("output", "benchmarks/results/latest.json", "Where to write the JSON.")

DEFAULT_MODELS = ("resnet18_cifar", "resnet20_cifar", "resnet50_imagenet",
                  "deeplabv3plus_resnet18")


def _check_choices(flag, values, allowed):
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise app.UsageError(f"--{flag}: unknown {unknown}; choose from {sorted(allowed)}.")
    return list(values)


def _train_py_uses_xla():
    from configs import default

    return bool(default.get_config().train.jit_compile)


def main(argv):
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")  # retracing notes: each case builds fresh functions
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from benchmarks import layer_cases, model_cases, report

    compilers = _check_choices("compilers", FLAGS.compilers, ("graph", "xla"))
    layers = _check_choices("layers", FLAGS.layers or list(layer_cases.LAYERS),
                            layer_cases.LAYERS)
    models = _check_choices("models", FLAGS.models or
                            (["tiny"] if FLAGS.tiny else list(DEFAULT_MODELS)),
                            model_cases.MODELS)
    modes = _check_choices("modes", FLAGS.modes or list(model_cases.MODES), model_cases.MODES)
    if FLAGS.repeats < 1 or FLAGS.warmup < 1:
        raise app.UsageError("--repeats and --warmup must be >= 1 (the first call traces and "
                             "compiles, so it is never timed).")
    for layer in layers:  # a ratio needs its baseline in the same run
        base = layer_cases.LAYERS[layer][0]
        if base and base not in layers:
            layers.insert(0, base)
    if "strided" not in modes:
        modes.insert(0, "strided")
    shapes = layer_cases.TINY_SHAPES if FLAGS.tiny else layer_cases.SHAPES

    def log(line):
        print(line, flush=True)

    start = time.time()
    info = machine_info()
    log(f"lps_keras benchmarks on {info['cpu']} ({info['cpu_count']} CPUs), "
        f"TF {info['tensorflow']}, Keras {info['keras']}")
    results = {
        "machine": info,
        "settings": {"warmup": FLAGS.warmup, "repeats": FLAGS.repeats, "tiny": FLAGS.tiny,
                     "compilers": compilers, "statistic": "median seconds per call"},
        "layers": [], "models": [], "targets": [], "complete": False,
    }

    def save():
        # Written after every case, atomically: an interrupted run keeps what it measured.
        results["wall_seconds"] = time.time() - start
        _write_json(results, FLAGS.output)

    def record(kind):
        def add(r):
            results[kind].append(r)
            save()
        return add

    if FLAGS.suite in ("all", "layers"):
        results["layers"] = layer_cases.run_layer_cases(
            layers, shapes, compilers, FLAGS.warmup, FLAGS.repeats, log, record("layers"))
    if FLAGS.suite in ("all", "models"):
        results["models"] = model_cases.run_model_cases(
            models, modes, compilers, FLAGS.warmup, FLAGS.repeats, log, record("models"))
    layer_records, model_records = results["layers"], results["models"]
    results["targets"] = report.check_targets(layer_records, model_records,
                                              _train_py_uses_xla())
    results["complete"] = True
    save()

    if layer_records:
        log("\nLayers (stride 2, float32; ratio to strided_slice or upsampling2d):\n"
            + report.layer_table(layer_records))
    if model_records:
        log("\nModels (ratios to the strided model under the same compiler):\n"
            + report.model_table(model_records))
    log("\nTargets:\n" + report.targets_table(results["targets"]))
    log(f"\nWrote {FLAGS.output} ({time.time() - start:.0f} s).")
    failed = [r for r in layer_records + model_records if "error" in r]
    if failed:
        log(f"{len(failed)} case(s) failed; see 'error' in the JSON.")
        sys.exit(1)


def _write_json(results, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(results, f, indent=2)
    os.replace(tmp, path)  # never leave a half-written results file


if __name__ == "__main__":
    app.run(main)
