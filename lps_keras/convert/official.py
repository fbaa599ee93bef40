"""Converts the papers' official PyTorch checkpoints to lps_keras models.

Recognised checkpoints (`checkpoint_kind`):

* `"lps_resnet"` — the LPS repo's Lightning checkpoint of a `ResNet*Custom` classifier
  (`hyper_parameters` + `state_dict` keys `core.*`), CIFAR or ImageNet stem, basic or
  Bottleneck blocks. Settings are read from `hyper_parameters` (`padding_mode`, the
  `pooling_layer` partial: scorer class, `comp_train_convex`, `comp_convex`,
  `selection_noantialias`, `logits_pad` -> the scorers' padding, `antialias_layer` ->
  `antialias`/`antialias_kwargs` (LowPassFilter -> `lowpassN`; DDAC -> `ddacN` with
  `groups=group` and the official joint softmax / BN constants), each with its own
  padding; `extras_model`: `swap_conv_pool`, `maxpool_zpad` -> the stem max-pool's pad
  (circular otherwise, whatever the network's padding), `maxpool_no_antialias`
  (ResNet18Custom only; default True) -> `stem_antialias`); scorer widths and every `tau`
  come from the tensors. The official model returns **log_softmax**; ours returns logits
  unless `log_softmax=True` (same argmax, `log_softmax(ours)` matches theirs).
* `"aps_resnet"` — the APS repo's checkpoint (`{'model': state_dict, 'optimizer', ...}`,
  optionally `arch`): `Small_ResNet`/`ResNet` with `ApsPool` (blur size from the `filt`
  buffers, circular padding when convs are `Sequential(pad, conv)`), criterion `l2`
  (the APS default; the file does not store it). Selection on the unblurred input, as the
  official `ApsPool`.
* `"lps_deeplab"` — the LPS repo's `DDACSegmentation('deeplabv3plus_resnet_lps_unpool')`
  checkpoint (`state_dict` keys `model.*`) -> `deeplabv3plus` with the official head
  (see `_deeplab_spec`; the backbone's settings are not stored and are assumed).
* `"torchvision_resnet"` — a plain torchvision ResNet `state_dict` -> our strided ResNet
  with zero padding (`downsampling="blurpool"`/`"aps"` overrides load the same weights).
* `"aps_unet"` — a U-Net of the APS repo (`models/aps_models/unet_aps` `UNet_<n>down_aps`,
  `models/baseline_models/baseline_unet` `UNet_<n>down`, `models/lpf_models/unet_lpf`
  `UNet_<n>down_lpf`, `bilinear=False`): a bare `state_dict` (keys `inc.double_conv.*`,
  `down<k>.*`, `up<k>.*`, `outc.conv.*`) or the `main_mri.py` checkpoint `{'state_dict'
  (DataParallel `module.` keys), 'arch', 'epoch', 'lowest_loss', 'optimizer'}` (`arch` is
  checked against the tensors) -> `unet(...)`. Levels, widths, in/out channels from the
  tensors; padding from the `DoubleConv` indices (a `circular_pad` module precedes every
  conv: conv/BN at 1/2 and 5/6, else 0/1 and 3/4); variant from the keys (`down<k>.maxpool`
  = pad + MaxPool2d(2, 1) + ApsDown -> `downsampling="aps"`, `score_unfiltered=False`,
  `upsampling="polyphase"`, `up_padding_mode="circular"`; `down<k>.maxpool_conv` with a
  `filt` buffer -> `"blurpool"` + transposed conv + blur, with reflect-padded blurs in
  zero-padded networks; without -> `"maxpool"` + transposed conv); blur size from the
  `filt` buffers (APS size 1 -> no blur). The APS criterion is not stored: `aps_norm="l2"`
  (the default), override it. Refused: `bilinear=True` (no `up<k>.up` tensors; Keras'
  bilinear upsampling does not align corners), `UNet_4down_InstanceNorm` and LPF U-Nets
  with `sinc_mode=True`.

Depth, stem and classes are read from the tensors. Every tensor must find its place and
every Keras weight must get a tensor, else `ConversionError` lists them. Buffers with no
Keras counterpart are consumed with a documented reason (`NOT_NEEDED`).

Overrides: `convert_checkpoint(..., **overrides)` takes model settings (ResNets: `depth`,
`num_classes`, `input_shape`, `stem`, `name`, `log_softmax`; U-Nets: `input_shape`,
`name`, `up_padding_mode`) and `SamplingSpec` fields (e.g. `aps_norm`).

Not supported (a clear error): `conv1_stride=True`, antialias
paddings other than circular/zeros/reflect (e.g. `replicate`), LowPassFilter with
`filter_scale != 1` or `padding="valid"`, DDAC with `kernel_scale != 1`.
"""

import os
import re

import keras
import numpy as np

from lps_keras.convert.torch_checkpoint import PickledGlobal, PickledObject, load_torch_checkpoint
from lps_keras.convert.weights import (
    BN_NAMES,
    OFFICIAL_SCORER_LAYERS,
    ConversionError,
    StateDictConsumer,
    assign_weights,
    binomial_filter,
    conv_kernel,
    ddac_weight,
    dense_kernel,
    lps_down_weight,
)
from lps_keras.models.deeplab import deeplabv3plus
from lps_keras.models.resnet import DEPTHS, resnet
from lps_keras.models.sampling import SamplingSpec
from lps_keras.models.unet import unet

__all__ = [
    "NOT_NEEDED", "build_spec", "checkpoint_kind", "convert_checkpoint",
    "convert_checkpoint_with_map",
]

NOT_NEEDED = {
    "num_batches_tracked": "Keras BN keeps no step counter; PyTorch uses it only with "
                           "momentum=None (cumulative average), not in the papers' models",
    "shortcut_tau": "the shortcut LPS reuses the main branch's selection (logits in eval, "
                    "probabilities in training), so its own gumbel_tau is never read",
    "filt": "the fixed binomial blur buffer: checked equal to our LowPassFilter2D kernel",
    "lpu_tau": "the LPU (LPS_u) reuses the paired LPS selection (one-hot of its argmax in "
               "eval, its probabilities in training), so its own gumbel_tau is never read",
}

# Official scorer class -> our logits_model (with scorer_head="official").
OFFICIAL_SCORERS = {name: v[0] for name, v in OFFICIAL_SCORER_LAYERS.items()}

_MODEL_KEYS = {"depth", "num_classes", "input_shape", "stem", "log_softmax", "name"}


def _load(path_or_loaded):
    if isinstance(path_or_loaded, (str, os.PathLike)):
        return load_torch_checkpoint(path_or_loaded)
    return path_or_loaded


def checkpoint_kind(ckpt):
    """`"lps_resnet"`, `"lps_deeplab"`, `"aps_resnet"`, `"aps_unet"` or
    `"torchvision_resnet"`."""
    if not isinstance(ckpt, dict):
        raise ConversionError(f"A checkpoint must be a dict; got {type(ckpt).__name__}.")
    if _is_unet(ckpt):
        return "aps_unet"
    if "state_dict" in ckpt and "hyper_parameters" in ckpt:
        keys = list(ckpt["state_dict"])
        if keys and all(k.startswith("core.") for k in keys):
            return "lps_resnet"
        if keys and all(k.startswith("model.") for k in keys):
            return "lps_deeplab"
        raise ConversionError("A Lightning checkpoint whose state_dict keys are neither all "
                              "'core.*' (LPS ResNet) nor 'model.*' (LPS DeepLab).")
    if isinstance(ckpt.get("model"), dict):
        return "aps_resnet"
    if "conv1.weight" in ckpt and "fc.weight" in ckpt:
        return "torchvision_resnet"
    raise ConversionError(
        "Unrecognised checkpoint: expected an LPS Lightning checkpoint (hyper_parameters + "
        "state_dict 'core.*'), an APS checkpoint ({'model': state_dict, ...}), an APS-repo "
        "U-Net (state_dict 'inc.double_conv.*', 'outc.conv.*', bare or in {'state_dict': "
        "...}) or a torchvision ResNet state_dict; got top-level keys "
        f"{sorted(map(str, ckpt))[:10]}.")


def _strip_module(sd):
    """Removes the `module.` prefix of DataParallel / DistributedDataParallel keys."""
    if sd and all(str(k).startswith("module.") for k in sd):
        return {k[len("module."):]: v for k, v in sd.items()}, "module."
    return dict(sd), ""


def _unet_container(ckpt):
    """The state_dict of a U-Net checkpoint: `ckpt['state_dict']` (main_mri.py's
    `{'epoch', 'arch', 'state_dict', 'lowest_loss', 'optimizer'}`) or `ckpt` itself."""
    if "hyper_parameters" not in ckpt and isinstance(ckpt.get("state_dict"), dict):
        return ckpt["state_dict"]
    return ckpt


def _is_unet(ckpt):
    sd, _ = _strip_module(_unet_container(ckpt))
    return "outc.conv.weight" in sd and any(str(k).startswith("inc.double_conv.") for k in sd)


def _state_dict(ckpt, kind):
    if kind == "aps_unet":
        return _strip_module(_unet_container(ckpt))
    if kind == "lps_resnet":
        return {k[len("core."):]: v for k, v in ckpt["state_dict"].items()}, "core."
    if kind == "lps_deeplab":
        return {k[len("model."):]: v for k, v in ckpt["state_dict"].items()}, "model."
    if kind == "aps_resnet":
        sd = ckpt["model"]
    else:
        sd = ckpt
    return _strip_module(sd)  # DataParallel


def _architecture(sd):
    """(depth, stem, num_classes) from a ResNet state_dict (prefix removed)."""
    blocks = {}
    bottleneck = False
    for key in sd:
        m = re.match(r"layer(\d+)\.(\d+)\.", key)
        if m:
            s, i = int(m.group(1)), int(m.group(2))
            blocks[s] = max(blocks.get(s, 0), i + 1)
            bottleneck |= key.startswith(f"layer{s}.{i}.conv3")
    counts = tuple(blocks[s] for s in sorted(blocks))
    kind = "bottleneck" if bottleneck else "basic"
    depth = next((d for d, (k, n, _) in DEPTHS.items() if k == kind and n == counts), None)
    if depth is None:
        raise ConversionError(f"No ResNet depth with {kind} blocks {counts}.")
    stem_key = next(k for k in sd if re.match(r"conv1(\.\d+)*\.weight$", k))
    stem = "imagenet" if np.asarray(sd[stem_key]).shape[-1] == 7 else "cifar"
    num_classes = int(np.asarray(sd["fc.weight"]).shape[0]) if "fc.weight" in sd else None
    return depth, stem, num_classes


def _partial_kwargs(obj):
    """The keyword arguments of a pickled functools.partial (or {} for None)."""
    if obj is None:
        return {}
    if isinstance(obj, PickledObject) and obj.name == "partial":
        kwargs = dict(obj.kwargs or {})
        if isinstance(obj.state, tuple) and len(obj.state) >= 3 and obj.state[2]:
            kwargs.update(obj.state[2])
        return kwargs
    raise ConversionError(f"Expected a functools.partial of the pooling layer; got {obj!r}.")


def _lps_settings(hp, sd):
    pool = _partial_kwargs(hp.get("pooling_layer"))
    extras = dict(hp.get("extras_model") or {})
    selection = pool.get("component_selection")
    if isinstance(selection, PickledGlobal) and selection.name != "LPS":
        raise ConversionError(f"Only LPS component selection converts; got {selection.name}.")
    scorer = pool.get("get_logits")
    scorer_name = scorer.name if isinstance(scorer, PickledGlobal) else "LPSLogitLayersV2"
    if scorer_name not in OFFICIAL_SCORERS:
        raise ConversionError(
            f"The official scorer {scorer_name} differs in structure from ours; convertible: "
            f"{sorted(OFFICIAL_SCORERS)}.")
    padding = hp.get("padding_mode", "zeros")
    padding = {"zeros": "zeros", "circular": "circular"}.get(padding)
    if padding is None:
        raise ConversionError(f"Unsupported padding_mode {hp.get('padding_mode')!r}.")
    # train.py's LPS_pad (default "circular") is independent of the network's padding.
    logits_pad = _OFFICIAL_PADDING.get(pool.get("logits_pad", padding))
    if logits_pad is None:
        raise ConversionError(f"Unsupported logits_pad {pool.get('logits_pad')!r}; "
                              f"convertible: {sorted(_OFFICIAL_PADDING)}.")
    antialias, antialias_kwargs = _antialias_settings(pool.get("antialias_layer"))
    if extras.get("conv1_stride"):
        raise ConversionError("extras_model['conv1_stride']=True is not converted.")
    imagenet = bool(extras.get("inc_conv1_support"))
    if imagenet != bool(extras.get("apply_maxpool")):
        raise ConversionError("extras_model inc_conv1_support and apply_maxpool differ; only "
                              "the CIFAR (both False) and ImageNet (both True) stems convert.")
    widths = {}
    for key, value in sd.items():
        m = re.match(r"(?:layer(\d+)\.0\.conv\d|maxpool)\.\d+\.component_selection\."
                     r"get_logits\.conv1\.weight$", key)
        if m:  # the stem's scorers (maxpool.*) have stage 1's width in our models
            widths[int(m.group(1) or 1)] = int(np.asarray(value).shape[0])
    # The stem's first LPS (replacing conv1's stride) has no antialias: ResNet50/101Custom
    # always, ResNet18Custom unless extras_model['maxpool_no_antialias'] is False.
    stem_antialias = not extras.get("maxpool_no_antialias", True)
    spec = dict(
        downsampling="lps", padding_mode=padding, logits_model=OFFICIAL_SCORERS[scorer_name],
        antialias=antialias, antialias_kwargs=antialias_kwargs,
        score_unfiltered=bool(pool.get("selection_noantialias", False)),
        swap_conv_pool=bool(extras.get("swap_conv_pool", False)),
        stem_antialias=stem_antialias, init="torch", batch_norm="torch",
        lps_kwargs={"scorer_head": "official", "scorer_init": "torch",
                    "train_mode": "softmax" if pool.get("comp_train_convex") else "gumbel",
                    "inference_mode": "softmax" if pool.get("comp_convex") else "argmax",
                    "padding_mode": logits_pad},
        _widths=widths,
    )
    if imagenet:
        # cpad((0, 1, 0, 1)) before the 2x2 max-pool, whatever the network's padding,
        # unless maxpool_zpad (nn.ZeroPad2d).
        spec["maxpool_padding"] = "zeros" if extras.get("maxpool_zpad") else "circular"
    return spec


# Official padding names (torch Conv2d padding_mode / F.pad mode / DDAC pad_type) -> ours.
_OFFICIAL_PADDING = {"circular": "circular", "zeros": "zeros", "constant": "zeros",
                     "zero": "zeros", "reflect": "reflect"}

# The DDAC of the papers' code (see DDAC2D): one softmax over all groups, PyTorch BN.
OFFICIAL_DDAC = {"softmax": "joint", "epsilon": 1e-5, "momentum": 0.9}


def _antialias_settings(partial):
    """(antialias, antialias_kwargs) of the official pooling's `antialias_layer` partial."""
    if partial is None:
        return None, {}
    kwargs = _partial_kwargs(partial)
    func = partial.args[0] if getattr(partial, "args", None) else (
        partial.state[0] if isinstance(getattr(partial, "state", None), tuple) else None)
    name = getattr(func, "name", None)
    if name == "LowPassFilter":
        size, mode = kwargs.get("filter_size"), kwargs.get("padding_mode")
        if kwargs.get("padding", "same") != "same" or kwargs.get("filter_scale", 1) != 1:
            raise ConversionError(f"LowPassFilter {kwargs}: only padding='same' and "
                                  "filter_scale=1 convert.")
        kind, extra = "lowpass", {}
    elif name == "DDAC":
        size, mode = kwargs.get("kernel_size"), kwargs.get("pad_type", "reflect")
        if kwargs.get("kernel_scale", 1) != 1:
            raise ConversionError(f"DDAC {kwargs}: only kernel_scale=1 converts.")
        kind, extra = "ddac", dict(OFFICIAL_DDAC, groups=int(kwargs.get("group", 2)))
    else:
        raise ConversionError(f"Unknown antialias layer {partial!r}; convertible: "
                              "LowPassFilter, DDAC.")
    if not isinstance(size, int) or not 1 <= size <= 7:
        raise ConversionError(f"{name} size {size!r}: 1-7 convert.")
    if mode not in _OFFICIAL_PADDING:
        raise ConversionError(f"{name} padding {mode!r}: convertible "
                              f"{sorted(_OFFICIAL_PADDING)}.")
    return f"{kind}{size}", dict(extra, padding_mode=_OFFICIAL_PADDING[mode])


def build_spec(ckpt, kind=None):
    """(model keyword arguments, SamplingSpec keyword arguments) read from a checkpoint."""
    kind = kind or checkpoint_kind(ckpt)
    if kind == "lps_deeplab":
        return _deeplab_spec(ckpt)
    if kind == "aps_unet":
        model, spec = _unet_spec(_state_dict(ckpt, kind)[0])
        _check_unet_arch(ckpt, model)
        return model, spec
    sd, _ = _state_dict(ckpt, kind)
    depth, stem, num_classes = _architecture(sd)
    model = {"depth": depth, "stem": stem, "num_classes": num_classes, "input_shape": None}
    if kind == "lps_resnet":
        hp = ckpt["hyper_parameters"]
        if hp.get("input_shape") and stem == "cifar":  # ImageNet: any size (as official)
            c, h, w = hp["input_shape"]
            model["input_shape"] = (h, w, c)
        spec = _lps_settings(hp, sd)
        widths = spec.pop("_widths")
        n_stages = len(DEPTHS[depth][1])
        spec["logits_channels"] = tuple(widths.get(s + 1, None) for s in range(n_stages))
        if (stem == "imagenet") != ("maxpool_padding" in spec):
            raise ConversionError(f"The conv1 kernel says stem {stem!r}, extras_model "
                                  "inc_conv1_support/apply_maxpool say otherwise.")
    elif kind == "aps_resnet":
        circular = any(re.match(r"conv1\.1\.weight$", k) for k in sd)
        filt = next((v for k, v in sd.items() if k.endswith(".filt")), None)
        size = 1 if filt is None else int(np.asarray(filt).shape[-1])
        spec = dict(downsampling="aps", padding_mode="circular" if circular else "zeros",
                    antialias=f"lowpass{size}" if size > 1 else None,
                    score_unfiltered=True, stem_antialias=False, init="torch", batch_norm="torch")
        if stem == "cifar":
            model["input_shape"] = (32, 32, 3)
    else:
        spec = dict(downsampling="strided", padding_mode="zeros", init="torch", batch_norm="torch")
    return model, spec


def _split_overrides(overrides, model_keys=_MODEL_KEYS):
    model = {k: v for k, v in overrides.items() if k in model_keys}
    rest = {k: v for k, v in overrides.items() if k not in model_keys}
    unknown = set(rest) - set(SamplingSpec.field_names()) - {"lps_kwargs"}
    if unknown:
        raise ConversionError(
            f"Unknown override(s) {sorted(unknown)}; use {sorted(model_keys)} or SamplingSpec "
            f"fields {list(SamplingSpec.field_names())}.")
    return model, rest


def convert_checkpoint(path_or_loaded, allow_missing=False, **overrides):
    """Builds the Keras model of an official checkpoint and loads every tensor; see
    `convert_checkpoint_with_map` (this returns only the model)."""
    return convert_checkpoint_with_map(path_or_loaded, allow_missing, **overrides)[0]


def convert_checkpoint_with_map(path_or_loaded, allow_missing=False, **overrides):
    """Builds the Keras model of an official checkpoint and loads every tensor.

    Args:
        path_or_loaded: a file written by `torch.save`, or what `load_torch_checkpoint`
            returned for it.
        allow_missing: leave Keras weights without a checkpoint tensor at their
            initialisation (e.g. LPS scorers when loading a torchvision ResNet into an LPS
            model) instead of raising.
        **overrides: model settings (`depth`, `num_classes`, `input_shape`, `stem`,
            `name`, `log_softmax`: end the model with log_softmax like the official LPS
            classifier) and `SamplingSpec` fields; `lps_kwargs` entries are merged into the
            ones read from the checkpoint. They win over what the checkpoint says.

    Returns:
        `(model, tensor_map)`: a `keras.Model` (logits unless `log_softmax=True`) with the
        checkpoint's weights, and a dict from every state_dict key (prefix such as `core.`
        kept) to the Keras weight path it went to, or to the reason it was not needed.

    Raises:
        ConversionError: unrecognised layout, or tensors / weights that do not match
            one-to-one (the message lists them).
    """
    ckpt = _load(path_or_loaded)
    kind = checkpoint_kind(ckpt)
    model_kw, spec_kw = build_spec(ckpt, kind)
    model_over, spec_over = _split_overrides(
        overrides, _UNET_MODEL_KEYS if kind == "aps_unet" else _MODEL_KEYS)
    lps_over = spec_over.pop("lps_kwargs", None) or {}
    model_kw.update(model_over)
    spec_kw.update(spec_over)
    spec_kw["lps_kwargs"] = {**(spec_kw.get("lps_kwargs") or {}), **lps_over}
    log_softmax = bool(model_kw.pop("log_softmax", False))
    name = model_kw.pop("name", None)
    spec = SamplingSpec(**spec_kw)
    sd, prefix = _state_dict(ckpt, kind)
    if kind == "aps_unet":
        model_kw.pop("_variant")
        model = unet(sampling=spec, name=name, **model_kw)
        consumer = StateDictConsumer(sd)
        values, paths = _unet_values(consumer, model, spec, prefix)
        consumer.check_all_used()
        assign_weights(model, values, allow_missing=allow_missing)
        tensor_map = {prefix + key: paths.get(key, why) for key, why in consumer.used.items()}
        return model, tensor_map
    if kind == "lps_deeplab":
        head_kw = model_kw.pop("_deeplab")
        model = deeplabv3plus(f"resnet{model_kw['depth']}", num_classes=model_kw["num_classes"],
                              input_shape=model_kw["input_shape"] or (None, None, 3),
                              sampling=spec, name=name, **head_kw)
        backbone = StateDictConsumer({k[len("backbone."):]: v for k, v in sd.items()
                                      if k.startswith("backbone.")})
        head = StateDictConsumer({k: v for k, v in sd.items() if not k.startswith("backbone.")})
        values, paths = _resnet_values(backbone, model, spec, prefix + "backbone.")
        head_values, head_paths = _deeplab_head_values(head, model, head_kw["aspp_rates"],
                                                       prefix)
        backbone.check_all_used()
        head.check_all_used()
        assign_weights(model, {**values, **head_values}, allow_missing=allow_missing)
        tensor_map = {f"{prefix}backbone.{key}": paths.get(key, why)
                      for key, why in backbone.used.items()}
        tensor_map.update({prefix + key: head_paths.get(key, why)
                           for key, why in head.used.items()})
        return model, tensor_map
    model = resnet(model_kw["depth"], num_classes=model_kw["num_classes"],
                   input_shape=model_kw["input_shape"], stem=model_kw["stem"], sampling=spec,
                   name=name)
    consumer = StateDictConsumer(sd)
    values, paths = _resnet_values(consumer, model, spec, prefix)
    consumer.check_all_used()
    assign_weights(model, values, allow_missing=allow_missing)
    tensor_map = {prefix + key: paths.get(key, why) for key, why in consumer.used.items()}
    if log_softmax:
        outputs = keras.layers.Activation("log_softmax", name="log_softmax")(model.output)
        model = keras.Model(model.input, outputs, name=model.name)
    return model, tensor_map


_BLOCK = r"layer(\d+)\.(\d+)\."
_LEAF = r"(weight|bias|running_mean|running_var|num_batches_tracked)"


class _Placements:
    """Where the tensors of one state dict go: `values` (Keras weight path -> array) and
    `paths` (tensor key -> weight path). Refuses a layer the model does not have and two
    tensors on one weight."""

    def __init__(self, consumer, model, prefix, what="model"):
        self.consumer = consumer
        self.values, self.paths = {}, {}
        self.layer_names = {layer.name for layer in model.layers}
        self.prefix = prefix
        self.what = what

    def put(self, layer, suffix, array, key):
        if layer not in self.layer_names:
            raise ConversionError(f"Tensor {self.prefix}{key} maps to layer {layer!r}, which "
                                  f"the {self.what} does not have.")
        path = f"{layer}/{suffix}"
        if path in self.values:
            raise ConversionError(f"Two tensors map to {path} (second: {self.prefix}{key}).")
        self.values[path] = array
        self.paths[key] = path

    def conv(self, layer, key, leaf):
        """A conv's `weight` (as a Keras kernel) or `bias`."""
        array = self.consumer.take(key, f"{layer} {leaf}")
        self.put(layer, "kernel" if leaf == "weight" else "bias",
                 conv_kernel(array) if leaf == "weight" else array, key)


def _resnet_values(consumer, model, spec, prefix):
    """Keras weight path -> array for every tensor of a ResNet state_dict."""
    placements = _Placements(consumer, model, prefix, f"model ({spec.downsampling})")
    values, paths, put = placements.values, placements.paths, placements.put

    def bn(layer, key, leaf):
        array = consumer.take(key, f"{layer} {leaf}")
        if leaf == "num_batches_tracked":
            consumer.used[key] = NOT_NEEDED["num_batches_tracked"]
            return
        put(layer, BN_NAMES[leaf], array, key)

    conv = placements.conv

    def blur(key):
        filt = consumer.take(key, NOT_NEEDED["filt"])
        size = filt.shape[-1]
        want = binomial_filter(size)
        if spec.antialias != f"lowpass{size}" or not np.allclose(filt[:, 0], want, atol=1e-6):
            raise ConversionError(f"Blur buffer {prefix}{key} ({size}x{size}) is not the "
                                  f"binomial filter of antialias={spec.antialias!r}.")

    def pool(layer, key, rest):
        """A tensor of an official PolyphaseInvariantDown2D -> our downsampler `layer`."""
        if rest == "_antialias_layer.filt":
            blur(key)
        elif rest.startswith("_antialias_layer."):  # the DDAC inside the pooling module
            if not (spec.antialias or "").startswith("ddac"):
                raise ConversionError(f"{prefix}{key} is a DDAC weight; antialias is "
                                      f"{spec.antialias!r}.")
            sub, arr = ddac_weight(rest[len("_antialias_layer."):],
                                   consumer.take(key, f"{layer} DDAC"))
            if sub is None:
                consumer.used[key] = NOT_NEEDED["num_batches_tracked"]
            else:
                put(layer, f"{layer}_antialias/{sub}", arr, key)
        else:
            sub, arr = lps_down_weight(spec.logits_model, rest,
                                       consumer.take(key, f"{layer} LPS"))
            put(layer, sub, arr, key)

    for key in list(consumer.tensors):
        array = np.asarray(consumer.tensors[key])
        if re.match(r"conv1(\.\d+)*\.(weight|bias)$", key):
            conv("stem_conv", key, key.rsplit(".", 1)[1])
        elif m := re.match(rf"bn1\.{_LEAF}$", key):
            bn("stem_bn", key, m.group(1))
        elif m := re.match(r"maxpool\.(\d+)\.(.*)$", key):
            # ImageNet stem: [LPS (conv1's stride), cpad, MaxPool2d(2, 1), LPS]
            index = int(m.group(1))
            if index not in (0, 3):
                raise ConversionError(f"Unexpected stem tensor {prefix}{key}.")
            pool(f"stem_down{1 if index == 0 else 2}", key, m.group(2))
        elif m := re.match(r"fc\.(weight|bias)$", key):
            put("logits", "kernel" if m.group(1) == "weight" else "bias",
                dense_kernel(consumer.take(key, "logits kernel")) if m.group(1) == "weight"
                else consumer.take(key, "logits bias"), key)
        elif m := re.match(_BLOCK + r"(.*)$", key):
            block = f"stage{m.group(1)}_block{int(m.group(2)) + 1}"
            rest = m.group(3)
            pool_index = 1 if spec.swap_conv_pool else 0
            if mm := re.match(r"conv(\d)\.0\.filt$", rest):
                blur(key)
            elif mm := re.match(rf"conv\d\.{pool_index}\.((?:component_selection|"
                                r"_antialias_layer)\..*)$", rest):
                pool(f"{block}_down", key, mm.group(1))
            elif mm := re.match(r"downsample\.0\.(_antialias_layer\..*)$", rest):
                pool(f"{block}_short_down", key, mm.group(1))
            elif mm := re.match(r"conv(\d)(?:\.\d+)*\.(weight|bias)$", rest):
                conv(f"{block}_{mm.group(1)}_conv", key, mm.group(2))
            elif mm := re.match(rf"bn(\d)\.{_LEAF}$", rest):
                bn(f"{block}_{mm.group(1)}_bn", key, mm.group(2))
            elif re.match(r"downsample\.\d+\.filt$", rest):
                blur(key)
            elif re.match(r"downsample\.\d+\.component_selection\.gumbel_tau$", rest):
                consumer.take(key, NOT_NEEDED["shortcut_tau"])
            elif mm := re.match(rf"downsample\.\d+\.{_LEAF}$", rest):
                leaf = mm.group(1)
                if leaf == "weight" and array.ndim == 4:
                    conv(f"{block}_short_conv", key, leaf)
                else:
                    bn(f"{block}_short_bn", key, leaf)
    return values, paths


_DEEPLAB_MODELS = ("deeplabv3plus_resnet_lps_unpool",)


def _deeplab_spec(ckpt):
    """The LPS repo's DDACSegmentation('deeplabv3plus_resnet_lps_unpool') checkpoint.

    Its `hyper_parameters` omit the backbone (`save_hyperparameters(ignore=['backbone'])`),
    so the backbone's settings are what its official test builds: `ResNet*Custom` with
    `padding_mode=classifier_padding_mode`, LPS with `LPSLogitLayers` (`logits_pad` the
    same padding), no antialias (refused if the tensors hold one), max-pool pad circular;
    override them (SamplingSpec fields, `lps_kwargs`) for other backbones. The head is the
    official one: ASPP at the backbone's stride 32 (`replace_stride_with_dilation` is not
    applied) with the rates of `output_stride` (16: 6/12/18, 8: 12/24/36), its third
    dilated branch zero-padded (the official ASPP does not pass `padding_mode` to it), one
    decoder conv, LPU without antialias.
    """
    hp = ckpt["hyper_parameters"]
    sd, _ = _state_dict(ckpt, "lps_deeplab")
    if hp.get("model_name") not in _DEEPLAB_MODELS:
        raise ConversionError(f"DeepLab model_name {hp.get('model_name')!r}; convertible: "
                              f"{_DEEPLAB_MODELS}.")
    if hp.get("separable_conv"):
        raise ConversionError("separable_conv=True is not converted.")
    unpool = _partial_kwargs(hp.get("unpool_layer"))
    selection = unpool.get("component_selection")
    if getattr(selection, "name", None) != "LPS_u":
        raise ConversionError(f"Only the LPS_u unpooling converts; got {selection!r}.")
    if unpool.get("antialias_layer") is not None or unpool.get("comp_convex"):
        raise ConversionError("An LPU with an antialias layer or comp_convex=True is not "
                              "converted.")
    padding = _OFFICIAL_PADDING.get(hp.get("classifier_padding_mode", "zeros"))
    if padding not in ("circular", "zeros"):
        raise ConversionError(f"classifier_padding_mode {hp.get('classifier_padding_mode')!r}.")
    bsd = {k[len("backbone."):]: v for k, v in sd.items() if k.startswith("backbone.")}
    if any("_antialias_layer" in k or k.endswith(".filt") for k in bsd):
        raise ConversionError("A DeepLab backbone with antialias layers is not converted.")
    depth, stem, _ = _architecture(bsd)
    if stem != "imagenet":
        raise ConversionError("The DeepLab backbone must have the ImageNet stem.")
    widths = {}
    for key, value in bsd.items():
        m = re.match(r"(?:layer(\d+)\.0\.conv\d|maxpool)\.\d+\.component_selection\."
                     r"get_logits\.conv1\.weight$", key)
        if m:
            widths[int(m.group(1) or 1)] = int(np.asarray(value).shape[0])
    n_stages = len(DEPTHS[depth][1])
    spec = dict(
        downsampling="lps", padding_mode=padding, logits_model="conv",
        logits_channels=tuple(widths.get(s + 1, None) for s in range(n_stages)),
        score_unfiltered=False, stem_antialias=False, init="torch", batch_norm="torch",
        maxpool_padding="circular",
        lps_kwargs={"scorer_head": "official", "scorer_init": "torch", "train_mode": "gumbel",
                    "inference_mode": "argmax", "padding_mode": padding})
    rates = (12, 24, 36) if hp.get("output_stride") == 8 else (6, 12, 18)
    classes = int(np.asarray(sd["classifier.classifier.3.weight"]).shape[0])
    model = {"depth": depth, "stem": stem, "num_classes": classes, "input_shape": None,
             "_deeplab": dict(output_stride=32, upsampling="lpu", lpu_antialias=None,
                              aspp_rates=rates, aspp_padding_modes=(padding, padding, "zeros"),
                              decoder_convs=1)}
    return model, spec


def _deeplab_head_values(consumer, model, rates, prefix):
    """Keras weight path -> array for the official DeepLabHeadV3PlusUnpool and unpooling."""
    placements = _Placements(consumer, model, prefix)
    values, paths, put = placements.values, placements.paths, placements.put
    convs = {"classifier.project.0": "low_level", "classifier.aspp.convs.0.0": "aspp_1x1",
             "classifier.aspp.convs.4.1": "aspp_pool_proj",
             "classifier.aspp.project.0": "aspp_proj",
             "classifier.classifier.0": "decoder_conv1"}
    for i, rate in enumerate(rates):
        convs[f"classifier.aspp.convs.{i + 1}.0"] = f"aspp_rate{rate}"
    bns = {}
    for key, name in convs.items():
        base, index = key.rsplit(".", 1)
        bns[f"{base}.{int(index) + 1}"] = name

    for key in list(consumer.tensors):
        base, leaf = key.rsplit(".", 1)
        if base == "classifier.classifier.0" and leaf == "weight":
            # The official decoder concatenates [low-level (48), ASPP]; ours [ASPP, low].
            kernel = conv_kernel(consumer.take(key, "decoder conv"))
            low = model.get_layer("low_level_conv").filters
            put("decoder_conv1_conv", "kernel",
                np.concatenate([kernel[:, :, low:], kernel[:, :, :low]], axis=2), key)
        elif base in convs and leaf == "weight":
            put(f"{convs[base]}_conv", "kernel", conv_kernel(consumer.take(key, "conv")), key)
        elif base in bns and leaf in BN_NAMES:
            put(f"{bns[base]}_bn", BN_NAMES[leaf], consumer.take(key, "BN"), key)
        elif base in bns and leaf == "num_batches_tracked":
            consumer.take(key, NOT_NEEDED["num_batches_tracked"])
        elif base == "classifier.classifier.3":
            arr = consumer.take(key, "classifier")
            put("classifier", "kernel" if leaf == "weight" else "bias",
                conv_kernel(arr) if leaf == "weight" else arr, key)
        elif re.match(r"(classifier\.)?unpool\.\d+\.component_selection\.gumbel_tau$", key):
            consumer.take(key, NOT_NEEDED["lpu_tau"])
    return values, paths


# --------------------------------------------------------------------------------------
# The APS repo's U-Nets (models/aps_models/unet_aps, baseline_models/baseline_unet,
# lpf_models/unet_lpf)
# --------------------------------------------------------------------------------------
_UNET_MODEL_KEYS = {"input_shape", "name", "up_padding_mode"}

# DoubleConv Sequential indices (conv1, bn1, conv2, bn2): with circular padding every conv
# is preceded by a circular_pad module.
_DOUBLE_CONV = {"circular": (1, 2, 5, 6), "zeros": (0, 1, 3, 4)}


def _unet_layout(sd):
    """(variant, padding_mode, levels) of an APS-repo U-Net state_dict (prefix removed)."""
    if "inc.double_conv.1.weight" in sd and np.asarray(sd["inc.double_conv.1.weight"]).ndim == 4:
        padding = "circular"
    elif "inc.double_conv.0.weight" in sd:
        padding = "zeros"
    else:
        raise ConversionError("U-Net 'inc.double_conv' holds no conv at index 0 (zero "
                              "padding) or 1 (circular padding).")
    bn = _DOUBLE_CONV[padding][1]
    if f"inc.double_conv.{bn}.running_mean" not in sd:
        raise ConversionError(
            "The U-Net's DoubleConv has no BatchNorm running statistics: an InstanceNorm "
            "U-Net (UNet_4down_InstanceNorm) or another normalisation, which our unet does "
            "not have (BatchNorm only).")
    levels = max((int(m.group(1)) for k in sd if (m := re.match(r"down(\d+)\.", k))),
                 default=0)
    if levels < 1:
        raise ConversionError("A U-Net state_dict without 'down<k>.*' tensors.")
    if any(k.startswith("down1.maxpool.") for k in sd):
        variant = "aps"
    elif "down1.maxpool_conv.2.filt" in sd:
        variant = "lpf"
    elif any(k.startswith("down1.maxpool_conv.3.") for k in sd):
        # [pad, MaxPool2d(2, 1), BlurPool, DoubleConv] without a 'filt' buffer.
        raise ConversionError(
            "An LPF U-Net whose BlurPools have no 'filt' buffer: sinc_mode=True (an FFT "
            "low-pass), which our unet does not have.")
    elif any(k.startswith("down1.maxpool_conv.") for k in sd):
        variant = "baseline"
    else:
        raise ConversionError("U-Net 'down1' is neither 'maxpool' (APS: pad, MaxPool2d, "
                              "ApsDown) nor 'maxpool_conv' (baseline / LPF).")
    if not any(k.startswith("up1.up.") for k in sd):
        raise ConversionError(
            "The U-Net has no 'up<k>.up.*' tensors: bilinear=True (nn.Upsample(mode="
            "'bilinear', align_corners=True)). Not converted: Keras' bilinear UpSampling2D "
            "does not align corners, so the outputs would differ.")
    return variant, padding, levels


def _unet_double_conv_prefix(variant, padding, level):
    """The state_dict prefix of encoder level `level`'s DoubleConv Sequential."""
    if variant == "aps":
        return f"down{level}.double_conv.double_conv."
    index = {"lpf": 3, "baseline": 2 if padding == "circular" else 1}[variant]
    return f"down{level}.maxpool_conv.{index}.double_conv."


def _unet_spec(sd):
    """(unet keyword arguments, SamplingSpec keyword arguments) of an APS-repo U-Net."""
    variant, padding, levels = _unet_layout(sd)
    c1, _, c2, _ = _DOUBLE_CONV[padding]
    inc1 = np.asarray(sd[f"inc.double_conv.{c1}.weight"])
    channels = [int(np.asarray(sd[f"inc.double_conv.{c2}.weight"]).shape[0])]
    for level in range(1, levels + 1):
        key = _unet_double_conv_prefix(variant, padding, level) + f"{c2}.weight"
        if key not in sd:
            raise ConversionError(f"The U-Net has no tensor {key!r} (level {level} of "
                                  f"{levels}, {variant}, {padding} padding).")
        channels.append(int(np.asarray(sd[key]).shape[0]))
    sizes = {int(np.asarray(v).shape[-1]) for k, v in sd.items() if k.endswith(".filt")}
    if len(sizes) > 1:
        raise ConversionError(f"The U-Net's blur buffers have different sizes {sorted(sizes)}.")
    size = sizes.pop() if sizes else None
    if (size is None) != (variant == "baseline"):
        raise ConversionError(f"A {variant} U-Net {'with' if size else 'without'} blur "
                              "buffers ('filt').")
    model = {"input_shape": (None, None, int(inc1.shape[1])),
             "out_channels": int(np.asarray(sd["outc.conv.weight"]).shape[0]),
             "channels": tuple(channels), "_variant": variant}
    spec = dict(padding_mode=padding, init="torch", batch_norm="torch")
    if variant == "aps":
        # ApsDown scores the blurred input (l2 unless told otherwise: not stored); ApsUp +
        # circular_pad((0, 1, 0, 1)) + Conv2d(in, in // 2, 2), circular in every network.
        spec.update(downsampling="aps", antialias=f"lowpass{size}" if size > 1 else None,
                    score_unfiltered=False, aps_norm="l2")
        model.update(upsampling="polyphase", up_padding_mode="circular")
    elif variant == "lpf":
        # BlurPool(circular_flag=False) pads by reflection (its pad_type default).
        spec.update(downsampling="blurpool", antialias=f"lowpass{size}")
        if padding == "zeros":
            spec["antialias_kwargs"] = {"padding_mode": "reflect"}
        model["upsampling"] = "transposed"
    else:
        spec["downsampling"] = "maxpool"
        model["upsampling"] = "transposed"
    return model, spec


def _check_unet_arch(ckpt, model):
    """main_mri.py stores `arch` (e.g. 'UNet_4down_aps'): it must agree with the tensors."""
    arch = ckpt.get("arch") if ckpt is not _unet_container(ckpt) else None
    if arch is None:
        return
    m = re.fullmatch(r"UNet_(\d)down(?:_(aps|lpf))?", str(arch))
    if m is None:
        raise ConversionError(f"U-Net arch {arch!r}: convertible are UNet_<n>down, "
                              "UNet_<n>down_aps and UNet_<n>down_lpf (BatchNorm, "
                              "bilinear=False).")
    levels, variant = int(m.group(1)), m.group(2) or "baseline"
    found = (len(model["channels"]) - 1, model["_variant"])
    if (levels, variant) != found:
        raise ConversionError(f"arch {arch!r} says {levels} levels, {variant}; the tensors "
                              f"say {found[0]} levels, {found[1]}.")


def _unet_values(consumer, model, spec, prefix):
    """Keras weight path -> array for every tensor of an APS-repo U-Net state_dict."""
    placements = _Placements(consumer, model, prefix)
    values, paths, put = placements.values, placements.paths, placements.put
    variant, padding, levels = _unet_layout(consumer.tensors)

    conv = placements.conv

    def blur(key):
        filt = consumer.take(key, NOT_NEEDED["filt"])
        size = filt.shape[-1]
        want_name = f"lowpass{size}" if size > 1 or spec.downsampling == "blurpool" else None
        if spec.antialias != want_name or not np.allclose(filt[:, 0], binomial_filter(size),
                                                         atol=1e-6):
            raise ConversionError(f"Blur buffer {prefix}{key} ({size}x{size}) is not the "
                                  f"binomial filter of antialias={spec.antialias!r}.")

    c1, b1, c2, b2 = _DOUBLE_CONV[padding]
    parts = {c1: ("1", "conv"), b1: ("1", "bn"), c2: ("2", "conv"), b2: ("2", "bn")}

    def double_conv(block, key, rest):
        m = re.fullmatch(rf"(\d+)\.{_LEAF}", rest)
        part = parts.get(int(m.group(1))) if m else None
        if part is None:
            raise ConversionError(f"Unexpected DoubleConv tensor {prefix}{key}.")
        layer, leaf = f"{block}_{part[0]}_{part[1]}", m.group(2)
        if part[1] == "conv":
            conv(layer, key, leaf)
        elif leaf == "num_batches_tracked":
            consumer.take(key, NOT_NEEDED["num_batches_tracked"])
        else:
            put(layer, BN_NAMES[leaf], consumer.take(key, f"{layer} {leaf}"), key)

    down_prefix = {k: _unet_double_conv_prefix(variant, padding, k)
                   for k in range(1, levels + 1)}
    for key in list(consumer.tensors):
        if key.startswith("inc.double_conv."):
            double_conv("inc", key, key[len("inc.double_conv."):])
        elif m := re.match(r"down(\d+)\.(.*)$", key):
            level, rest = int(m.group(1)), m.group(2)
            if key.startswith(down_prefix.get(level, "\0")):
                double_conv(f"down{level}_conv", key, key[len(down_prefix[level]):])
            elif rest in ("maxpool.2.filt", "maxpool_conv.2.filt"):
                blur(key)  # ApsDown / BlurPool(stride 2) blur
            else:
                raise ConversionError(f"Unexpected U-Net tensor {prefix}{key}.")
        elif m := re.match(r"up(\d+)\.(.*)$", key):
            block, rest = f"up{m.group(1)}", m.group(2)
            if rest.startswith("conv.double_conv."):
                double_conv(f"{block}_conv", key, rest[len("conv.double_conv."):])
            elif variant == "aps" and (mm := re.fullmatch(r"up\.2\.(weight|bias)", rest)):
                conv(f"{block}_up_conv", key, mm.group(1))  # Conv2d(in, in // 2, 2)
            elif variant == "baseline" and (mm := re.fullmatch(r"up\.(weight|bias)", rest)):
                conv(f"{block}_up", key, mm.group(1))  # ConvTranspose2d (in, out, 2, 2)
            elif variant == "lpf" and (mm := re.fullmatch(r"up\.0\.(weight|bias)", rest)):
                conv(f"{block}_up", key, mm.group(1))
            elif (variant, rest) in (("aps", "up.0.filt"), ("lpf", "up.1.filt")):
                blur(key)  # ApsUp / BlurPool(stride 1) blur
            else:
                raise ConversionError(f"Unexpected U-Net tensor {prefix}{key}.")
        elif m := re.fullmatch(r"outc\.conv\.(weight|bias)", key):
            conv("outc", key, m.group(1))
        else:
            raise ConversionError(f"Unexpected U-Net tensor {prefix}{key}.")
    return values, paths
