"""One and two SGD steps of converted official networks match the official PyTorch steps.

Official side (tests/fixtures/official/README.md, "Step fixtures"): train mode, BN batch
statistics, LPS softmax(logits / tau) with tau = 0.5 and no noise, cross-entropy loss,
torch.optim.SGD(lr=0.1, momentum=0.9, weight_decay=5e-4), LPS scorers (names containing
`component_selection`) without weight decay.

Ours: the converted model (its LPS layers read `train_mode="softmax"` and tau from the
checkpoint), `training=True`, sparse cross-entropy from logits (= NLL of log_softmax),
`PyTorchSGD` with `exclude_from_weight_decay`.

BatchNorm running variance: PyTorch updates it with the *unbiased* batch variance
(n / (n - 1)), Keras' BatchNormalization with the biased one (2.1e-3 of the value after
one LPS step here). Converted models use `TorchBatchNormalization` (`SamplingSpec(
batch_norm="torch")`), which updates as PyTorch does, so running_var is compared directly.
`num_batches_tracked` has no Keras counterpart (not compared).

Each case runs twice: our model in float32 (the practical setting) and in float64 (built
under a float64 dtype policy). The float64 run removes our own rounding, so it is compared
with tight tolerances that a wrong update rule must fail (see TOLERANCES).
"""

import contextlib
import json

import keras
import numpy as np
import pytest

from lps_keras.convert.official import convert_checkpoint_with_map
from lps_keras.training import exclude_from_weight_decay
from lps_keras.training.optimizers import PyTorchSGD
from tests.convert._official import (
    APS_CKPT,
    LPS_CKPT,
    decompress,
    load_npz,
    nhwc,
    official_dir,  # noqa: F401 (fixture)
)

RTOL = 1e-5
# Measured: max |ours - official| / max |official| per tensor, worst tensor; pytest -s
# prints them. The official values are float32 (the fixture).
#
# float32 ours. The LPS step-1 update of the stem conv `core.conv1.weight` differs by
# 1.0e-4 of its max weight (all other compared entries within 3e-7; the loss to 1e-7) and
# step 2 by 1.6e-2. Cause, proven by tools/step_parity_float64.py (official code run in
# float64 with `model.double()`, ours in float64, same checkpoint and batch):
#   * float64 ours vs float64 official: pre-ReLU activations 1.9e-14, gradients 1.5e-13,
#     step-1 weights 2.4e-12, step-2 weights 1.4e-8 -- the math is the same;
#   * in the step-1 forward exactly one ReLU input has another sign in our float32 run
#     than in the exact (float64) one: the input of the last ReLU of layer4.1 at
#     (n=0, c=150, h=1, w=2) is -9.4e-7 exactly (tensor max 7.66, i.e. 1.2e-7 of it:
#     within float32 rounding), ours gives +6.0e-8, the official float32 -3.5e-7. That
#     tensor's float32 rounding error is 3.8e-6 (ours) / 2.2e-6 (official) of its max,
#     so its sign there is not determined by float32 arithmetic. The flipped ReLU mask
#     passes one more upstream gradient entry, which changes the step-1 gradient of every
#     layer below (layer4.1.conv2 1.2e-2, stem conv 8.2e-4 of their max gradient; the stem
#     conv's gradient cancels most and is the only one whose update is large relative to
#     its weights: lr * grad ~ 1/8 of max |w|).
#   * the official float64 step with ours' value (+6.0e-8) at that one entry (a constant
#     shift, backward unchanged but for the mask) agrees with our float32 step to 1.5e-6
#     (stem conv gradient), 1.9e-7 (stem conv step-1 weights), 1.4e-6 (worst step-1
#     tensor); the official float32 step is 1.4e-6 / 1.8e-7 / 6.5e-7 from the plain float64
#     one. So both float32 results are equally close to the exact step *for their own
#     ReLU mask*; the 1e-4 is one mask entry at a kink, not an error of ours. (Whole
#     tensors, not only the sampled entries compared here, show the flip elsewhere too:
#     layer4.1.conv2 8.6e-5, layer1.0.conv1 2.0e-5 at step 1 -- ours vs off64flip all
#     <= 1.4e-6.)
#   * step 2 starts from step 1's weights after a large first step (lr 0.1; the loss goes
#     2.32 -> 4.34): the flip's effect there is 1.6e-2 (ours32 vs official float32 and vs
#     float64 alike), step-2 loss 1.03e-5. (With the step-1 flip matched, 1.6e-3 remains
#     at step 2; not analysed further -- presumably kinks in the step-2 forward.)
# APS ResNet-20: step 1 2.4e-6, step 2 4.5e-4 (conv1.1.weight). Here it is the *official*
# float32 step that is off: run in float64 (same method, scratch check), official float32
# vs official float64 is 2.2e-6 (step 1) / 4.5e-4 (step 2), ours float32 vs official
# float64 1.9e-6 / 2.7e-6, ours float64 vs official float64 2.4e-12 / 1.3e-8.
# The float32 tolerances are these values with a margin; they cannot see a 5e-5 update
# error, hence the float64 run.
#
# float64 ours vs the float32 official fixture: what remains is the official float32
# rounding (LPS: official float32 vs float64 step 1 <= 6.5e-7, step 2 <= 1.5e-6; measured
# here 6.0e-7 / 1.5e-6). LPS tolerances 5e-6 catch the wrong decay rules, which change the
# compared weights by ~5e-5 (lr * wd): decay on the LPS scorers (step 1: 5.0e-5), Keras'
# decoupled decay instead of PyTorch's coupled L2 (step 2: the 0.9 * wd * w in the
# momentum buffer, 4.6e-5) -- both fail this test (checked by patching the optimizer).
# APS float64 keeps 1e-3 at step 2: the official float32 step 2 itself is 4.5e-4 off.
TOLERANCES = {
    ("aps", "float32"): {
        1: {"weights": 1e-5, "sums": 1e-5, "running_var": 1e-5},
        2: {"weights": 1e-3, "sums": 1e-5, "running_var": 1e-5, "loss": 1e-5}},
    ("lps", "float32"): {
        1: {"weights": 2e-4, "sums": 1e-5, "running_var": 1e-5},
        2: {"weights": 3e-2, "sums": 1e-4, "running_var": 1e-4, "loss": 2e-5}},
}
TOLERANCES[("lps", "float64")] = {
    1: {"weights": 5e-6, "sums": 5e-6, "running_var": 5e-6},
    2: {"weights": 5e-6, "sums": 5e-6, "running_var": 5e-6, "loss": 1e-6}}
TOLERANCES[("aps", "float64")] = {
    1: {"weights": 5e-6, "sums": 5e-6, "running_var": 5e-6},
    2: {"weights": 1e-3, "sums": 1e-5, "running_var": 5e-6, "loss": 1e-6}}
CASES = {
    "lps": (LPS_CKPT, "lps_resnet18_cifar10_circular_step.npz"),
    "aps": (APS_CKPT, "aps_resnet20_cifar10_circular_f3_step.npz"),
}


def _to_torch_layout(value, path):
    if value.ndim == 4:
        return value.transpose(3, 2, 0, 1)
    if value.ndim == 2:
        return value.T
    return value


@contextlib.contextmanager
def _float_dtype(dtype):
    old_floatx, old_policy = keras.config.floatx(), keras.config.dtype_policy()
    keras.config.set_floatx(dtype)
    keras.config.set_dtype_policy(dtype)
    try:
        yield
    finally:
        keras.config.set_floatx(old_floatx)
        keras.config.set_dtype_policy(old_policy)


def _train(model, data, steps, dtype="float32"):
    optimizer = PyTorchSGD(0.1, momentum=0.9, weight_decay=5e-4)
    excluded = exclude_from_weight_decay(optimizer, model)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    x, y = nhwc(data["input"]).astype(dtype), data["labels"].astype("int64")
    import tensorflow as tf

    losses, states = [], []
    for _ in range(steps):
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
        losses.append(float(loss))
        states.append({v.path: np.asarray(v.numpy()) for v in model.weights})
    return losses, states, excluded


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_two_steps_match_official(official_dir, case, dtype):  # noqa: F811
    ckpt, step_file = CASES[case]
    data = load_npz(step_file)
    meta = json.loads(str(data["meta"]))
    with _float_dtype(dtype):
        model, tensor_map = convert_checkpoint_with_map(decompress(ckpt, official_dir))
        assert {v.dtype for v in model.trainable_variables} == {dtype}
        losses, states, excluded = _train(model, data, 2, dtype)
    tolerances = TOLERANCES[(case, dtype)]

    # Weight-decay exclusion: exactly the official `component_selection` parameters.
    excluded_paths = {v.path for v in excluded}
    official_excluded = {k for k, p in tensor_map.items() if "component_selection" in k
                         and p in {v.path for v in model.trainable_variables}}
    assert excluded_paths == {tensor_map[k] for k in official_excluded}
    if case == "lps":
        listed = meta["no_weight_decay_params"]
        listed = json.loads(listed.replace("'", '"')) if isinstance(listed, str) else listed
        assert official_excluded == set(listed)
        assert len(excluded_paths) == 12

    loss_rel = np.abs(np.array(losses) - data["loss"]) / np.abs(data["loss"])
    print(f"\n{case} {dtype}: losses ours {losses} official {data['loss'].tolist()} "
          f"max rel {loss_rel.max():.3e}")
    assert loss_rel[0] <= RTOL
    assert loss_rel[1] <= tolerances[2]["loss"]

    prefix = "step"
    report = {}
    for step in (1, 2):
        worst = report[step] = {"weights": 0.0, "sums": 0.0, "running_var": 0.0,
                                "worst_key": None}

        def note(kind, err, key, worst=worst):
            if err > worst[kind]:
                worst[kind] = float(err)
                if err >= max(
                        worst[k] for k in ("weights", "sums", "running_var")):
                    worst["worst_key"] = key

        ours = states[step - 1]
        for key, path in tensor_map.items():
            if path not in ours:
                continue  # a documented not-needed buffer
            value = _to_torch_layout(ours[path], path)
            if f"{prefix}{step}/full/{key}" in data:
                want = data[f"{prefix}{step}/full/{key}"]
                scale = max(np.abs(want).max(), 1e-30)
                if key.endswith("running_var"):
                    note("running_var", np.abs(value - want).max() / scale, key)
                    continue
                note("weights", np.abs(value - want).max() / scale, key)
            else:
                idx = data[f"idx/{key}"]
                want = data[f"{prefix}{step}/val/{key}"]
                flat = value.reshape(-1)
                note("weights", np.abs(flat[idx] - want).max() / np.abs(want).max(), key)
                for stat, got in (("sum", flat.astype(np.float64).sum()),
                                  ("sumsq", np.square(flat.astype(np.float64)).sum())):
                    ref = float(data[f"{prefix}{step}/{stat}/{key}"])
                    # A sum can cancel; compare to the sum of magnitudes' scale.
                    scale = np.abs(flat).astype(np.float64).sum() if stat == "sum" else abs(ref)
                    note("sums", abs(got - ref) / scale, key)
    print(f"{case} {dtype}: max differences (relative to max|official| per tensor): {report}")
    for step in (1, 2):
        for kind in ("weights", "sums", "running_var"):
            assert report[step][kind] <= tolerances[step][kind], (step, kind, report)
