"""The default run: a small LPS ResNet on the built-in synthetic_shapes data.

Works on a fresh machine with no data and no network; about 2 minutes on 2 CPU cores
(test accuracy ~100%, circular consistency 100%; README "Training and evaluation").
`--config.model.downsampling=strided` trains the standard network with the same recipe.
"""

from configs.base import get_base_config, tau_recipe


def get_config():
    config = get_base_config()
    config.model.downsampling = "lps"
    config.data.name = "synthetic_shapes"
    config.model.depth = 20
    config.model.stem = "cifar"
    config.model.logits_channels = 8  # narrow scorers: same guarantee, less compute
    config.data.num_train_examples = 10000  # the full train split
    config.data.num_eval_examples = 2000  # the full test split (never trained on)
    config.train.epochs = 3
    # Per step, batch 128 costs about what batch 64 does on 2 CPU cores (measured: 23-24 s
    # per epoch of 10k images at 128, 27 s per 5k at 64), so the larger batch halves the time.
    config.train.batch_size = 128
    # Training starts on a plateau near chance. At 0.1, seed 1 never left it in 3 epochs
    # (seed 0 did; 0.2 failed too); at 0.05, seeds 0-2 and another draw of the data all left
    # it in the first epoch and reached 99.9-100% test accuracy.
    config.train.learning_rate = 0.05
    config.train.jit_compile = True  # XLA: ResNet-20 trains 2x faster on CPU (benchmarks/)
    config.train.lr_schedule = {"name": "cosine", "warmup_epochs": 0.2}
    config.train.tau_schedule = tau_recipe("cifar", step_size=1)
    return config
