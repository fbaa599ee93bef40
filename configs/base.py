"""Fields every config has; experiment files override what differs.

Run any config with `python train.py --config=configs/<file>.py` and override fields on
the command line, e.g. `--config.train.epochs=3`. docs/config.md documents every field
(one line each, with its default); `python train.py --print_config` prints the resolved
config of a command without running it.
"""

import ml_collections

from lps_keras.training.temperature import TAU_RECIPES

_LPS_DEFAULTS = {"tau": 1.0, "train_mode": "gumbel", "inference_mode": "argmax", "hard": False,
                 "scorer_head": "single", "scorer_init": "keras"}

# LPS scorer width of every config unless it overrides it: None is the full input width of
# the papers. (The model builders' own default is "auto", a quarter of the input width,
# `lps_keras.models.blocks.DEFAULT_LOGITS_CHANNELS`; the configs keep the papers' width.)
# Also "auto", an int, or one value per stage.
LOGITS_CHANNELS = None


def sampling_fields():
    """The sampling settings of every `config.model` (those of
    `lps_keras.models.sampling.SamplingSpec`, with `lps` for its `lps_kwargs`)."""
    return {
        "downsampling": "lps",  # strided (ResNets) | maxpool (U-Nets) | blurpool | aps | lps
        "antialias": ml_collections.config_dict.placeholder(str),  # lowpass3, ddac3
        # padding_mode: circular (exact invariance) | zeros; logits_model: the LPS scorer
        # (conv, conv_skip, attention, attention_bn, graph, perceptron).
        "padding_mode": "circular", "logits_model": "conv",
        # Typed `object`: a None field would refuse `--config.model.logits_channels=4`.
        "logits_channels": ml_collections.FieldReference(LOGITS_CHANNELS, field_type=object),
        # sync_bn: BatchNorm synchronised across replicas; lps: LPSDownsampling2D arguments
        # (tau, train_mode gumbel|softmax, inference_mode argmax|softmax, hard, scorer_head
        # single|official, scorer_init keras|torch).
        "sync_bn": False, "lps": ml_collections.ConfigDict(_LPS_DEFAULTS),
        # The library's defaults; `official_code_fields()` lists the papers' code's.
        "score_unfiltered": True, "stem_antialias": True, "conv1_stride": False,
        "maxpool_zpad": False, "swap_conv_pool": False, "init": "keras", "aps_norm": "l2",
        # init, batch_norm: keras | torch; aps_norm: l2 | l1 | linf | l2_min | l1_min |
        # non_abs_max; antialias_kwargs: extra arguments of the blur / DDAC layer.
        "batch_norm": "keras",
        "antialias_kwargs": ml_collections.ConfigDict(),
    }


# The DDAC of the papers' code: one softmax over all groups * k * k kernel logits, PyTorch's
# BatchNorm constants.
OFFICIAL_DDAC = {"softmax": "joint", "epsilon": 1e-5, "momentum": 0.9}


def use_official_code_settings(model):
    """Sets `model` (a `config.model`) to the papers' code's settings where they differ from
    the library's defaults (see lps_keras.models.SamplingSpec and docs/official_code.md):
    selection on the filtered input, no blur before the ImageNet stem's first downsampler,
    PyTorch's initialisation and BatchNorm statistics update, the official conv scorer (an
    h->h last conv with bias and a mean over channels, PyTorch init) and the official DDAC.
    Call it after setting `model.antialias`."""
    model.score_unfiltered = False
    model.stem_antialias = False
    model.init = "torch"
    model.batch_norm = "torch"  # PyTorch's moving-variance update (unbiased batch variance)
    model.lps.scorer_head = "official"
    model.lps.scorer_init = "torch"
    if model.antialias and model.antialias.startswith("ddac"):
        model.antialias_kwargs = dict(OFFICIAL_DDAC)
    return model


def tau_recipe(name, **overrides):
    """`config.train.tau_schedule` for the named recipe of `TAU_RECIPES` ("cifar",
    "imagenet"), with its values spelled out so that each is recorded in config.json and
    can be overridden on the command line (`--config.train.tau_schedule.step_size=2`)."""
    recipe = {k: v for k, v in TAU_RECIPES[name].items() if k != "kind"}
    unknown = sorted(set(overrides) - set(recipe))
    if unknown:
        raise ValueError(f"{unknown} are not fields of the {name!r} tau recipe: "
                         f"{sorted(recipe)}.")
    recipe.update(overrides)
    return ml_collections.ConfigDict({"name": name, **recipe})


def deeplab_model_config(**overrides):
    """`config.model` for an LPS + LPU DeepLabV3+ (ResNet-18 backbone unless overridden)."""
    model = ml_collections.ConfigDict({
        "kind": "deeplabv3plus", "backbone": "resnet18", "output_stride": 16,
        "upsampling": "lpu", **sampling_fields()})
    for key, value in overrides.items():  # by assignment: typed fields keep their type
        model[key] = value
    return model


def unet_model_config(downsampling, **overrides):
    """`config.model` for a U-Net (`lps_keras.models.unet`) with `downsampling` maxpool,
    blurpool, aps or lps; empty `upsampling`: polyphase (APS-U/LPU) for aps/lps,
    transposed otherwise."""
    model = ml_collections.ConfigDict({
        "kind": "unet", "channels": [64, 128, 256, 512, 1024], "out_channels": 1,
        "upsampling": "", "up_padding_mode": "", "residual": False, **sampling_fields()})
    model.downsampling = downsampling
    for key, value in overrides.items():  # by assignment: typed fields keep their type
        model[key] = value
    return model


def get_base_config():
    config = ml_collections.ConfigDict()
    # Empty: derived from the data and the model (`lps_keras.training.naming.run_name`,
    # e.g. cifar10_resnet18_lps), so `--config.model.downsampling=strided` names its own
    # run directory and export. Set it to choose a name.
    config.name = ""
    config.seed = 0  # initialisation, data order, augmentation

    config.data = ml_collections.ConfigDict()
    config.data.name = "synthetic_shapes"  # a lps_keras.data name (README "Data")
    config.data.data_dir = ""  # empty: the loader's default location
    config.data.source = "auto"  # auto | folder | tfds
    config.data.augment = "default"  # e.g. "flip+shift"
    config.data.max_shift = 3  # circular-shift augmentation range
    config.data.image_size = 0  # 0: dataset default
    config.data.crop_size = 0  # segmentation crop; 0: dataset default
    config.data.num_train_examples = 0  # synthetic data only; 0: default size
    config.data.num_eval_examples = 0  # synthetic data only; 0: default size
    # CIFAR-10 and ImageNet-family folders: N training images (a fixed random choice) are
    # held out of training and form the split "holdout" (for config.eval.validation_split).
    # 0: train on all of them.
    config.data.holdout = 0

    config.model = ml_collections.ConfigDict({
        "kind": "resnet",  # resnet | deeplabv3plus | unet
        # ResNet depth 18 | 34 | 50 | 101 | 20 | 56; stem cifar (3x3) | imagenet (7x7 + pool)
        "depth": 20, "stem": "cifar", **sampling_fields(),
    })

    config.train = ml_collections.ConfigDict()
    config.train.epochs = 10  # absolute: a resumed run ends at this epoch
    config.train.batch_size = 128  # global: split over the replicas
    config.train.steps_per_epoch = 0  # 0: one pass over the training set
    config.train.optimizer = "sgd"  # sgd | pytorch_sgd | adam
    config.train.loss = "auto"  # auto (cross-entropy; regression: mse) | mse | l1
    config.train.learning_rate = 0.1  # initial rate of lr_schedule
    config.train.momentum = 0.9  # SGD momentum
    config.train.nesterov = False  # Nesterov momentum
    config.train.weight_decay = 5e-4  # decoupled (sgd) or an L2 term (pytorch_sgd)
    config.train.jit_compile = False  # XLA for the train step (see benchmarks/)
    config.train.scorer_weight_decay = False  # the papers exclude LPS scorer weights
    # lr_schedule: `name` (constant | step | multistep | cosine | poly) and that schedule's
    # arguments, in epochs (lps_keras.training.schedules.make_lr_schedule). tau_schedule: a
    # recipe of TAU_RECIPES with its values spelled out (`tau_recipe` above).
    config.train.lr_schedule = ml_collections.ConfigDict(
        {"name": "multistep", "milestones": [100], "gamma": 0.1})
    config.train.tau_schedule = tau_recipe("cifar")
    # A history metric (e.g. "val_accuracy", "val_mean_iou", "val_psnr", "val_loss"; "min"
    # for names ending in loss or nmse, "max" otherwise) whose best epoch is kept in
    # checkpoints/best/. Empty: no best checkpoint.
    config.train.best_metric = ""
    # True: evaluate, save and export the best checkpoint's weights instead of the last
    # epoch's (needs best_metric).
    config.train.export_best = False

    config.eval = ml_collections.ConfigDict()
    config.eval.split = "test"  # evaluated at the end of the run
    config.eval.batch_size = 100  # results do not depend on it
    config.eval.num_examples = 0  # 0: the whole split
    config.eval.max_shift = 3  # C-Cons/S-Cons shifts (CIFAR protocol)
    config.eval.seg_max_shift = 32  # mASSC shifts
    # Scored during training (lps_keras.training.validation); never the test split (e.g.
    # "validation" for the synthetic data). Empty: no validation.
    config.eval.validation_split = ""
    config.eval.validate_every = 1  # epochs between validations (the last is always scored)
    config.eval.num_validation_examples = 500  # the first N of the split; 0: all of it

    config.export = ml_collections.ConfigDict()
    config.export.enabled = True  # a SavedModel at the end of the run
    config.export.dir = "saved_models"  # versions go to <dir>/<name>/<version>/
    config.export.name = ""  # empty: the run name
    return config
