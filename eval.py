"""Evaluate a trained model: accuracy, shift consistency, segmentation mIoU and mASSC.

    python eval.py --model=runs/synthetic_shapes_resnet20_lps --eval_mode=shift_consistency
    python eval.py --model=saved_models/cifar10_resnet18_lps/1 --dataset=cifar10 \
        --baseline=saved_models/cifar10_resnet18_strided/1 --eval_mode=shift_consistency

`--model` is a run directory (from train.py), a `.keras` file or a SavedModel directory.
Writes `<output_dir>/eval_<mode>.json` and, for shift consistency, a PNG plot.
"""

import json
import os

from absl import app, flags

flags.DEFINE_string("model", None, "Run directory, .keras file or SavedModel directory.")
flags.DEFINE_string("baseline", None, "Optional second model to compare (same forms).")
flags.DEFINE_enum("eval_mode", "shift_consistency",
                  ["class_accuracy", "shift_consistency", "segmentation"], "What to measure.")
flags.DEFINE_string("dataset", None, "Dataset name (default: the run's config).")
flags.DEFINE_string("data_dir", None, "Dataset location (default: the run's config).")
flags.DEFINE_string("split", None, "Split to evaluate (default: the run's eval split).")
flags.DEFINE_integer("num_examples", 0, "Evaluate on the first N examples (0: all).")
flags.DEFINE_integer("max_shift", None, "Largest shift (default: 3 CIFAR, 32 ImageNet/seg).")
flags.DEFINE_enum("protocol", None, ["cifar", "imagenet"],
                  "Consistency protocol (default: imagenet for ImageNet-family data).")
flags.DEFINE_integer("batch_size", 64, "Images per model call.")
flags.DEFINE_integer("seed", 0, "Seed of every shift draw.")
flags.DEFINE_string("output_dir", None, "Where to write results (default: next to --model).")
flags.mark_flag_as_required("model")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from lps_keras.data import dataset_info
    from lps_keras.evaluation import LoadedModel, evaluate, plot_consistency

    probe = LoadedModel(FLAGS.model)
    config = probe.config or {}
    dataset = FLAGS.dataset or config.get("data", {}).get("name")
    if not dataset:
        raise app.UsageError("--dataset is required when --model is not a run directory.")
    info = dataset_info(dataset)
    model = LoadedModel(FLAGS.model, info.mean, info.std)
    baseline = LoadedModel(FLAGS.baseline, info.mean, info.std) if FLAGS.baseline else None
    if baseline is not None and baseline.name == model.name:
        baseline.name += " (baseline)"
    protocol = FLAGS.protocol or ("imagenet" if dataset in ("imagenet", "imagenette",
                                                            "image_folder") else "cifar")
    split = FLAGS.split or config.get("eval", {}).get("split") or "test"
    result = evaluate(
        model, FLAGS.eval_mode, dataset, split=split,
        data_dir=FLAGS.data_dir or config.get("data", {}).get("data_dir") or None,
        num_examples=FLAGS.num_examples or None, seed=FLAGS.seed,
        batch_size=FLAGS.batch_size, protocol=protocol, max_shift=FLAGS.max_shift,
        baseline=baseline)
    out = FLAGS.output_dir or (FLAGS.model if os.path.isdir(FLAGS.model)
                               else os.path.dirname(os.path.abspath(FLAGS.model)))
    os.makedirs(out, exist_ok=True)
    json_path = os.path.join(out, f"eval_{FLAGS.eval_mode}.json")
    with open(json_path, "w") as f:
        json.dump(result, f, indent=2)
    if FLAGS.eval_mode == "shift_consistency":
        result["plot"] = plot_consistency(result, os.path.join(out, "shift_consistency.png"))
    for name, entry in result["models"].items():
        summary = ", ".join(f"{k} {v:.2f}%" for k, v in entry.items()
                            if isinstance(v, float))
        print(f"{name}: {summary}")
    print(f"Results written to {json_path}")


if __name__ == "__main__":
    app.run(main)
