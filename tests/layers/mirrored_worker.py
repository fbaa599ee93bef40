"""Runs in its own process: logical CPU devices must exist before TF initialises.

Prints one JSON line with what tests/layers/test_mirrored.py checks.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

import numpy as np  # noqa: E402

from lps_keras.layers import LPSDownsampling2D  # noqa: E402


def main():
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    x = np.random.default_rng(0).normal(size=(4, 8, 8, 4)).astype("float32")
    with strategy.scope():
        layer = LPSDownsampling2D(hidden_channels=4, return_probs=True, seed=5)
        layer.build(x.shape)

    # The same images on both replicas: any difference in probs comes from the noise.
    same = tf.constant(x)

    @tf.function
    def train_probs():
        return strategy.run(lambda: layer(same, training=True)[1])

    @tf.function
    def infer(batch):
        return strategy.run(lambda v: layer(v, training=False)[0], args=(batch,))

    probs = [strategy.experimental_local_results(train_probs()) for _ in range(2)]
    dist = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices(x).batch(4))
    replica_out = np.concatenate(
        [v.numpy() for v in strategy.experimental_local_results(infer(next(iter(dist))))])
    single = layer(x, training=False)[0].numpy()
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "probs_step1": [p.numpy().tolist() for p in probs[0]],
        "probs_step2": [p.numpy().tolist() for p in probs[1]],
        "max_inference_diff": float(np.abs(replica_out - single).max()),
    }))


if __name__ == "__main__":
    sys.exit(main())
