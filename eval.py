"""Evaluate a trained model: accuracy, shift consistency, segmentation mIoU and mASSC,
reconstruction PSNR/SSIM/NMSE and shift equivariance.

    python eval.py --model=runs/synthetic_shapes_resnet20_lps
    python eval.py --model=saved_models/cifar10_resnet18_lps/1 \
        --baseline=saved_models/cifar10_resnet18_strided/1

`--model` is a run directory (from train.py), a `.keras` file or a SavedModel directory.
The dataset, split, number of images, seed, batch size and shift range default to the
run's config (`config.json`); for a SavedModel the dataset comes from its
`export_metadata.json`. The mode defaults to the dataset's task: `shift_consistency` for
classification, `segmentation` for segmentation, `reconstruction` for regression (e.g.
`synthetic_mri`, `fastmri`). A run directory is scored exactly as train.py scored it in
`results.json`.

Writes `eval_<mode>.json` (classification and segmentation metrics in percent, 0-100;
reconstruction: PSNR in dB, SSIM in [0, 1], NMSE as a ratio, as its `units` says) and PNGs
(consistency against shift size; segmentation examples; reconstruction examples per model
and equivariance NMSE against shift size) into `--output_dir`; default `<run_dir>/eval`
for a run directory, otherwise `./eval/<model label>`. Nothing is ever written into a
SavedModel directory.
"""

import os
import sys
import time

from absl import app, flags

flags.DEFINE_string("model", None, "Run directory, .keras file or SavedModel directory.")
flags.DEFINE_string("baseline", None, "Optional second model to compare (same forms).")
flags.DEFINE_enum("eval_mode", None, ["class_accuracy", "shift_consistency", "segmentation",
                                      "reconstruction"],
                  "What to measure (default: from the dataset's task).")
flags.DEFINE_string("dataset", None, "Dataset name (default: the run's config or the "
                    "SavedModel's export_metadata.json).")
flags.DEFINE_string("data_dir", None, "Dataset location (default: the run's config).")
flags.DEFINE_string("split", None, "Split to evaluate (default: the run's eval split, or "
                    "test).")
flags.DEFINE_integer("num_examples", 0, "Evaluate on the first N examples (0: the run's "
                     "eval size, or the whole split).", lower_bound=0)
flags.DEFINE_integer("max_shift", None, "Largest shift (default: the run's config; else 3 "
                     "CIFAR protocol, 32 ImageNet protocol and segmentation, 16 "
                     "reconstruction).", lower_bound=0)
flags.DEFINE_enum("protocol", None, ["cifar", "imagenet"],
                  "Consistency protocol (default: the dataset's).")
flags.DEFINE_integer("batch_size", None, "Images per forward pass (default: the run's eval "
                     "batch size, else 128); does not change the results.", lower_bound=1)
flags.DEFINE_integer("seed", None, "Seed of every shift draw (default: the run's seed, "
                     "else 0).", lower_bound=0)
flags.DEFINE_string("output_dir", None, "Where to write results (default: <run_dir>/eval "
                    "for a run directory, else ./eval/<model label>).")
flags.mark_flag_as_required("model")
FLAGS = flags.FLAGS


def _load(path, what):
    from lps_keras.evaluation import LoadedModel
    from lps_keras.evaluation.loading import ModelFileError
    from lps_keras.rundir import InvalidJSONError

    try:
        return LoadedModel(path)
    except (FileNotFoundError, InvalidJSONError, ModelFileError) as e:
        raise app.UsageError(f"--{what}: {e}") from None


def _inside_savedmodel(path):
    path = os.path.abspath(path)
    while True:
        if os.path.exists(os.path.join(path, "saved_model.pb")):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from lps_keras import rundir
    from lps_keras.data import dataset_info
    from lps_keras.data.errors import CorruptDatasetError, DatasetNotFoundError
    from lps_keras.evaluation import (
        default_eval_mode,
        default_output_dir,
        evaluate,
        plot_consistency,
        plot_equivariance,
        plot_reconstruction_examples,
        plot_segmentation_examples,
        settings_from_config,
        summary,
    )
    from lps_keras.evaluation.loading import load_arrays
    from lps_keras.evaluation.reconstruction import DEFAULT_MAX_SHIFT as RECON_MAX_SHIFT
    from lps_keras.evaluation.runner import check_max_shift, modes_of_task
    from lps_keras.rundir import CONFIG

    start = time.time()
    model = _load(FLAGS.model, "model")
    baseline = _load(FLAGS.baseline, "baseline") if FLAGS.baseline else None
    dataset = FLAGS.dataset or model.dataset
    if not dataset:
        raise app.UsageError(
            f"--dataset is required: {model.path} names no dataset (no {CONFIG} beside "
            "it, and no 'dataset' in an export_metadata.json). Pass e.g. "
            "--dataset=synthetic_shapes.")
    try:
        info = dataset_info(dataset)
    except ValueError as e:
        raise app.UsageError(f"--dataset: {e}") from None
    for m in (model, baseline):
        if m is None:
            continue
        m.normalise_with(info.mean, info.std, task=info.task)
        if m.task and m.task != info.task:
            raise app.UsageError(
                f"{m.path} is a {m.task} model but {dataset} is a {info.task} dataset; "
                "pass the --dataset it was trained on.")
    eval_mode = FLAGS.eval_mode or default_eval_mode(info.task)
    if eval_mode not in modes_of_task(info.task):
        raise app.UsageError(
            f"--eval_mode={eval_mode} does not fit {dataset}, a {info.task} dataset; use "
            + " or ".join(f"--eval_mode={m}" for m in modes_of_task(info.task))
            + " (or leave --eval_mode out).")
    if baseline is not None and baseline.name == model.name:
        baseline.name += " (baseline)"

    # The run's own evaluation settings, when the run was on this dataset.
    run = settings_from_config(model.config) if model.config else {}
    if run.get("dataset") != dataset:
        run = {}
    max_shift = FLAGS.max_shift
    if max_shift is None:
        max_shift = run.get("seg_max_shift" if info.task == "segmentation" else "max_shift")
    settings = dict(
        split=FLAGS.split or run.get("split") or "test",
        data_dir=FLAGS.data_dir or run.get("data_dir"),
        num_examples=FLAGS.num_examples or run.get("num_examples"),
        seed=FLAGS.seed if FLAGS.seed is not None else run.get("seed", 0),
        batch_size=FLAGS.batch_size or run.get("batch_size") or 128,
        image_size=run.get("image_size"), crop_size=run.get("crop_size"),
        source=run.get("source", "auto"))
    default_shift = max_shift is None and eval_mode == "reconstruction"
    if default_shift:  # checked too: the test images may be smaller than the default
        max_shift = RECON_MAX_SHIFT
    if max_shift is not None and eval_mode != "class_accuracy":
        key = "seg_max_shift" if info.task == "segmentation" else "max_shift"
        name = "--max_shift" if FLAGS.max_shift is not None or default_shift else \
            f"eval.{key} of the run's {CONFIG} (override with --max_shift)"
        try:
            check_max_shift(int(max_shift), dataset, settings["image_size"],
                            settings["crop_size"], name=name)
        except ValueError as e:
            note = f"The default --max_shift of reconstruction is {max_shift}: " \
                if default_shift else ""
            raise app.UsageError(note + str(e)) from None
    if settings["split"] not in info.splits:
        raise app.UsageError(f"--split={settings['split']} is not a split of {dataset}; "
                             f"valid: {', '.join(info.splits)}.")
    out = os.path.abspath(FLAGS.output_dir or default_output_dir(model))
    savedmodel = _inside_savedmodel(out)
    if savedmodel:
        raise app.UsageError(f"--output_dir {out} is inside the SavedModel {savedmodel}; a "
                             "server may be loading it. Pass a directory outside it.")

    print(f"Evaluating {model.name}" + (f" and {baseline.name}" if baseline else "")
          + f" on {dataset} {settings['split']} ({eval_mode})", flush=True)
    log = lambda line: print(line, flush=True)  # noqa: E731
    try:
        result = evaluate(model, eval_mode, dataset, protocol=FLAGS.protocol,
                          max_shift=max_shift, baseline=baseline, log=log, **settings)
    except (DatasetNotFoundError, CorruptDatasetError) as e:
        raise app.UsageError(f"--dataset={dataset} (--data_dir): {e}") from None
    except ValueError as e:  # settings the protocols reject, e.g. --protocol vs image size
        raise app.UsageError(f"Cannot evaluate {dataset} with these settings: {e}") from None

    os.makedirs(out, exist_ok=True)
    json_path = os.path.join(out, f"eval_{eval_mode}.json")
    written = [json_path]
    if eval_mode == "shift_consistency":
        written.append(plot_consistency(result, os.path.join(out, "shift_consistency.png")))
    elif eval_mode == "reconstruction":
        written.append(plot_equivariance(result, os.path.join(out, "equivariance_vs_shift.png")))
        inputs, targets = load_arrays(dataset, settings["split"], settings["data_dir"],
                                      num_examples=4, seed=settings["seed"])
        for m in [model] + ([baseline] if baseline else []):
            name = "reconstruction_examples.png" if m is model else \
                "reconstruction_examples_baseline.png"
            written.append(plot_reconstruction_examples(m, inputs, targets,
                                                        os.path.join(out, name)))
    elif eval_mode == "segmentation":
        images, masks = load_arrays(
            dataset, settings["split"], settings["data_dir"], num_examples=4,
            seed=settings["seed"], image_size=settings["image_size"],
            crop_size=settings["crop_size"], source=settings["source"])
        for m in [model] + ([baseline] if baseline else []):
            name = "segmentation_examples.png" if m is model else \
                "segmentation_examples_baseline.png"
            written.append(plot_segmentation_examples(
                m, images, masks, os.path.join(out, name), num_classes=info.num_classes,
                ignore_index=info.ignore_index, class_names=info.class_names))
    rundir.write_text(json_path, rundir.dumps(result, indent=2))  # strict JSON, whole
    print(f"\n{dataset} {settings['split']} ({result['num_examples']} images), "
          f"{time.time() - start:.1f} s:")
    for name, entry in result["models"].items():
        print(f"  {name}: {summary(entry)}")
        if "per_class_iou" in entry:
            print("    IoU per class: " + ", ".join(
                f"{k} {'n/a' if v is None else f'{v:.1f}%'}"
                for k, v in entry["per_class_iou"].items()))
    print("Written: " + ", ".join(written))
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
