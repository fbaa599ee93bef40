"""Layer-level parity with the papers' official PyTorch layers (numpy fixtures, no torch).

Every layer fixture of `tests/fixtures/official` (see its README) is either run here or
listed in `UNSUPPORTED` / `STRUCTURAL_MISMATCH` with the reason; `test_every_fixture_is_
classified` and `test_unsupported_cases_are_exactly_those_with_unsupported_options` assert
that nothing is skipped silently. For each case our layer is built with the settings the
fixture's `meta` describes (the options of docs/official_code.md), the official parameters
go through `lps_keras.convert.weights` (`lps_down_weight`, `ddac_weight`, the
`binomial_filter` check of blur buffers), the layer runs on the NHWC input in the same
mode, and outputs / probabilities / logits / indices are compared (APS phase indices
through `APS_TO_OURS`): max |ours - official| <= 1e-5 * max |official|.

Conventions handled here (README "Conventions"): NCHW -> NHWC; APS repo phase index 1 = row
offset (ours and the LPS repo: column offset); even blur sizes pad one more at the end in
every implementation; odd sizes: the official APS pads circularly at the bottom/right, as
our `pad_to_multiple`.
"""

import json
import os

import keras
import numpy as np
import pytest

from lps_keras.convert.weights import (
    APS_TO_OURS,
    OFFICIAL_SCORER_LAYERS,
    ConversionError,
    assign_weights,
    binomial_filter,
    ddac_weight,
    lps_down_weight,
)
from lps_keras.layers import (
    DDAC2D,
    APSDownsampling2D,
    BlurPool2D,
    LowPassFilter2D,
    LPSDownsampling2D,
    PolyphaseUpsampling2D,
)
from lps_keras.layers.polyphase import pad_to_multiple, polyphase_split
from tests.convert._official import FIXTURES, differences, load_npz, nhwc

RTOL = 1e-5  # max abs difference relative to max |official|

NETWORK_PREFIXES = ("lps_resnet18_", "lps_resnet50_", "aps_resnet20_", "torchvision_resnet18",
                    "lps_deeplab", "unet")  # unet*: tests/convert/test_official_unets.py

# Fixture cases with an option our layers do not offer (asserted exactly, see
# `test_unsupported_cases_are_exactly_those_with_unsupported_options`).
UNSUPPORTED = {
    "aps_pool_l2_f4_replicate.npz":
        "pad_type='replicate' (edge padding of the blur): our padding modes are circular, "
        "zeros, reflect and symmetric",
}

# Official scorers whose structure none of ours reproduces (asserted in
# `test_structural_mismatch_of_official_scorers`).
STRUCTURAL_MISMATCH = {
    "SAInner": "three separate two-conv networks (_phi, _psi, _beta: conv3x3 C->h with bias, "
               "ReLU, conv3x3 h->h) for query, key and value; ours (attention): one conv3x3 "
               "embedding, Dense query/key/value, Dense head",
    "SAInner_bn": "as SAInner with BatchNorm after the ReLU and no bias in the first conv; "
                  "ours (attention_bn): BN right after the embedding conv",
    "GraphLogitLayers": "input_conv + edge MLP on concatenated node pairs (2h -> h -> h) + "
                        "output MLP (h -> h -> 1); ours (graph): embedding conv, Dense "
                        "self/message update, Dense head",
}

_APS_NORMS = {"l2": "l2", "l1": "l1", "l_infty": "linf", "l2min": "l2_min", "l1min": "l1_min"}
_PADS = {"circular": "circular", "zero": "zeros", "zeros": "zeros", "reflect": "reflect"}


def _layer_fixtures():
    with open(os.path.join(FIXTURES, "index.json")) as f:
        index = json.load(f)
    entries = index["fixtures"] if isinstance(index, dict) else index
    names = sorted(e["file"] for e in entries if e["file"].endswith(".npz"))
    return [n for n in names if not n.startswith(NETWORK_PREFIXES)]


LAYER_FIXTURES = _layer_fixtures()


def _meta(data):
    return json.loads(str(data["meta"]))


def _scorer_class(meta):
    return meta["args"]["get_logits"].rsplit(".", 1)[-1]


def unsupported_option(name, meta):
    """Why `meta` needs an option our layers lack (None if expressible)."""
    args = meta["args"]
    if name.startswith("aps_pool_") and not args["circular_flag"]:
        if args["pad_type"] not in _PADS:
            return f"pad_type={args['pad_type']!r}"
    if name.startswith("lowpass_lps_") and args["padding_mode"] not in _PADS:
        return f"padding_mode={args['padding_mode']!r}"
    if name.startswith("ddac_") and args["pad_type"] not in _PADS:
        return f"pad_type={args['pad_type']!r}"
    return None


def _structural(name, meta):
    if name.startswith("lps_down_"):
        cls = _scorer_class(meta)
        return cls if cls in STRUCTURAL_MISMATCH else None
    return None


RUNNABLE = [n for n in LAYER_FIXTURES
            if n not in UNSUPPORTED and _structural(n, _meta(load_npz(n))) is None]


def _check_blur(filt, size, scale=1):
    filt = np.asarray(filt, np.float64)
    assert filt.shape[-2:] == (size, size)
    np.testing.assert_allclose(filt[:, 0], np.broadcast_to(binomial_filter(size) * scale ** 2,
                                                           filt[:, 0].shape), atol=1e-6)


def _compare(report, what, got, want):
    diff, rel, _ = differences(got, want)
    report.append(f"{what}: max|diff|={diff:.3g} max|official|={np.abs(want).max():.4g} "
                  f"rel={rel:.3g}")
    assert rel <= RTOL, f"{what}: max|diff| {diff} = {rel} of max|official| > {RTOL}"


def _assign(layer, mapped):
    assign_weights(layer, {f"{layer.name}/{path}": v for path, v in mapped.items()})


def _softmax(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _run_aps(name, data, meta, report):
    args = meta["args"]
    x = nhwc(data["input"])
    if name.startswith("lps_repo_max_2_norm"):  # LPS repo's max_p_norm: LPS phase order
        layer = APSDownsampling2D(norm="l2", return_probs=True)
        perm = (0, 1, 2, 3)
    else:
        size = args["filt_size"]
        _check_blur(data["param/filt"], size)
        pad = "circular" if args["circular_flag"] else _PADS[args["pad_type"]]
        antialias = LowPassFilter2D(size, padding_mode=pad, name="antialias") if size > 1 \
            else None
        layer = APSDownsampling2D(norm=_APS_NORMS[args["apspool_criterion"]],
                                  antialias=antialias, score_unfiltered=True,
                                  return_probs=True)
        perm = APS_TO_OURS
    y, probs = layer(x)
    ours = np.argmax(np.asarray(probs), axis=-1)
    np.testing.assert_array_equal(ours, [perm[i] for i in data["indices"]])
    report.append(f"indices (ours order) {ours.tolist()} equal")
    _compare(report, "output", np.asarray(y), nhwc(data["output"]))


def _run_blurpool(name, data, meta, report):
    args = meta["args"]
    _check_blur(data["param/filt"], args["filt_size"])
    layer = BlurPool2D(args["filt_size"], stride=args["stride"],
                       padding_mode="circular" if args["circular_flag"] else args["pad_type"])
    _compare(report, "output", np.asarray(layer(nhwc(data["input"]))), nhwc(data["output"]))


def _run_lowpass(name, data, meta, report):
    args = meta["args"]
    scale = args["filter_scale"]
    _check_blur(data["param/filt"], args["filter_size"], scale)
    layer = LowPassFilter2D(args["filter_size"], padding_mode=_PADS[args["padding_mode"]])
    # filter_scale=s multiplies the kernel by s**2, as PolyphaseUpsampling2D scales its
    # interpolation filter by stride**2.
    y = np.asarray(layer(nhwc(data["input"]))) * scale ** 2
    _compare(report, "output", y, nhwc(data["output"]))


def _run_ddac(name, data, meta, report):
    args = meta["args"]
    layer = DDAC2D(args["kernel_size"], groups=args["group"],
                   padding_mode=_PADS[args["pad_type"]], softmax="joint", epsilon=1e-5,
                   momentum=0.9, name="ddac")
    x = nhwc(data["input"])
    layer.build(x.shape)
    mapped = {}
    for key in data:
        if key.startswith("param/"):
            path, arr = ddac_weight(key[len("param/"):], data[key])
            if path is not None:
                mapped[path] = arr
    _assign(layer, mapped)
    _compare(report, "output", np.asarray(layer(x, training=False)), nhwc(data["output"]))


def _run_lps_down(name, data, meta, report):
    args = meta["args"]
    logits_model = OFFICIAL_SCORER_LAYERS[_scorer_class(meta)][0]
    train = "train" in meta["mode"].split(":")[0] or name.endswith("_train_softmax.npz")
    convex = bool(args.get("comp_convex", False))
    antialias = None
    if args["antialias_layer"] is not None:
        assert args["antialias_layer"].startswith("LowPassFilter(filter_size=3, padding='same',"
                                                  " padding_mode='circular', filter_scale=1)")
        antialias = "lowpass3"
    tau = float(data["param/component_selection.gumbel_tau"])
    assert tau == meta["tau"]
    layer = LPSDownsampling2D(
        logits_model=logits_model, hidden_channels=args["hid_channels"], antialias=antialias,
        score_unfiltered=bool(args.get("selection_noantialias", False)), tau=tau,
        train_mode="softmax", inference_mode="softmax" if convex else "argmax",
        padding_mode=args["logits_pad"], scorer_head="official", scorer_init="torch",
        return_probs=True, name="lps")
    x = nhwc(data["input"])
    layer.build(x.shape)
    mapped = {}
    for key in data:
        if key.startswith("param/"):
            path, arr = lps_down_weight(logits_model, key[len("param/"):], data[key])
            if path is None:
                _check_blur(arr, 3)
            else:
                mapped[path] = arr
    _assign(layer, mapped)
    y, probs = layer(x, training=train)
    _compare(report, "output", np.asarray(y), nhwc(data["output"]))
    probs = np.asarray(probs)
    if "logits" in data:
        scored = x
        if antialias is not None and not layer.score_unfiltered:
            scored = layer.antialias_layer(x)
        logits = layer.compute_logits(polyphase_split(pad_to_multiple(scored, 2), 2),
                                      training=train)
        _compare(report, "logits", np.asarray(logits), data["logits"])
    if "probs" in data:
        _compare(report, "probs", probs, data["probs"])
    if "indices" in data:
        ours = np.argmax(probs, axis=-1)
        np.testing.assert_array_equal(ours, data["indices"])
        report.append(f"indices {ours.tolist()} equal")


def _run_lps_up(name, data, meta, report):
    tau = float(data["param/component_selection.gumbel_tau"])
    if "probs" in data:  # train: the paired LPD's probabilities
        probs = data["probs"]
    elif meta["args"]["comp_convex"]:
        probs = _softmax(np.asarray(data["logits"], np.float64) / tau)
    else:
        probs = np.eye(4)[np.argmax(data["logits"], axis=-1)]
    layer = PolyphaseUpsampling2D(stride=meta["args"]["stride"])
    y = layer(nhwc(data["input"]), np.asarray(probs, np.float32))
    _compare(report, "output", np.asarray(y), nhwc(data["output"]))


def _runner(name):
    if name.startswith(("aps_pool_", "lps_repo_max_2_norm")):
        return _run_aps
    for prefix, run in (("blurpool_aps_", _run_blurpool), ("lowpass_lps_", _run_lowpass),
                        ("ddac_", _run_ddac), ("lps_down_", _run_lps_down),
                        ("lps_up_", _run_lps_up)):
        if name.startswith(prefix):
            return run
    return None


@pytest.mark.parametrize("name", RUNNABLE)
def test_layer_matches_official(name):
    keras.utils.clear_session()
    data = load_npz(name)
    meta = _meta(data)
    report = []
    _runner(name)(name, data, meta, report)
    print(f"PARITY {name}: " + "; ".join(report))


def test_every_fixture_is_classified():
    """Every layer fixture is run, or listed with a reason: nothing is skipped silently."""
    on_disk = sorted(n for n in os.listdir(FIXTURES)
                     if n.endswith(".npz") and not n.startswith(NETWORK_PREFIXES))
    assert LAYER_FIXTURES == on_disk and len(on_disk) == 82
    for name in LAYER_FIXTURES:
        assert _runner(name) is not None, name
    structural = {n for n in LAYER_FIXTURES if _structural(n, _meta(load_npz(n)))}
    assert set(RUNNABLE) | set(UNSUPPORTED) | structural == set(LAYER_FIXTURES)
    assert not set(RUNNABLE) & (set(UNSUPPORTED) | structural)
    assert {_scorer_class(_meta(load_npz(n))) for n in structural} == set(STRUCTURAL_MISMATCH)
    assert len(structural) == 6  # eval + train_softmax for each of the three scorers


def test_unsupported_cases_are_exactly_those_with_unsupported_options():
    found = {n: unsupported_option(n, _meta(load_npz(n))) for n in LAYER_FIXTURES}
    assert {n for n, why in found.items() if why} == set(UNSUPPORTED)
    assert found["aps_pool_l2_f4_replicate.npz"] == "pad_type='replicate'"
    with pytest.raises(ValueError, match="padding_mode"):
        LowPassFilter2D(4, padding_mode="replicate")


def _official_scorer_shapes(data):
    prefix = "param/component_selection.get_logits."
    return {k[len(prefix):]: data[k].shape for k in data
            if k.startswith(prefix) and not k.endswith("num_batches_tracked")}


@pytest.mark.parametrize("cls,ours", [("SAInner", "attention"),
                                      ("SAInner_bn", "attention_bn"),
                                      ("GraphLogitLayers", "graph")])
def test_structural_mismatch_of_official_scorers(cls, ours):
    """The official SAInner / SAInner_bn / GraphLogitLayers do not map onto our scorers:
    different modules and parameter shapes (documented in docs/official_code.md)."""
    keras.utils.clear_session()
    data = load_npz(f"lps_down_{cls}_eval.npz")
    official = _official_scorer_shapes(data)
    modules = sorted({k.split(".")[0] for k in official})
    layer = LPSDownsampling2D(logits_model=ours, hidden_channels=7, name="lps")
    layer.build((2, 8, 8, 5))
    mine = {w.path[len("lps/logits_model/"):]: tuple(w.shape) for w in layer.scorer.weights}
    if cls.startswith("SAInner"):
        assert modules == ["_beta", "_phi", "_psi"]
        # Three two-conv 3x3 networks (5->7, 7->7); ours has a single 3x3 conv.
        assert sum(len(s) == 4 for s in official.values()) == 6
        assert sum(len(s) == 4 for s in mine.values()) == 1
        assert {"query/kernel", "key/kernel", "value/kernel", "head/kernel"} <= set(mine)
        if cls == "SAInner_bn":
            assert "_phi.0.bias" not in official and "_phi.2.running_var" in official
            assert mine["embed_norm/moving_variance"] == (7,)
    else:
        assert modules == ["edge_network", "input_conv", "out_network"]
        assert official["edge_network.0.weight"] == (7, 14)  # MLP on node pairs
        assert official["out_network.2.weight"] == (1, 7)
        assert not any(s == (14, 7) for s in mine.values())
        assert {"self/kernel", "message/kernel", "head/kernel"} <= set(mine)
    # Not the same number of tensors / values either, and nothing converts them.
    assert (len(official), sum(np.prod(s) for s in official.values())) != \
        (len(mine), sum(np.prod(s) for s in mine.values()))
    key = next(k for k in data if k.startswith("param/component_selection.get_logits."))
    with pytest.raises(ConversionError, match="convertible scorers"):
        lps_down_weight(ours, key[len("param/"):], data[key])
    with pytest.raises(ValueError, match="scorer_head"):
        LPSDownsampling2D(logits_model=ours, scorer_head="official")
