"""The one distribution fact a layer needs: which replica is running it.

Kept apart so the layers stay backend-neutral; on non-TensorFlow backends (no
tf.distribute) every call runs as replica 0.
"""

import keras


def replica_id():
    """Replica index in the sync group (0 outside a distribution strategy)."""
    if keras.backend.backend() != "tensorflow":
        return 0
    import tensorflow as tf

    context = tf.distribute.get_replica_context()
    if context is None:  # cross-replica context: a single logical caller
        return 0
    return context.replica_id_in_sync_group


class ReplicaSeedGenerator(keras.random.SeedGenerator):
    """A `SeedGenerator` whose seeds differ per replica.

    Under `MirroredStrategy` the generator state is mirrored, so plain seeds would give every
    replica the same noise; folding the replica id into the seed decorrelates them while
    keeping runs reproducible.
    """

    # Large odd offset: keeps replica seeds apart from the counter's own increments.
    _REPLICA_STRIDE = 1_000_003

    def next(self, ordered=True):
        seed = super().next(ordered=ordered)
        rid = keras.ops.cast(replica_id(), seed.dtype)
        offset = keras.ops.stack([rid * self._REPLICA_STRIDE, keras.ops.zeros_like(rid)])
        return seed + offset
