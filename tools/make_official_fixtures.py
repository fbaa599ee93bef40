#!/usr/bin/env python
"""Generate reference fixtures from the *official* PyTorch code of LPS and APS.

This script is NOT part of the lps_keras package and is never run by CI. It needs
PyTorch, which lps_keras must not depend on. It was run as:

    python3 -m venv /work/torchenv
    /work/torchenv/bin/pip install numpy torch torchvision      # PyPI: torch 2.14.1, torchvision 0.29.1
    /work/torchenv/bin/python tools/make_official_fixtures.py \
        --lps-mirror /work/.mirror/raymondyeh07+learnable_polyphase_sampling/repo \
        --aps-mirror /work/.mirror/achaman2+truly_shift_invariant_cnns/repo \
        --out tests/fixtures/official

Official code (read-only git mirrors; the script extracts HEAD with `git archive`
into a temporary directory and checks the commit):
  * LPS (NeurIPS 2022): github.com/raymondyeh07/learnable_polyphase_sampling
    commit ef28ff2... (package learn_poly_sampling)
  * APS (CVPR 2021):    github.com/achaman2/truly_shift_invariant_cnns
    commit 9c319a2... (cifar10_training/model_classes)

Only imports that are irrelevant to the math are replaced:
  * pytorch_lightning: a tiny LightningModule (= nn.Module + save_hyperparameters
    that records the __init__ arguments the way Lightning 1.4 does) and empty
    callback classes;
  * torchmetrics: `accuracy`, `Accuracy`, `ConfusionMatrix` placeholders (metrics only);
  * cv2: empty module (imported by the DeepLab third-party PASA layers for debug images);
  * torchvision.models.utils (gone from recent torchvision): load_state_dict_from_url;
  * torchvision.models.resnet._resnet: the official code calls the torchvision
    0.10 signature _resnet(arch, block, layers, pretrained, progress, **kw) =
    ResNet(block, layers, **kw); the installed torchvision has another signature,
    so the 0.10 function (without the pretrained download) is put back;
  * the APS repo imports `model_classes.models_for_cifar10.*`, a path that does
    not exist in the repo; those names are aliased to the real
    `model_classes.*` modules of the same commit.
No layer or model math is stubbed or re-implemented.

The U-Nets (`--only unets`, from the APS repo's top-level `models/` package) need two
more pieces of plumbing (see `import_aps_unets` / `_CpuCuda`): the LPS `models` package is
hidden while the APS `models` namespace package is imported, and `torch.Tensor.cuda` is the
identity while they run (ApsDown/ApsUp call `.cuda()`). Upstream bug worked around:
`UNet_3down_aps` reads an undefined global `aps_criterion`; the generator defines it
('l2') on the imported module.

Everything is seeded, float32, NCHW, CPU.
"""
import argparse
import functools
import inspect
import io
import json
import lzma
import os
import subprocess
import sys
import tempfile
import types

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LPS_COMMIT_PREFIX = "ef28ff2"
APS_COMMIT_PREFIX = "9c319a2"
LPS_REPO = "https://github.com/raymondyeh07/learnable_polyphase_sampling"
APS_REPO = "https://github.com/achaman2/truly_shift_invariant_cnns"

torch.set_default_dtype(torch.float32)
torch.use_deterministic_algorithms(True)
torch.set_num_threads(2)


# --------------------------------------------------------------------------------------
# Source extraction and import plumbing
# --------------------------------------------------------------------------------------
def extract(mirror, dest, prefix):
    commit = subprocess.check_output(["git", "-C", mirror, "rev-parse", "HEAD"], text=True).strip()
    assert commit.startswith(prefix), (mirror, commit, prefix)
    os.makedirs(dest, exist_ok=True)
    archive = subprocess.check_output(["git", "-C", mirror, "archive", "HEAD"])
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    return commit


def install_stubs():
    """Fake modules for imports that have nothing to do with the math."""
    pl = types.ModuleType("pytorch_lightning")

    class LightningModule(nn.Module):
        CHECKPOINT_HYPER_PARAMS_KEY = "hyper_parameters"
        CHECKPOINT_HYPER_PARAMS_NAME = "hparams_name"

        def save_hyperparameters(self, ignore=None):
            # Lightning 1.4 (utilities/parsing.get_init_args): the arguments of the
            # calling __init__ that appear in its signature, **kwargs flattened in,
            # self/args/kwargs/__class__ removed; _hparams_name = "kwargs".
            frame = inspect.currentframe().f_back
            _, _, _, local_vars = inspect.getargvalues(frame)
            cls = local_vars["__class__"]
            params = inspect.signature(cls.__init__).parameters
            kwargs_var = [n for n, p in params.items() if p.kind == p.VAR_KEYWORD]
            args_var = [n for n, p in params.items() if p.kind == p.VAR_POSITIONAL]
            local_args = {k: local_vars[k] for k in params.keys()}
            for kv in kwargs_var:
                local_args.update(local_args.get(kv, {}))
            exclude = set(["self", "__class__", "frame", "frame_args"] + kwargs_var + args_var
                          + list(ignore or []))
            self._hparams = {k: v for k, v in local_args.items() if k not in exclude}
            self._hparams_name = "kwargs"

        @property
        def hparams(self):
            return self._hparams

        def log(self, *a, **k):
            pass

    pl.LightningModule = LightningModule
    cb = types.ModuleType("pytorch_lightning.callbacks")
    for name in ["Callback", "LearningRateMonitor", "ModelCheckpoint", "EarlyStopping"]:
        setattr(cb, name, type(name, (object,), {}))
    pl.callbacks = cb
    util = types.ModuleType("pytorch_lightning.utilities")
    pl.utilities = util
    sys.modules.update({"pytorch_lightning": pl, "pytorch_lightning.callbacks": cb,
                        "pytorch_lightning.utilities": util})

    def _accuracy(*a, **k):  # logging only
        raise RuntimeError("torchmetrics stub: not used by the fixtures")

    names = ["torchmetrics", "torchmetrics.functional", "torchmetrics.functional.classification",
             "torchmetrics.functional.classification.accuracy", "torchmetrics.classification"]
    for n in names:
        m = types.ModuleType(n)
        m.accuracy = _accuracy
        m.Accuracy = type("Accuracy", (object,), {"__init__": lambda self, *a, **k: None})
        m.ConfusionMatrix = type("ConfusionMatrix", (object,), {"__init__": lambda self, *a, **k: None})
        sys.modules[n] = m

    # torchvision 0.10 _resnet signature used by learn_poly_sampling.models.resnet_custom
    import torchvision.models.resnet as tvr

    def _resnet_tv010(arch, block, layers, pretrained, progress, **kwargs):
        assert not pretrained
        return tvr.ResNet(block, layers, **kwargs)

    # cv2: imported by thirdparty/network/layers/downsample.py for PASA debug images only
    sys.modules["cv2"] = types.ModuleType("cv2")
    # torchvision.models.utils (removed after 0.10) only provided load_state_dict_from_url
    tvu = types.ModuleType("torchvision.models.utils")
    tvu.load_state_dict_from_url = torch.hub.load_state_dict_from_url
    sys.modules["torchvision.models.utils"] = tvu
    return tvr, _resnet_tv010


def import_lps(root):
    sys.path.insert(0, os.path.join(root, "learn_poly_sampling"))
    import layers  # noqa: F401
    import models  # noqa: F401
    import layers.polydown as polydown
    import layers.polyup as polyup
    import layers.lowpass_filter as lowpass
    import layers.lps_logit_layers as logit_layers
    import models.resnet_custom as resnet_custom
    return types.SimpleNamespace(layers=layers, polydown=polydown, polyup=polyup,
                                 lowpass=lowpass, logit_layers=logit_layers,
                                 resnet_custom=resnet_custom, models=models)


def import_aps(root):
    sys.path.insert(0, os.path.join(root, "cifar10_training"))
    import model_classes
    sys.modules["model_classes.models_for_cifar10"] = model_classes
    import model_classes.circular_pad_layer as cpl
    sys.modules["model_classes.models_for_cifar10.circular_pad_layer"] = cpl
    import model_classes.aps_models.apspool as apspool
    sys.modules["model_classes.models_for_cifar10.aps_models"] = sys.modules["model_classes.aps_models"]
    sys.modules["model_classes.models_for_cifar10.aps_models.apspool"] = apspool
    import model_classes.aps_models.resnet as aps_resnet
    import model_classes.lpf_models.blurpool as blurpool
    return types.SimpleNamespace(apspool=apspool, aps_resnet=aps_resnet, blurpool=blurpool)


# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------
def seed(s):
    import random
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def npf(t):
    # always a copy: a numpy view of a live parameter would follow later in-place updates
    t = t.detach().cpu()
    if t.is_floating_point():
        return t.to(torch.float32).numpy().copy()
    return t.numpy().copy()


class Writer:
    def __init__(self, out, lps_commit, aps_commit):
        self.out = out
        self.commits = {"lps": lps_commit, "aps": aps_commit}
        self.index = []
        os.makedirs(out, exist_ok=True)

    def meta(self, repo, **kw):
        m = {"official_repo": LPS_REPO if repo == "lps" else APS_REPO,
             "official_commit": self.commits[repo]}
        m.update(kw)
        return m

    def save(self, name, arrays, meta, module=None):
        d = {}
        for k, v in arrays.items():
            d[k] = npf(v) if torch.is_tensor(v) else np.asarray(v)
        if module is not None:
            for k, v in module.state_dict().items():
                d["param/" + k] = npf(v)
        d["meta"] = np.array(json.dumps(meta, sort_keys=True, default=str))
        path = os.path.join(self.out, name + ".npz")
        np.savez_compressed(path, **d)
        summary = {k: float(np.abs(v).max()) for k, v in d.items()
                   if k in ("output", "probs", "logits") and v.dtype.kind == "f" and v.size}
        self.index.append({"file": name + ".npz", "class": meta.get("official_class"),
                           "args": meta.get("args"), "mode": meta.get("mode"),
                           "max_abs": summary, "bytes": os.path.getsize(path)})
        print("wrote", path, os.path.getsize(path), summary)


def randomize_bn(bn, g):
    with torch.no_grad():
        bn.weight.copy_(1.0 + 0.3 * torch.randn(bn.weight.shape, generator=g))
        bn.bias.copy_(0.2 * torch.randn(bn.bias.shape, generator=g))
        bn.running_mean.copy_(0.5 * torch.randn(bn.running_mean.shape, generator=g))
        bn.running_var.copy_(0.5 + torch.rand(bn.running_var.shape, generator=g))
        bn.num_batches_tracked.fill_(100)


def phase_scaled_input(g, n, c, h, w):
    """Random input whose polyphase components have clearly different norms (no ties)."""
    x = torch.randn(n, c, h, w, generator=g)
    scale = 0.5 + torch.rand(n, 1, 2, 2, generator=g) * 1.5
    scale = scale.repeat(1, 1, (h + 1) // 2, (w + 1) // 2)[:, :, :h, :w]
    return (x * scale).contiguous()


# --------------------------------------------------------------------------------------
# a. APS pooling, b. LPF
# --------------------------------------------------------------------------------------
def make_aps_pool(W, A):
    ApsPool = A.apspool.ApsPool
    comp_select = A.apspool.polyphase_comp_select
    # The code accepts 'l2', 'l1', 'l_infty', and '<crit>min' for crit in l2/l1 ('l2min',
    # 'l1min': apspool_criterion[:-3] must be 'l2'/'l1'). 'l2_min' raises ValueError.
    criteria = ["l2", "l1", "l_infty", "l2min", "l1min"]
    g = torch.Generator().manual_seed(1)
    cases = []
    for crit in criteria:
        for fs in range(1, 8):
            cases.append((crit, fs, True, "reflect", (2, 5, 8, 8)))
    cases += [("l2", 1, True, "reflect", (2, 5, 7, 7)), ("l2", 4, True, "reflect", (2, 5, 7, 9)),
              ("l2", 3, False, "reflect", (2, 5, 8, 8)), ("l2", 4, False, "zero", (2, 5, 8, 8)),
              ("l2", 4, False, "replicate", (2, 3, 8, 8))]
    for crit, fs, circ, pad_type, shape in cases:
        seed(100)
        x = phase_scaled_input(g, *shape)
        m = ApsPool(channels=shape[1], pad_type=pad_type, filt_size=fs, stride=2,
                    circular_flag=circ, apspool_criterion=crit).eval()
        with torch.no_grad():
            y = m(x)
            idx = comp_select(x, apspool_criterion=crit)
        args = dict(channels=shape[1], pad_type=pad_type, filt_size=fs, stride=2,
                    circular_flag=circ, apspool_criterion=crit)
        name = f"aps_pool_{crit}_f{fs}" + ("" if circ else f"_{pad_type}") + \
               ("" if shape[2:] == (8, 8) else f"_{shape[2]}x{shape[3]}")
        W.save(name, {"input": x, "output": y, "indices": idx},
               W.meta("aps", official_class="model_classes.aps_models.apspool.ApsPool",
                      args=args, mode="stateless (indices from polyphase_comp_select on the"
                      " UNBLURRED input, then blur, then select)",
                      pad_sizes_lrtb=m.pad_sizes), module=m)
    # 'l2_min' is rejected by the official code: record that
    try:
        comp_select(torch.zeros(1, 1, 4, 4), apspool_criterion="l2_min")
        rejected = False
    except ValueError:
        rejected = True
    return rejected


def make_lpf(W, A, L):
    g = torch.Generator().manual_seed(2)
    for fs in range(1, 8):
        x = torch.randn(2, 5, 9, 8, generator=g)
        m = A.blurpool.BlurPool(channels=5, pad_type="reflect", filt_size=fs, stride=2,
                                circular_flag=True).eval()
        with torch.no_grad():
            y = m(x)
        W.save(f"blurpool_aps_f{fs}", {"input": x, "output": y},
               W.meta("aps", official_class="model_classes.lpf_models.blurpool.BlurPool",
                      args=dict(channels=5, pad_type="reflect", filt_size=fs, stride=2,
                                pad_off=0, circular_flag=True),
                      mode="stateless", pad_sizes_lrtb=m.pad_sizes), module=m)
    for fs in range(1, 8):
        for pad_mode in ["circular", "reflect"] if fs in (2, 3) else ["circular"]:
            x = torch.randn(2, 5, 8, 8, generator=g)
            m = L.lowpass.LowPassFilter(in_channels=5, filter_size=fs, padding="same",
                                        padding_mode=pad_mode, filter_scale=1).eval()
            with torch.no_grad():
                y = m(x)
            W.save(f"lowpass_lps_f{fs}_{pad_mode}", {"input": x, "output": y},
                   W.meta("lps", official_class="layers.lowpass_filter.LowPassFilter",
                          args=dict(in_channels=5, filter_size=fs, padding="same",
                                    padding_mode=pad_mode, filter_scale=1),
                          mode="stateless (stride 1)", pad_tuple_lrtb=m.pad_tuple), module=m)
    # LPU antialias uses filter_scale=2 (get_unpool_method antialias_scale)
    x = torch.randn(2, 5, 8, 8, generator=g)
    m = L.lowpass.LowPassFilter(in_channels=5, filter_size=3, padding="same",
                                padding_mode="circular", filter_scale=2).eval()
    with torch.no_grad():
        y = m(x)
    W.save("lowpass_lps_f3_circular_scale2", {"input": x, "output": y},
           W.meta("lps", official_class="layers.lowpass_filter.LowPassFilter",
                  args=dict(in_channels=5, filter_size=3, padding="same",
                            padding_mode="circular", filter_scale=2),
                  mode="stateless (stride 1)"), module=m)


# --------------------------------------------------------------------------------------
# c. DDAC
# --------------------------------------------------------------------------------------
def make_ddac(W, L):
    g = torch.Generator().manual_seed(3)
    for group in (1, 8):
        for pad in ("circular", "reflect"):
            seed(300 + group)
            m = L.lowpass.DDAC(in_channels=16, kernel_size=3, pad_type=pad, group=group,
                               kernel_scale=1)
            randomize_bn(m.bn, g)
            m.eval()
            x = torch.randn(2, 16, 8, 8, generator=g)
            with torch.no_grad():
                y = m(x)
            W.save(f"ddac_g{group}_k3_{pad}", {"input": x, "output": y},
                   W.meta("lps", official_class="layers.lowpass_filter.DDAC",
                          args=dict(in_channels=16, kernel_size=3, pad_type=pad, group=group,
                                    kernel_scale=1),
                          mode="eval (BatchNorm running statistics, eps=1e-5)"), module=m)


# --------------------------------------------------------------------------------------
# d. LPS down, e. LPS up
# --------------------------------------------------------------------------------------
LOGIT_MODELS = ["LPSLogitLayers", "LPSLogitLayersSkip", "SAInner", "SAInner_bn",
                "GraphLogitLayers", "ComponentPerceptron"]


# The default PyTorch init gives near-uniform phase probabilities on these small inputs;
# the scorer weights (dim >= 2) are multiplied by these factors so that the logits have a
# spread of order 1 and the softmax / argmax fixtures are discriminative.
LOGIT_BOOST = {"LPSLogitLayers": 4.0, "LPSLogitLayersSkip": 3.0, "SAInner": 3.0,
               "SAInner_bn": 3.0, "GraphLogitLayers": 4.0, "ComponentPerceptron": 3.0}


def boost_scorer(m, factor):
    with torch.no_grad():
        for n, p in m.named_parameters():
            if "get_logits" in n and p.dim() >= 2:
                p.mul_(factor)


def build_lpd(L, logits_model, c, hid, train_convex, tau, antialias=None,
              selection_noantialias=False):
    P = L.polydown
    get_logits = L.layers.get_logits_model(logits_model)
    m = P.PolyphaseInvariantDown2D(
        stride=2, component_selection=P.LPS, pass_extras=True, in_channels=c,
        hid_channels=hid, comp_fix_train=False, get_logits=get_logits,
        antialias_layer=antialias, use_get_logits=True, no_antialias=False,
        comp_train_convex=train_convex, comp_convex=False, logits_pad="circular",
        selection_noantialias=selection_noantialias)
    with torch.no_grad():
        m.component_selection.gumbel_tau.fill_(tau)
    return m


def make_lps_down_up(W, L):
    g = torch.Generator().manual_seed(4)
    tau = 0.5
    N, C, H = 2, 5, 8
    for lm in LOGIT_MODELS:
        hid = C if lm == "LPSLogitLayersSkip" else 7
        seed(400 + LOGIT_MODELS.index(lm))
        m = build_lpd(L, lm, C, hid, train_convex=True, tau=tau)
        boost_scorer(m, LOGIT_BOOST[lm])
        for mod in m.modules():
            if isinstance(mod, nn.BatchNorm2d):
                randomize_bn(mod, g)
        x = phase_scaled_input(g, N, C, H, H)
        args = dict(stride=2, component_selection="layers.polydown.LPS",
                    get_logits=f"layers.{lm}", in_channels=C, hid_channels=hid,
                    pass_extras=True, logits_pad="circular", comp_train_convex=True,
                    comp_convex=False, comp_fix_train=False, antialias_layer=None)
        cls = "layers.polydown.PolyphaseInvariantDown2D"
        # eval / argmax
        m.eval()
        with torch.no_grad():
            y, logits = m(x, ret_prob=True)
        W.save(f"lps_down_{lm}_eval", {"input": x, "output": y, "logits": logits,
                                        "indices": torch.argmax(logits, -1)},
               W.meta("lps", official_class=cls, args=args,
                      mode="eval: component_mode='test' (argmax of logits, torch.max ties ->"
                      " first index); returns (out, logits)", tau=tau), module=m)
        # train / softmax(logits / tau), no Gumbel noise
        state_before = {k: v.clone() for k, v in m.state_dict().items()}
        m.train()
        with torch.no_grad():
            y, (probs, logits) = m(x, ret_prob=True)
        after = {"param_after/" + k: v.clone() for k, v in m.state_dict().items()}
        m.load_state_dict(state_before)
        W.save(f"lps_down_{lm}_train_softmax",
               dict({"input": x, "output": y, "logits": logits, "probs": probs}, **after),
               W.meta("lps", official_class=cls, args=args,
                      mode="train: component_mode='train_convex' = softmax(logits/tau), no Gumbel"
                      " noise; returns (out, (probs, logits)); param/ = state before the call,"
                      " param_after/ = state after it (BatchNorm running stats, momentum 0.1)",
                      tau=tau), module=m)

        # eval with comp_convex=True: component_mode 'test_convex' (softmax at test time)
        if lm == "LPSLogitLayers":
            m.eval()
            m.comp_convex = True
            with torch.no_grad():
                y, probs = m(x, ret_prob=True)
            m.comp_convex = False
            W.save(f"lps_down_{lm}_eval_convex", {"input": x, "output": y, "probs": probs},
                   W.meta("lps", official_class=cls, args=dict(args, comp_convex=True),
                          mode="eval: component_mode='test_convex' = softmax(logits/tau);"
                               " returns (out, probs)", tau=tau), module=m)

        # e. paired LPU: upsample the LPD output with the LPD probabilities / logits
        if lm == "LPSLogitLayers":
            make_lpu(W, L, m, x, tau, g)

    # LPS with a LowPassFilter antialias, with and without selection_noantialias
    for sel_noaa in (False, True):
        seed(450)
        aa = functools.partial(L.lowpass.LowPassFilter, filter_size=3, filter_scale=1,
                               padding="same", padding_mode="circular")
        m = build_lpd(L, "LPSLogitLayers", C, 7, train_convex=True, tau=tau, antialias=aa,
                      selection_noantialias=sel_noaa)
        boost_scorer(m, LOGIT_BOOST["LPSLogitLayers"])
        x = phase_scaled_input(g, N, C, H, H)
        args = dict(stride=2, component_selection="layers.polydown.LPS",
                    get_logits="layers.LPSLogitLayers", in_channels=C, hid_channels=7,
                    pass_extras=True, logits_pad="circular", comp_train_convex=True,
                    antialias_layer="LowPassFilter(filter_size=3, padding='same', "
                                    "padding_mode='circular', filter_scale=1)",
                    selection_noantialias=sel_noaa)
        for mode in ("eval", "train_softmax"):
            m.train(mode == "train_softmax")
            with torch.no_grad():
                y, p = m(x, ret_prob=True)
            arr = {"input": x, "output": y}
            if mode == "eval":
                arr.update(logits=p, indices=torch.argmax(p, -1))
            else:
                arr.update(probs=p[0], logits=p[1])
            W.save(f"lps_down_LPSLogitLayers_lpf3{'_selnoaa' if sel_noaa else ''}_{mode}", arr,
                   W.meta("lps", official_class="layers.polydown.PolyphaseInvariantDown2D",
                          args=args, mode=mode, tau=tau), module=m)

    # max_2_norm (official name of the APS-style criterion inside the LPS repo)
    m = L.polydown.PolyphaseInvariantDown2D(stride=2, component_selection=L.polydown.max_p_norm,
                                            in_channels=C, antialias_layer=None)
    x = phase_scaled_input(g, N, C, H, H)
    with torch.no_grad():
        y, idx = m(x, ret_prob=True)
    W.save("lps_repo_max_2_norm", {"input": x, "output": y, "indices": idx},
           W.meta("lps", official_class="layers.polydown.PolyphaseInvariantDown2D",
                  args=dict(stride=2, component_selection="layers.polydown.max_p_norm (p=2)",
                            in_channels=C), mode="stateless"), module=m)


def make_lpu(W, L, lpd, x, tau, g):
    P = L.polyup
    C = x.shape[1]
    for comp_convex in (False, True):
        seed(500)
        up = P.PolyphaseInvariantUp2D(component_selection=P.LPS_u, get_samples=False,
                                      comp_convex=comp_convex, stride=2, pass_extras=True,
                                      in_channels=C, hid_channels=C, antialias_layer=None)
        with torch.no_grad():
            up.component_selection.gumbel_tau.fill_(tau)
        args = dict(component_selection="layers.polyup.LPS_u", get_samples=False,
                    comp_convex=comp_convex, stride=2, pass_extras=True, in_channels=C,
                    hid_channels=C, antialias_layer=None)
        cls = "layers.polyup.PolyphaseInvariantUp2D"
        # eval: paired LPD in eval returns logits; LPU one-hot(argmax) (or softmax(logits/tau))
        lpd.eval()
        up.eval()
        with torch.no_grad():
            xd, logits = lpd(x, ret_prob=True)
            y, _ = up(xd, ret_prob=True, prob=logits)
        mode = ("eval: component_mode='test_convex' softmax(logits/tau)" if comp_convex else
                "eval: component_mode='test' one_hot(argmax(logits))")
        W.save(f"lps_up_{'convex_' if comp_convex else ''}eval",
               {"lpd_input": x, "input": xd, "logits": logits, "output": y},
               W.meta("lps", official_class=cls, args=args, mode=mode, tau=tau,
                      paired_lpd="lps_down_LPSLogitLayers_* (same param/ weights under lpd/)"),
               module=up)
        if comp_convex:
            continue
        lpd.train()
        up.train()
        with torch.no_grad():
            xd, prob = lpd(x, ret_prob=True)
            y, _ = up(xd, ret_prob=True, prob=prob)
        W.save("lps_up_train",
               {"lpd_input": x, "input": xd, "probs": prob[0], "logits": prob[1], "output": y},
               W.meta("lps", official_class=cls, args=args, tau=tau,
                      mode="train: component_mode='train', get_samples=False -> uses prob[0] (the"
                           " LPD softmax(logits/tau) probabilities); no Gumbel sampling"),
               module=up)


# --------------------------------------------------------------------------------------
# f/g. networks
# --------------------------------------------------------------------------------------
def grid_weights(model, p_zero=0.8, seed_=0, skip=("gumbel_tau", "filt"), fc_gain=1.0):
    """Replace every conv / linear weight by a sparse ternary grid {-a, 0, +a} with the
    same standard deviation as the official initialisation, rounded to a power of 2**(1/4)
    (so the checkpoint compresses to ~1 bit per weight); the final fc weight is fc_gain
    times larger so that the logits are not tiny. Non-BN biases: multiples of 1/64."""
    g = torch.Generator().manual_seed(seed_)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(s in name for s in skip):
                continue
            if p.dim() >= 2:
                std = float(p.std())
                a = std / np.sqrt(1.0 - p_zero)
                a = float(2.0 ** (np.round(np.log2(a) * 4) / 4))  # a = 2**(k/4): few distinct values
                u = torch.rand(p.shape, generator=g)
                s = torch.where(u < p_zero, torch.zeros_like(u),
                                torch.where(u < p_zero + (1 - p_zero) / 2, -torch.ones_like(u),
                                            torch.ones_like(u)))
                if name.endswith("fc.weight"):
                    a *= fc_gain  # logits with a spread of order 1 (power of two: stays on the grid)
                p.copy_(s * a)
            elif name.endswith("bias") and "bn" not in name and "downsample.2" not in name:
                p.copy_(torch.round(torch.randn(p.shape, generator=g) * 0.05 * 64) / 64)


def calibrate_bn(model, x, grid=1.0 / 256):
    """Set BN running stats to the batch stats of `x` (cumulative average), then round
    them to a coarse grid, and give BN affine parameters coarse random values."""
    g = torch.Generator().manual_seed(7)
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(torch.round((1.0 + 0.25 * torch.randn(bn.weight.shape, generator=g)) * 64) / 64)
            bn.bias.copy_(torch.round(0.1 * torch.randn(bn.bias.shape, generator=g) * 64) / 64)
            bn.reset_running_stats()
            bn.momentum = None
        model.train()
        model(x)
        for bn in bns:
            bn.momentum = 0.1
            bn.running_mean.copy_(torch.round(bn.running_mean / grid) * grid)
            bn.running_var.copy_(torch.clamp(torch.round(bn.running_var / grid) * grid, min=grid))
            bn.num_batches_tracked.fill_(1000)
    model.eval()


def save_xz(obj, path):
    buf = io.BytesIO()
    torch.save(obj, buf)
    with lzma.open(path, "wb", preset=9 | lzma.PRESET_EXTREME) as f:
        f.write(buf.getvalue())
    return len(buf.getvalue()), os.path.getsize(path)


def write_keys(sd, path, header):
    with open(path, "w") as f:
        f.write(header.rstrip() + "\n")
        for k, v in sd.items():
            f.write(f"{k}\t{tuple(v.shape)}\t{str(v.dtype).replace('torch.', '')}\n")


def sample_state(sd, prefix, full_max=4096, n_sample=1024, seed_=11):
    """Full values for small tensors; for large ones, fixed sampled entries + sums."""
    out = {}
    for k, v in sd.items():
        v = v.detach()
        if v.numel() <= full_max:
            out[f"{prefix}full/{k}"] = npf(v)
        else:
            g = torch.Generator().manual_seed(seed_)
            idx = torch.randperm(v.numel(), generator=g)[:n_sample].sort().values
            out[f"idx/{k}"] = idx.numpy().astype(np.int32)
            out[f"{prefix}val/{k}"] = npf(v.reshape(-1)[idx])
            out[f"{prefix}sum/{k}"] = np.float64(v.double().sum())
            out[f"{prefix}sumsq/{k}"] = np.float64((v.double() ** 2).sum())
    return out


class FLAGS_CIFAR_LPS:
    """train.py flags of the LPS CIFAR-10 ResNet-18 run reproduced here."""
    model = "ResNet18Custom"
    dataset = "cifar10"
    pool_method = "LPS"
    circular_pad = True
    logits_model = "LPSLogitLayers"
    logits_channels = "configs/logits_channels/resnet18_imagenet.json"
    LPS_pad = "circular"
    LPS_gumbel = False
    LPS_convex = False
    LPS_train_convex = True
    selection_noantialias = False
    antialias_mode = "skip"
    antialias_size = None
    antialias_padding = "same"
    antialias_padding_mode = "circular"
    antialias_group = 8
    pool_k = 2
    swap_conv_pool = False
    conv1_stride = False
    maxpool_zpad = False
    optimizer = "SGD"
    optimizer_cfg = "configs/resnet18_orig_opt.json"
    learning_rate = 0.1
    warmup_epochs = 0


def build_lps_resnet18(L, lps_root):
    """The CIFAR-10 LPS ResNet-18 as train.py builds it (`FLAGS_CIFAR_LPS`)."""
    return build_lps_model(L, lps_root, FLAGS_CIFAR_LPS, (3, 32, 32), 10, imagenet=False)


def build_lps_model(L, lps_root, FLAGS, input_shape, num_classes, imagenet):
    """An official LPS classifier as train.py builds it from `FLAGS`; `imagenet` keeps
    conv1's 7x7 support and the max-pool (ImageNet stem) instead of the CIFAR stem."""
    from utils.core_utils import loadcfg
    cwd = os.getcwd()
    os.chdir(os.path.join(lps_root, "learn_poly_sampling"))
    try:
        pool_layer = L.layers.get_pool_method(FLAGS.pool_method, FLAGS)
        logits_channels = loadcfg(FLAGS.logits_channels)
        optimizer_kwargs = loadcfg(FLAGS.optimizer_cfg)
    finally:
        os.chdir(cwd)
    extras_model = {
        'logits_channels': logits_channels,
        'maxpool_zpad': FLAGS.maxpool_zpad,
        'swap_conv_pool': FLAGS.swap_conv_pool,
        'conv1_stride': FLAGS.conv1_stride,
        'inc_conv1_support': imagenet,
        'apply_maxpool': imagenet,
        'ret_prob': True,
        'ret_logits': True,
        'forward_pool_method': FLAGS.pool_method,
    }
    return L.models.get_model(FLAGS.model)(
        input_shape, num_classes,
        padding_mode='circular' if FLAGS.circular_pad else 'zeros',
        learning_rate=FLAGS.learning_rate,
        optimizer=L.models.get_optimizer(FLAGS.optimizer),
        optimizer_kwargs=optimizer_kwargs,
        pooling_layer=pool_layer,
        extras_model=extras_model,
        warmup_epochs=FLAGS.warmup_epochs,
    )


def lightning_checkpoint(model, epoch, global_step):
    """What pytorch-lightning 1.4.0 CheckpointConnector.dump_checkpoint writes."""
    return {
        "epoch": epoch,
        "global_step": global_step,
        "pytorch-lightning_version": "1.4.0",
        "state_dict": model.state_dict(),
        "callbacks": {},
        "optimizer_states": [],
        "lr_schedulers": [],
        "hparams_name": model._hparams_name,
        "hyper_parameters": dict(model.hparams),
    }


def lps_param_groups(model):
    """AbstractBaseClassifierModel.configure_optimizers (models/core.py)."""
    net_pars, pool_pars = [], []
    net_names, pool_names = [], []
    for n, p in model.named_parameters():
        if "component_selection" in n and p.requires_grad_:  # (requires_grad_ is a method: always truthy)
            pool_pars.append(p)
            pool_names.append(n)
        elif p.requires_grad_:
            net_pars.append(p)
            net_names.append(n)
    return [{"params": net_pars}, {"params": pool_pars, "weight_decay": 0}], net_names, pool_names


def set_tau(model, tau):
    with torch.no_grad():
        for n, b in model.named_buffers():
            if "gumbel_tau" in n:
                b.fill_(tau)


def make_lps_resnet18(W, L, lps_root, out, steps=2):
    tau = 0.5
    seed(42)  # train.py: pl.utilities.seed.seed_everything(FLAGS.seed=42) (after model build)
    model = build_lps_resnet18(L, lps_root)
    set_tau(model, tau)
    grid_weights(model, seed_=1, fc_gain=0.125)  # ResNet18Custom features are large: keep logits O(1)
    g = torch.Generator().manual_seed(8)
    xcal = torch.randn(16, 3, 32, 32, generator=g)
    calibrate_bn(model, xcal)
    model.eval()
    x = torch.randn(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        logp = model(x)
        raw = model.core(x)
        x_shift = torch.roll(x, shifts=(1, 3), dims=(2, 3))
        logp_shift = model(x_shift)
    shift_diff = float((logp - logp_shift).abs().max())
    ck = lightning_checkpoint(model, epoch=0, global_step=0)
    raw_size, xz_size = save_xz(ck, os.path.join(out, "lps_resnet18_cifar10_circular.ckpt.xz"))
    write_keys(model.state_dict(), os.path.join(out, "lps_resnet18_cifar10_circular.keys.txt"),
               "# state_dict of lps_resnet18_cifar10_circular.ckpt.xz (key, shape, dtype)")
    spread = float(raw.std(dim=1).mean())
    meta = W.meta("lps", official_class="models.resnet_custom.ResNet18Custom",
                  flags={k: v for k, v in vars(FLAGS_CIFAR_LPS).items() if not k.startswith("_")},
                  hyper_parameters_repr={k: repr(v) for k, v in model.hparams.items()},
                  mode="eval (LPS argmax; BN running stats)", tau=tau,
                  output="log_softmax(core(x)) as ResNet18Custom.forward returns it; "
                         "'logits' = model.core(x) before log_softmax",
                  checkpoint="lps_resnet18_cifar10_circular.ckpt.xz",
                  checkpoint_bytes_uncompressed=raw_size, logits_std_over_classes=spread)
    meta["circular_shift_max_abs_diff"] = shift_diff
    W.save("lps_resnet18_cifar10_circular_eval",
           {"input": x, "output": logp, "logits": raw, "input_shifted": x_shift,
            "output_shifted": logp_shift}, meta)
    print("LPS ResNet18 logits spread (mean std over classes):", spread, "ckpt", raw_size, xz_size)

    # g. step parity
    make_step(W, model, "lps", "lps_resnet18_cifar10_circular", steps, tau=tau,
              loss_name="F.nll_loss(log_softmax output) (= cross entropy)",
              groups_fn=lps_param_groups)


class FLAGS_IMAGENET_LPS_DDAC3(FLAGS_CIFAR_LPS):
    """train.py flags of an LPS ImageNet ResNet-18 with DDAC3 (ResNet18_LPS_DDAC3_circular_basic:
    --dataset imagenet -> inc_conv1_support/apply_maxpool; the antialias flags at their
    train.py defaults except mode/size; maxpool_no_antialias is not in the extras, so
    ResNet18Custom uses its default True)."""
    dataset = "imagenet"
    antialias_mode = "DDAC"
    antialias_size = 3
    antialias_group = 8
    antialias_padding_mode = "circular"


class FLAGS_IMAGENET_LPS_LPF3_ZERO(FLAGS_CIFAR_LPS):
    """ResNet50_LPS_LPF3_zero_randomresized-like flags: zero padding in the convs
    (circular_pad False); LPS_pad, antialias_padding_mode and the max-pool pad keep their
    train.py defaults (circular), as a run without those flags has them."""
    model = "ResNet50Custom"
    dataset = "imagenet"
    circular_pad = False
    antialias_mode = "LowPassFilter"
    antialias_size = 3
    antialias_padding_mode = "circular"


def build_lps_imagenet(L, lps_root, FLAGS, num_classes=1000):
    """An LPS ImageNet model as train.py builds it for --dataset imagenet."""
    return build_lps_model(L, lps_root, FLAGS, (3, 224, 224), num_classes, imagenet=True)


def make_lps_imagenet(W, L, lps_root, out):
    """(a) LPS ResNet-18, ImageNet stem, DDAC3 circular; (b) LPS ResNet-50, LPF3, zero
    padding (Bottleneck). Scorer widths from configs/logits_channels/resnet18_imagenet.json
    (8/16/32/64) for both; weights very sparse (p_zero 0.97) to keep the files small."""
    tau = 0.5
    # fc_gain: logits with a spread of a few units (measured: 325 and 72 at gain 1/8)
    cases = [("lps_resnet18_imagenet_ddac3_circular", FLAGS_IMAGENET_LPS_DDAC3, 21, 2.0 ** -10),
             ("lps_resnet50_imagenet_lpf3_zero", FLAGS_IMAGENET_LPS_LPF3_ZERO, 22, 2.0 ** -8)]
    for name, FLAGS, s, fc_gain in cases:
        seed(42)
        model = build_lps_imagenet(L, lps_root, FLAGS)
        set_tau(model, tau)
        grid_weights(model, seed_=s, p_zero=0.97, fc_gain=fc_gain)
        g = torch.Generator().manual_seed(s)
        calibrate_bn(model, torch.randn(8, 3, 64, 64, generator=g))
        model.eval()
        x = torch.randn(2, 3, 64, 64, generator=g)
        with torch.no_grad():
            logp = model(x)
            raw = model.core(x)
            x_shift = torch.roll(x, shifts=(5, 3), dims=(2, 3))
            logp_shift = model(x_shift)
        # The same official model in float64: the float32 reference carries its own
        # rounding noise (DDAC network: 1.1e-5 of max|logits|), so tests also compare here.
        import copy
        with torch.no_grad():
            raw64 = copy.deepcopy(model).double().core(x.double()).numpy()
        ck = lightning_checkpoint(model, epoch=0, global_step=0)
        raw_size, xz_size = save_xz(ck, os.path.join(out, name + ".ckpt.xz"))
        write_keys(model.state_dict(), os.path.join(out, name + ".keys.txt"),
                   f"# state_dict of {name}.ckpt.xz (key, shape, dtype)")
        spread = float(raw.std(dim=1).mean())
        meta = W.meta("lps", official_class=f"models.resnet_custom.{FLAGS.model}",
                      flags={k: getattr(FLAGS, k) for k in dir(FLAGS) if not k.startswith("_")},
                      hyper_parameters_repr={k: repr(v) for k, v in model.hparams.items()},
                      mode="eval (LPS argmax; BN running stats)", tau=tau,
                      output="log_softmax(core(x)); 'logits' = model.core(x)",
                      checkpoint=name + ".ckpt.xz", checkpoint_bytes_uncompressed=raw_size,
                      logits_std_over_classes=spread)
        meta["circular_shift_max_abs_diff"] = float((logp - logp_shift).abs().max())
        meta["input_shifted"] = "not stored (size): np.roll(input, (5, 3), axis=(2, 3))"
        meta["logits_float64"] = ("model.core(input) of a float64 copy of the official model "
                                  "(float64, the only non-float32 array)")
        meta["float32_vs_float64_rel"] = float(np.abs(npf(raw) - raw64).max() / np.abs(raw64).max())
        W.save(name + "_eval", {"input": x, "output": logp, "logits": raw,
                                "logits_float64": raw64, "output_shifted": logp_shift}, meta)
        print(name, "spread", spread, "shift diff", meta["circular_shift_max_abs_diff"],
              "ckpt", raw_size, xz_size)


def make_step(W, model, repo, name, steps, tau, loss_name, groups_fn):
    g = torch.Generator().manual_seed(9)
    x = torch.randn(4, 3, 32, 32, generator=g)
    y = torch.tensor([3, 0, 7, 3])
    if groups_fn is not None:
        groups, net_names, pool_names = groups_fn(model)
        opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9, weight_decay=5e-4, nesterov=False)
        rule = ("two param groups (models/core.py configure_optimizers): parameters whose "
                "name contains 'component_selection' -> weight_decay=0; all others -> "
                "weight_decay=5e-4")
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        net_names, pool_names = [n for n, _ in model.named_parameters()], []
        rule = "one param group: optim.SGD(model.parameters(), lr, momentum, weight_decay)"
    model.train()
    arrays = {"input": x, "labels": y}
    arrays.update(sample_state(model.state_dict(), "before/"))
    losses = []
    for s in range(steps):
        out = model(x)
        loss = F.nll_loss(out, y) if repo == "lps" else F.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        arrays[f"step{s + 1}/output"] = out.detach()
        arrays.update(sample_state(model.state_dict(), f"step{s + 1}/"))
    arrays["loss"] = np.array(losses, dtype=np.float32)
    meta = W.meta(repo, official_class=type(model).__name__, network=name,
                  mode=f"train (BatchNorm batch statistics, momentum 0.1, eps 1e-5)"
                       + (f"; LPS component_mode='train_convex' softmax(logits/tau), tau={tau},"
                          " no Gumbel noise" if repo == "lps" else ""),
                  loss=loss_name, optimizer="torch.optim.SGD(lr=0.1, momentum=0.9, "
                  "weight_decay=5e-4, nesterov=False, dampening=0)", weight_decay_rule=rule,
                  no_weight_decay_params=pool_names, steps=steps,
                  storage="tensors with <=4096 entries stored in full under <stage>/full/<key>;"
                          " larger ones as 1024 sampled flat (C-order) indices idx/<key> (int32,"
                          " the same for every stage) with their values <stage>/val/<key>, plus float64 <stage>/sum/<key> and"
                          " <stage>/sumsq/<key> of the whole tensor. stage = before, step1, step2."
                          " stepK/output = the model output of the forward of step K (before"
                          " that step's update)",
                  start_state="the eval checkpoint of the same network (identical state_dict)")
    W.save(f"{name}_step", arrays, meta)
    print(name, "losses", losses)


def make_aps_resnet20(W, A, out, steps=2):
    seed(0)  # main.py: set_random_seeds(SEED_NUM) before eval(ARCH)(**model_dict)
    model_dict = {'conv_pad_type': 'circular', 'dataset_to_train': 'cifar10', 'pretrained': False,
                  'filter_size': 3, 'layer_channels': [16, 32, 64], 'apspool_criterion': 'l2'}
    model = A.aps_resnet.resnet20_aps(**model_dict)
    grid_weights(model, seed_=2)
    g = torch.Generator().manual_seed(10)
    calibrate_bn(model, torch.randn(16, 3, 32, 32, generator=g))
    x = torch.randn(2, 3, 32, 32, generator=g)
    model.eval()
    with torch.no_grad():
        logits = model(x)
        x_shift = torch.roll(x, shifts=(1, 3), dims=(2, 3))
        logits_shift = model(x_shift)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    state = {'model': model.state_dict(), 'optimizer': opt.state_dict(),
             'accuracy': 10.0, 'best_accuracy': 10.0, 'epoch': 0}
    raw_size, xz_size = save_xz(state, os.path.join(out, "aps_resnet20_cifar10_circular_f3.pt.xz"))
    write_keys(model.state_dict(), os.path.join(out, "aps_resnet20_cifar10_circular_f3.keys.txt"),
               "# state['model'] of aps_resnet20_cifar10_circular_f3.pt.xz (key, shape, dtype)")
    spread = float(logits.std(dim=1).mean())
    meta = W.meta("aps", official_class="model_classes.aps_models.resnet.Small_ResNet (resnet20_aps)",
                  args=dict(arch="resnet20_aps", **model_dict), mode="eval (BN running stats)",
                  output="raw logits (no softmax; training uses nn.CrossEntropyLoss)",
                  checkpoint="aps_resnet20_cifar10_circular_f3.pt.xz",
                  checkpoint_layout="torch.save({'model': state_dict, 'optimizer': "
                  "optimizer.state_dict(), 'accuracy', 'best_accuracy', 'epoch'}) as in "
                  "utils/for_circular_pad_exps/train_validate_circular.py",
                  checkpoint_bytes_uncompressed=raw_size, logits_std_over_classes=spread)
    meta["circular_shift_max_abs_diff"] = float((logits - logits_shift).abs().max())
    W.save("aps_resnet20_cifar10_circular_f3_eval",
           {"input": x, "output": logits, "input_shifted": x_shift, "output_shifted": logits_shift},
           meta)
    print("APS ResNet20 logits spread:", spread, "ckpt", raw_size, xz_size)
    make_step(W, model, "aps", "aps_resnet20_cifar10_circular_f3", steps, tau=None,
              loss_name="nn.CrossEntropyLoss()(logits, labels)", groups_fn=None)


def make_tv_resnet18(W, out):
    import torchvision
    seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=1000)
    grid_weights(model, seed_=3, p_zero=0.9)  # sparser than the others: size budget
    g = torch.Generator().manual_seed(12)
    calibrate_bn(model, torch.randn(8, 3, 64, 64, generator=g))
    x = torch.randn(2, 3, 64, 64, generator=g)
    with torch.no_grad():
        logits = model(x)
    sd = model.state_dict()
    raw_size, xz_size = save_xz(sd, os.path.join(out, "torchvision_resnet18.pth.xz"))
    write_keys(sd, os.path.join(out, "torchvision_resnet18.keys.txt"),
               "# torchvision.models.resnet18 state_dict in torchvision_resnet18.pth.xz")
    spread = float(logits.std(dim=1).mean())
    import torchvision as tv
    meta = {"official_repo": "torchvision", "torchvision_version": tv.__version__,
            "official_class": "torchvision.models.resnet.ResNet (resnet18)", "mode": "eval",
            "output": "raw logits (1000 classes)", "checkpoint": "torchvision_resnet18.pth.xz",
            "checkpoint_bytes_uncompressed": raw_size, "logits_std_over_classes": spread}
    W.save("torchvision_resnet18_eval", {"input": x, "output": logits}, meta)
    print("torchvision ResNet18 spread", spread, raw_size, xz_size)


def make_lps_deeplab(W, L, lps_root, out):
    """DeepLabV3+ (LPD + LPU) with an LPS ResNet-18 backbone, built exactly as
    tests/deeplab_resnet/test_deeplab_resnet18_equivariance.py of the official repo does,
    except for the scorer widths (configs/logits_channels/resnet18_imagenet.json)."""
    from models.base_segmentation import DDACSegmentation
    from utils.core_utils import loadcfg
    P, U = L.polydown, L.polyup
    seed(8)
    logits_channels = loadcfg(os.path.join(lps_root, "learn_poly_sampling", "configs",
                                           "logits_channels", "resnet18_imagenet.json"))
    pool_layer = functools.partial(P.PolyphaseInvariantDown2D, component_selection=P.LPS,
                                   get_logits=L.layers.get_logits_model('LPSLogitLayers'),
                                   antialias_layer=None)
    unpool_layer = functools.partial(U.PolyphaseInvariantUp2D, component_selection=U.LPS_u,
                                     antialias_layer=None)
    extras_model = {'logits_channels': logits_channels, 'conv1_stride': False,
                    'maxpool_zpad': False, 'swap_conv_pool': False, 'inc_conv1_support': True,
                    'apply_maxpool': True, 'ret_prob': True, 'forward_pool_method': 'LPS',
                    'forward_ret_prob_logits': False}
    backbone = L.models.get_model('ResNet18Custom')(
        input_shape=(), num_classes=21, padding_mode='circular', pooling_layer=pool_layer,
        extras_model=extras_model)
    model = DDACSegmentation(model_name='deeplabv3plus_resnet_lps_unpool', num_classes=21,
                             output_stride=16, backbone=backbone, unpool_layer=unpool_layer,
                             classifier_padding_mode='circular')
    grid_weights(model, seed_=4, p_zero=0.9)  # sparser than the others: size budget
    # Input size: the ASPP convs use circular padding with dilation 6/12/18 on the stride-32
    # layer4 feature (layer4 keeps its stride: replace_stride_with_dilation is computed but
    # not applied to the LPS backbone). Current PyTorch refuses circular padding larger than
    # the input ("wrapping around more than once"), so the feature must be >= 18 pixels:
    # input 576 x 576 (the official test uses 512, which only ran on the old torch 1.9
    # Python circular-pad code). N=1 and values in {-1, +1} so that the input compresses.
    H = 576
    g = torch.Generator().manual_seed(13)
    def signs(n):
        return torch.where(torch.rand(n, 3, H, H, generator=g) < 0.5, -1.0, 1.0)
    calibrate_bn(model, signs(2))
    model.eval()
    x = signs(1)
    with torch.no_grad():
        y = model(x)
        x_shift = torch.roll(x, shifts=(-1, -1), dims=(2, 3))
        y_shift = model(x_shift)
    eq = float((torch.roll(y, shifts=(-1, -1), dims=(2, 3)) - y_shift).abs().max())
    ck = lightning_checkpoint(model, epoch=0, global_step=0)
    raw_size, xz_size = save_xz(ck, os.path.join(out, "lps_deeplabv3plus_resnet18_unpool.ckpt.xz"))
    write_keys(model.state_dict(), os.path.join(out, "lps_deeplabv3plus_resnet18_unpool.keys.txt"),
               "# state_dict of lps_deeplabv3plus_resnet18_unpool.ckpt.xz (key, shape, dtype)")
    spread = float(y.std(dim=1).mean())
    gs = torch.Generator().manual_seed(14)
    pix = torch.randperm(H * H, generator=gs)[:4096].sort().values
    yy = y.reshape(1, 21, H * H)
    c0 = H // 2 - 8
    arrays = {"input": x.to(torch.int8), "output_argmax": y.argmax(1).to(torch.uint8),
              "output_pixel_idx": pix.to(torch.int32), "output_pixel_val": yy[:, :, pix],
              "output_center_crop": y[:, :, c0:c0 + 16, c0:c0 + 16],
              "output_sum": y.double().sum(dim=(2, 3)).numpy(),
              "output_sumsq": (y.double() ** 2).sum(dim=(2, 3)).numpy()}
    meta = W.meta("lps", official_class="models.base_segmentation.DDACSegmentation",
                  args=dict(model_name='deeplabv3plus_resnet_lps_unpool', num_classes=21,
                            output_stride=16, classifier_padding_mode='circular',
                            backbone="ResNet18Custom(padding_mode='circular', LPS "
                                     "LPSLogitLayers, extras_model=%r)" % extras_model,
                            unpool_layer="partial(PolyphaseInvariantUp2D, LPS_u, antialias None)"),
                  hyper_parameters_repr={k: repr(v) for k, v in model.hparams.items()},
                  mode="eval (LPD argmax, LPU one-hot; BN running stats)",
                  output="per-pixel class scores (1, 21, 576, 576), no softmax. Stored: "
                         "output_argmax (1,576,576) uint8; output_pixel_val (1,21,4096) at flat "
                         "pixel indices output_pixel_idx (row*576+col); output_center_crop = "
                         "output[:, :, 280:296, 280:296]; float64 per-class output_sum / "
                         "output_sumsq. input is stored as int8 {-1,+1} (cast to float32).",
                  checkpoint="lps_deeplabv3plus_resnet18_unpool.ckpt.xz",
                  checkpoint_bytes_uncompressed=raw_size, scores_std_over_classes=spread,
                  circular_shift_equivariance_max_abs_diff=eq,
                  max_abs_output=float(y.abs().max()))
    W.save("lps_deeplabv3plus_resnet18_unpool_eval", arrays, meta)
    print("DeepLab spread", spread, "equivariance", eq, raw_size, xz_size)


# --------------------------------------------------------------------------------------
# Structure-only fixtures of the published LPS checkpoints (and torchvision ResNet-50/101)
# --------------------------------------------------------------------------------------
class FLAGS_PUB_R18_CIRCULAR(FLAGS_CIFAR_LPS):
    """ResNet18_LPS_circular_basic: ImageNet, circular convs, no antialias."""
    dataset = "imagenet"


class FLAGS_PUB_R18_LPF2_CIRCULAR(FLAGS_CIFAR_LPS):
    """ResNet18_LPS_LPF2_circular_basic."""
    dataset = "imagenet"
    antialias_mode = "LowPassFilter"
    antialias_size = 2


class FLAGS_PUB_R101_DDAC3_ZERO(FLAGS_IMAGENET_LPS_DDAC3):
    """ResNet101_LPS_DDAC3_zero_randomresized: zero-padded convs; LPS_pad, the antialias
    padding mode and the max-pool pad at their train.py defaults (circular)."""
    model = "ResNet101Custom"
    circular_pad = False


class FLAGS_PUB_R101_LPF3_ZERO(FLAGS_IMAGENET_LPS_LPF3_ZERO):
    """ResNet101_LPS_LPF3_zero_randomresized."""
    model = "ResNet101Custom"


PUBLISHED_LPS = [
    ("ResNet18_LPS_circular_basic", FLAGS_PUB_R18_CIRCULAR),
    ("ResNet18_LPS_DDAC3_circular_basic", FLAGS_IMAGENET_LPS_DDAC3),
    ("ResNet18_LPS_LPF2_circular_basic", FLAGS_PUB_R18_LPF2_CIRCULAR),
    ("ResNet50_LPS_LPF3_zero_randomresized", FLAGS_IMAGENET_LPS_LPF3_ZERO),
    ("ResNet101_LPS_DDAC3_zero_randomresized", FLAGS_PUB_R101_DDAC3_ZERO),
    ("ResNet101_LPS_LPF3_zero_randomresized", FLAGS_PUB_R101_LPF3_ZERO),
]


def zero_state(model, keep=("gumbel_tau", "filt")):
    """Every parameter and buffer set to 0, except the constants of the architecture: the
    LPS temperature buffers (gumbel_tau) and the fixed binomial blur kernels of
    LowPassFilter (filt), which the converter checks, keep their constructor values."""
    with torch.no_grad():
        for n, t in list(model.named_parameters()) + list(model.named_buffers()):
            if n.split(".")[-1] not in keep:
                t.zero_()


def make_published_structures(W, L, lps_root, out):
    """Structure-only fixtures: the architectures of the six published LPS ImageNet
    checkpoints (built by the official code with the train.py flags of each run, scorer
    widths configs/logits_channels/resnet18_imagenet.json, 1000 classes) and of torchvision
    ResNet-50/101, with every weight zero (so the xz files are tiny) but the real
    Lightning layout and hyper_parameters. No outputs: numerical parity is covered by the
    random-weight fixtures."""
    import torchvision
    summary = {}
    for name, FLAGS in PUBLISHED_LPS:
        seed(42)
        model = build_lps_imagenet(L, lps_root, FLAGS)
        zero_state(model)
        ck = lightning_checkpoint(model, epoch=0, global_step=0)
        fname = "published_" + name.lower()
        raw_size, xz_size = save_xz(ck, os.path.join(out, fname + ".ckpt.xz"))
        write_keys(model.state_dict(), os.path.join(out, fname + ".keys.txt"),
                   f"# state_dict of {fname}.ckpt.xz (key, shape, dtype); structure only")
        summary[fname] = dict(
            published_checkpoint=name + ".ckpt", checkpoint=fname + ".ckpt.xz",
            official_class=f"models.resnet_custom.{FLAGS.model}",
            flags={k: getattr(FLAGS, k) for k in dir(FLAGS) if not k.startswith("_")},
            num_parameters=int(sum(p.numel() for p in model.parameters())),
            num_state_tensors=len(model.state_dict()),
            hyper_parameters_repr={k: repr(v) for k, v in model.hparams.items()},
            checkpoint_bytes_uncompressed=raw_size, checkpoint_bytes_xz=xz_size)
        print(fname, summary[fname]["num_parameters"], raw_size, xz_size)
    for arch in ("resnet50", "resnet101"):
        seed(0)
        model = getattr(torchvision.models, arch)(weights=None, num_classes=1000)
        zero_state(model)
        sd = model.state_dict()
        fname = "published_torchvision_" + arch
        raw_size, xz_size = save_xz(sd, os.path.join(out, fname + ".pth.xz"))
        write_keys(sd, os.path.join(out, fname + ".keys.txt"),
                   f"# torchvision.models.{arch} state_dict in {fname}.pth.xz; structure only")
        summary[fname] = dict(
            official_class=f"torchvision.models.resnet.ResNet ({arch})",
            torchvision_version=torchvision.__version__, checkpoint=fname + ".pth.xz",
            num_parameters=int(sum(p.numel() for p in model.parameters())),
            num_state_tensors=len(sd), checkpoint_bytes_uncompressed=raw_size,
            checkpoint_bytes_xz=xz_size)
        print(fname, summary[fname]["num_parameters"], raw_size, xz_size)
    doc = {"official_repo": LPS_REPO, "official_commit": W.commits["lps"],
           "torch": torch.__version__,
           "note": "structure-only fixtures: every weight is zero (the gumbel_tau buffers and "
                   "the fixed LowPassFilter kernels 'filt' keep their constructor values); "
                   "layout and hyper_parameters of the published files, no outputs",
           "fixtures": summary}
    with open(os.path.join(out, "published_structures.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True, default=str)
        f.write("\n")


APS_STRUCTURES = ("resnet18_aps", "resnet50_aps", "resnet56_aps")


def make_aps_structures(W, A, out):
    """Structure-only fixtures of the APS repo's other CIFAR-10 ResNets (resnet18_aps,
    resnet50_aps, resnet56_aps; filter size 3, circular padding, 10 classes), built by the
    official model functions with the same model_dict as the random-weight ResNet-20 and
    saved as the APS training script saves them ({'model', 'optimizer', 'accuracy',
    'best_accuracy', 'epoch'}). Every weight zero; the blur buffers 'filt' keep their
    constructor values. The optimizer state is that of a fresh SGD (no momentum buffers),
    so the files stay tiny. No outputs."""
    summary = {}
    for arch in APS_STRUCTURES:
        seed(0)
        model_dict = {'conv_pad_type': 'circular', 'dataset_to_train': 'cifar10',
                      'pretrained': False, 'filter_size': 3, 'apspool_criterion': 'l2'}
        if arch == "resnet56_aps":
            model_dict['layer_channels'] = [16, 32, 64]
        model = getattr(A.aps_resnet, arch)(**model_dict)
        zero_state(model)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
        state = {'model': model.state_dict(), 'optimizer': opt.state_dict(),
                 'accuracy': 10.0, 'best_accuracy': 10.0, 'epoch': 0}
        fname = f"aps_structure_{arch}_cifar10_circular_f3"
        raw_size, xz_size = save_xz(state, os.path.join(out, fname + ".pt.xz"))
        write_keys(model.state_dict(), os.path.join(out, fname + ".keys.txt"),
                   f"# state['model'] of {fname}.pt.xz (key, shape, dtype); structure only")
        summary[fname] = dict(
            checkpoint=fname + ".pt.xz",
            official_class=f"model_classes.aps_models.resnet.{type(model).__name__} ({arch})",
            args=dict(arch=arch, **model_dict),
            num_parameters=int(sum(p.numel() for p in model.parameters())),
            num_state_tensors=len(model.state_dict()),
            checkpoint_bytes_uncompressed=raw_size, checkpoint_bytes_xz=xz_size)
        print(fname, summary[fname]["num_parameters"], raw_size, xz_size)
    doc = {"official_repo": APS_REPO, "official_commit": W.commits["aps"],
           "torch": torch.__version__,
           "checkpoint_layout": "torch.save({'model': state_dict, 'optimizer': "
                                "optimizer.state_dict(), 'accuracy', 'best_accuracy', 'epoch'}) as "
                                "in utils/for_circular_pad_exps/train_validate_circular.py",
           "note": "structure-only fixtures: every weight is zero (the fixed blur buffers "
                   "'filt' keep their constructor values); no outputs",
           "fixtures": summary}
    with open(os.path.join(out, "aps_structures.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=True, default=str)
        f.write("\n")


# --------------------------------------------------------------------------------------
# The APS repo's U-Nets (models/{aps_models/unet_aps,baseline_models/baseline_unet,
# lpf_models/unet_lpf}), random weights, eval mode
# --------------------------------------------------------------------------------------
def import_aps_unets(aps_root):
    """The APS repo's top-level `models` package (U-Nets). Its name clashes with the LPS
    repo's `models` package imported earlier, so the LPS one is moved out of sys.modules
    while the U-Net modules are imported (and put back afterwards).

    Upstream bug worked around: `UNet_3down_aps.__init__` passes `aps_criterion =
    aps_criterion`, a name defined nowhere (its signature has no such argument), so the
    class raises NameError. The module global `aps_criterion = 'l2'` (the default of
    UNet_4down_aps and of Down) is set on the imported module; nothing else is changed."""
    saved = {k: v for k, v in sys.modules.items() if k == "models" or k.startswith("models.")}
    for k in saved:
        del sys.modules[k]
    # The APS `models` has no __init__.py (a namespace package): a regular `models`
    # package anywhere on sys.path (the LPS one) would win, so hide those paths meanwhile.
    old_path = list(sys.path)
    sys.path[:] = [aps_root] + [p for p in old_path
                                if not os.path.exists(os.path.join(p, "models", "__init__.py"))]
    try:
        import models.aps_models.unet_aps.unet_model as aps_unet
        import models.baseline_models.baseline_unet.unet_model as base_unet
        import models.lpf_models.unet_lpf.unet_model as lpf_unet
    finally:
        sys.path[:] = old_path
        mine = {k: v for k, v in sys.modules.items() if k == "models" or k.startswith("models.")}
        for k in mine:
            del sys.modules[k]
        sys.modules.update(saved)
    try:
        aps_unet.UNet_3down_aps(1, 1, [4, 4, 4, 4], filter_size=1, padding_mode="circular")
        raise AssertionError("UNet_3down_aps builds upstream: drop the workaround")
    except NameError as err:
        assert "aps_criterion" in str(err), err
    aps_unet.aps_criterion = "l2"
    return types.SimpleNamespace(aps=aps_unet, baseline=base_unet, lpf=lpf_unet)


class _CpuCuda:
    """ApsDown/ApsUp call `.cuda()` on index and zero tensors; on CPU `Tensor.cuda` is
    replaced by the identity while the U-Nets run (the math is unchanged)."""

    def __enter__(self):
        self._orig = torch.Tensor.cuda
        torch.Tensor.cuda = lambda self, *a, **k: self
        return self

    def __exit__(self, *exc):
        torch.Tensor.cuda = self._orig


UNET_CHANNELS4 = [8, 16, 32, 64, 128]
UNET_CHANNELS3 = [8, 16, 32, 64]
# name, module ('aps' / 'baseline' / 'lpf'), class, kwargs, (N, C_in, H, W)
UNET_CASES = [
    ("unet4_aps_circular_f1", "aps", "UNet_4down_aps",
     dict(in_channels=1, out_channels=1, filter_size=1, padding_mode="circular"), (2, 1, 32, 32)),
    ("unet4_aps_circular_f3", "aps", "UNet_4down_aps",
     dict(in_channels=1, out_channels=1, filter_size=3, padding_mode="circular"), (2, 1, 32, 32)),
    ("unet4_aps_circular_f3_32x64", "aps", "UNet_4down_aps",
     dict(in_channels=1, out_channels=1, filter_size=3, padding_mode="circular"), (2, 1, 32, 64)),
    ("unet4_aps_zeros_f3_in2_out3", "aps", "UNet_4down_aps",
     dict(in_channels=2, out_channels=3, filter_size=3, padding_mode="zeros"), (2, 2, 32, 32)),
    ("unet3_aps_circular_f1", "aps", "UNet_3down_aps",
     dict(in_channels=1, out_channels=1, filter_size=1, padding_mode="circular"), (2, 1, 32, 32)),
    ("unet4_baseline_circular", "baseline", "UNet_4down",
     dict(in_channels=1, out_channels=1, padding_mode="circular"), (2, 1, 32, 32)),
    ("unet4_baseline_zeros", "baseline", "UNet_4down",
     dict(in_channels=1, out_channels=1, padding_mode="zeros"), (2, 1, 32, 32)),
    ("unet4_lpf_circular_f3", "lpf", "UNet_4down_lpf",
     dict(in_channels=1, out_channels=1, filter_size=3, padding_mode="circular"), (2, 1, 32, 32)),
    ("unet4_lpf_zeros_f3", "lpf", "UNet_4down_lpf",
     dict(in_channels=1, out_channels=1, filter_size=3, padding_mode="zeros"), (2, 1, 32, 32)),
]
# This case is also saved as main_mri.py saves checkpoints (DataParallel 'module.' keys).
UNET_MRI_CASE = "unet4_aps_circular_f3"


def _aps_margins(model, x):
    """Per ApsDown call: the smallest relative gap between the largest and the second
    largest l2 norm of the four polyphase components (batch-wise), i.e. how far the
    selections are from a tie (float32 differences cannot flip them if this is >> 1e-6)."""
    gaps = []

    def hook(mod, inp, out):
        t = inp[0]
        if mod.filt_size > 1:
            t = F.conv2d(mod.pad(t), mod.filt, stride=1, groups=t.shape[1])
        ph = torch.stack([t[:, :, r::2, c::2] for r, c in [(0, 0), (1, 0), (0, 1), (1, 1)]], 1)
        n = ph.flatten(2).norm(dim=2).sort(dim=1, descending=True).values
        gaps.append(float(((n[:, 0] - n[:, 1]) / n[:, 0]).min()))

    hs = [m.register_forward_hook(hook) for m in model.modules()
          if type(m).__name__ == "ApsDown"]
    with torch.no_grad():
        model(x)
    for h in hs:
        h.remove()
    return gaps


def make_unets(W, aps_root, out):
    """The APS repo's U-Nets as main_mri.py builds them (`inner_channels_list`, `bilinear=
    False`, `padding_mode`, `filter_size` for APS/LPF), with small channels, random grid
    weights (`grid_weights`) and calibrated BN running statistics, in eval mode, on seeded
    random 32x32 inputs (one 32x64 case: the APS code's non-square path; 32x48 does not
    run upstream: with 4 levels the bottom is 2x3, ApsUp's aps_pad makes it 2x4, and the
    upsampled 4x8 map does not concatenate with the 4x6 skip). Each case: the
    state_dict (`<name>.pt.xz`) and `<name>_eval.npz` (input, output; for circular APS
    also a circularly shifted input and its output)."""
    U = import_aps_unets(aps_root)
    with _CpuCuda():
        for i, (name, module, cls, kw, shape) in enumerate(UNET_CASES):
            seed(500 + i)  # main_mri.py seeds 0 before building; a seed per case here
            channels = UNET_CHANNELS3 if cls.startswith("UNet_3down") else UNET_CHANNELS4
            kwargs = dict(kw, inner_channels_list=list(channels), bilinear=False)
            model = getattr(getattr(U, module), cls)(**kwargs)
            # Denser than the ResNets' grid (P(0) = 0.5): with 1-2 input channels and
            # 8-wide levels, P(0) = 0.8 leaves whole channels dead. outc (8 weights per
            # output) gets no zeros at all: +-0.25 (about its default init's std).
            grid_weights(model, p_zero=0.5, seed_=600 + i)
            with torch.no_grad():
                wo = model.outc.conv.weight
                wo.copy_(torch.where(torch.rand(wo.shape, generator=torch.Generator()
                                                .manual_seed(650 + i)) < 0.5, -0.25, 0.25))
            g = torch.Generator().manual_seed(700 + i)
            n, c, h, w = shape
            calibrate_bn(model, torch.randn(8, c, h, w, generator=g))
            x = torch.randn(n, c, h, w, generator=g)
            model.eval()
            meta_extra = {}
            if module == "aps":
                # Redraw the input (same generator) until no APS selection is near a tie
                # (relative gap of the two largest phase norms >= 1e-4): float32 rounding
                # differences must not be able to flip a selection.
                for draw in range(50):
                    gaps = _aps_margins(model, x)
                    if min(gaps) >= 1e-4:
                        break
                    x = torch.randn(n, c, h, w, generator=g)
                assert min(gaps) >= 1e-4, (name, gaps)
                meta_extra["aps_selection_min_relative_gap"] = min(gaps)
                meta_extra["input_draws"] = draw + 1
            with torch.no_grad():
                y = model(x)
            arrays = {"input": x, "output": y}
            if module == "aps" and kw["padding_mode"] == "circular":
                shift = (3, 5)
                xs = torch.roll(x, shifts=shift, dims=(2, 3))
                with torch.no_grad():
                    ys = model(xs)
                arrays.update(input_shifted=xs, output_shifted=ys)
                meta_extra["shift"] = list(shift)
                meta_extra["circular_shift_equivariance_max_abs_diff"] = float(
                    (torch.roll(y, shifts=shift, dims=(2, 3)) - ys).abs().max())
            sd = model.state_dict()
            raw_size, xz_size = save_xz(sd, os.path.join(out, name + ".pt.xz"))
            write_keys(sd, os.path.join(out, name + ".keys.txt"),
                       f"# state_dict of {name}.pt.xz (key, shape, dtype)")
            files = [name + ".pt.xz"]
            if name == UNET_MRI_CASE:
                # main_mri.py: model = torch.nn.DataParallel(model) (or DDP), then
                # save_checkpoint({'epoch', 'arch', 'state_dict': model.state_dict(),
                # 'lowest_loss', 'optimizer': optimizer.state_dict()}) (Adam).
                dp = nn.DataParallel(model)
                opt = torch.optim.Adam(dp.parameters(), lr=1e-3)
                ck = {"epoch": 1, "arch": cls, "state_dict": dp.state_dict(),
                      "lowest_loss": 0.5, "optimizer": opt.state_dict()}
                mri = name + "_mri.pth.tar"
                save_xz(ck, os.path.join(out, mri + ".xz"))
                write_keys(ck["state_dict"], os.path.join(out, name + "_mri.keys.txt"),
                           f"# checkpoint['state_dict'] of {mri}.xz (main_mri.py layout)")
                files.append(mri + ".xz")
                meta_extra["mri_checkpoint"] = mri + ".xz"
                meta_extra["mri_checkpoint_layout"] = (
                    "torch.save({'epoch', 'arch', 'state_dict' (DataParallel: 'module.' "
                    "prefix), 'lowest_loss', 'optimizer' (Adam)}) as save_checkpoint in "
                    "equivariant_unet_training/mri_reconstruction/main_mri.py")
            path = {"aps": "models.aps_models.unet_aps.unet_model",
                    "baseline": "models.baseline_models.baseline_unet.unet_model",
                    "lpf": "models.lpf_models.unet_lpf.unet_model"}[module]
            meta = W.meta("aps", official_class=f"{path}.{cls}", args=kwargs,
                          mode="eval (BN running stats)", checkpoint=name + ".pt.xz",
                          checkpoint_bytes_uncompressed=raw_size,
                          max_abs_output=float(y.abs().max()),
                          output_std=float(y.std()), **meta_extra)
            if cls == "UNet_3down_aps":
                meta["upstream_workaround"] = (
                    "UNet_3down_aps.__init__ reads an undefined name aps_criterion "
                    "(NameError); the module global aps_criterion='l2' was set")
            W.save(name + "_eval", arrays, meta)
            print(name, files, raw_size, xz_size, meta_extra)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lps-mirror", default="/work/.mirror/raymondyeh07+learnable_polyphase_sampling/repo")
    ap.add_argument("--aps-mirror", default="/work/.mirror/achaman2+truly_shift_invariant_cnns/repo")
    ap.add_argument("--out", default="tests/fixtures/official")
    ap.add_argument("--only", default="layers,lps_net,aps_net,tv,deeplab,lps_imagenet,"
                                      "published_structures,aps_structures,unets")
    args = ap.parse_args()
    only = args.only.split(",")
    tmp = tempfile.mkdtemp(prefix="official_src_")
    lps_root, aps_root = os.path.join(tmp, "lps"), os.path.join(tmp, "aps")
    lps_commit = extract(args.lps_mirror, lps_root, LPS_COMMIT_PREFIX)
    aps_commit = extract(args.aps_mirror, aps_root, APS_COMMIT_PREFIX)
    tvr, _resnet_tv010 = install_stubs()
    _orig = tvr._resnet
    tvr._resnet = _resnet_tv010          # seen only by learn_poly_sampling.models.resnet_custom
    L = import_lps(lps_root)
    tvr._resnet = _orig
    A = import_aps(aps_root)
    out = os.path.abspath(args.out)
    W = Writer(out, lps_commit, aps_commit)
    info = {"torch": torch.__version__, "numpy": np.__version__}
    if "layers" in only:
        info["aps_l2_min_rejected"] = make_aps_pool(W, A)
        make_lpf(W, A, L)
        make_ddac(W, L)
        make_lps_down_up(W, L)
    if "lps_net" in only:
        make_lps_resnet18(W, L, lps_root, out)
    if "aps_net" in only:
        make_aps_resnet20(W, A, out)
    if "deeplab" in only:
        make_lps_deeplab(W, L, lps_root, out)
    if "tv" in only:
        make_tv_resnet18(W, out)
    if "lps_imagenet" in only:
        make_lps_imagenet(W, L, lps_root, out)
    if "published_structures" in only:
        make_published_structures(W, L, lps_root, out)
    if "aps_structures" in only:
        make_aps_structures(W, A, out)
    if "unets" in only:
        make_unets(W, aps_root, out)
    default = ap.get_default("only").split(",")
    idx_path = os.path.join(out, "index.json")
    fixtures = W.index
    if sorted(only) != sorted(default) and os.path.exists(idx_path):
        # A partial run (e.g. --only lps_imagenet) updates its own entries of index.json.
        with open(idx_path) as f:
            old = json.load(f)
        if old.get("generator", {}).get("torch") != info["torch"]:
            raise SystemExit(f"index.json was made with torch {old['generator'].get('torch')}"
                             f", this run uses {info['torch']}: regenerate everything.")
        info = dict(old["generator"], **info)
        mine = {e["file"] for e in W.index}
        fixtures = [e for e in old["fixtures"] if e["file"] not in mine] + W.index
    with open(idx_path, "w") as f:
        json.dump({"generator": info, "commits": W.commits, "fixtures": fixtures}, f, indent=1,
                  sort_keys=True, default=str)


if __name__ == "__main__":
    main()
