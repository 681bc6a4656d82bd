"""The networks a training stage builds, with their optimizers.

`build_networks` builds the generator (and its moving average, and for the
GAN stage the discriminator) under the stage's precision policy and seed,
and restores both afterwards: building a stage in a library or a test
leaves neither the global Keras dtype policy nor the global random state
changed. Layers keep the policy they were built under, and Keras 3 draws
each initializer's seed from Python's `random` when the layer is made, so
the built networks need neither global to stay set.
"""

import contextlib
import dataclasses
import random
from typing import Optional

import keras
import numpy as np

from chromagen_tf import configs
from chromagen_tf import models
from chromagen_tf.training import ema
from chromagen_tf.training import optimizers


@dataclasses.dataclass
class Networks:
    generator: keras.Model
    generator_optimizer: keras.optimizers.Optimizer
    discriminator: Optional[keras.Model] = None
    discriminator_optimizer: Optional[keras.optimizers.Optimizer] = None
    # The moving average of the generator's weights (config.ema_decay).
    ema_generator: Optional[keras.Model] = None

    @property
    def inference_generator(self) -> keras.Model:
        """The generator that evaluation and export use: the EMA if kept."""
        return self.ema_generator or self.generator


@contextlib.contextmanager
def dtype_policy(policy: str):
    """The global Keras dtype policy set to `policy` inside the block only.

    Keras 3 has no policy scope of its own (keras.config.set_dtype_policy
    is global).
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


@contextlib.contextmanager
def seeded(seed: int):
    """Python's and NumPy's global random state seeded inside the block.

    Same seed, same initial weights: runs are reproducible, and every worker
    of a multi-worker job starts from identical variables. The state from
    before is restored on exit, where keras.utils.set_random_seed would
    leave its seed behind for the whole process.
    """
    python_state = random.getstate()
    numpy_state = np.random.get_state()
    random.seed(seed)
    np.random.seed(seed)
    try:
        yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def build_networks(
    config: configs.TrainConfig,
    policy: str,
    total_steps: Optional[int] = None,
    log_prior: Optional[list[float]] = None,
) -> Networks:
    """Builds models and optimizers; call inside `strategy.scope()`.

    The models are built under `policy` and config.seed (see the module
    docstring). total_steps, the stage's length (default:
    config.train_steps), places the learning-rate decay of
    config.lr_decay_fraction. log_prior: a colour-bins model's prior over
    the bins; None: MODEL_DIR/bin_prior.json's.
    """
    with dtype_policy(policy), seeded(config.seed):
        return _build_networks(config, policy, total_steps, log_prior)


def _build_networks(config, policy, total_steps, log_prior):
    if total_steps is None:
        total_steps = config.train_steps
    encoder_weights = config.encoder_weights
    if config.stage == 'gan' or encoder_weights.lower() == 'none':
        # The GAN stage copies its generator from pretraining instead.
        encoder_weights = None
    if log_prior is None:
        log_prior = models.loading.read_log_prior(config.model_dir)
    generator = models.build_from_config(
        config.model,
        log_prior,
        encoder_weights=encoder_weights,
        synchronized_batch_norm=config.sync_batch_norm,
    )
    generator_optimizer = optimizers.make_optimizer(
        optimizers.learning_rate(config.lr_g, config, total_steps),
        config,
        policy,
        'generator_optimizer',
    )
    # Keras 3 creates optimizer slots lazily; under MirroredStrategy a first
    # apply() inside strategy.run then fails (keras-team/keras#19246).
    generator_optimizer.build(generator.trainable_variables)
    networks = Networks(generator, generator_optimizer)
    if config.ema_decay > 0:
        networks.ema_generator = models.build_from_config(
            config.model,
            log_prior,
            synchronized_batch_norm=config.sync_batch_norm,
        )
        ema.copy_weights(generator, networks.ema_generator)
    if config.stage == 'gan':
        networks.discriminator = models.build_discriminator(
            width=config.model.discriminator_width,
            spectral_norm=config.model.spectral_norm,
            synchronized_batch_norm=config.sync_batch_norm,
        )
        networks.discriminator_optimizer = optimizers.make_optimizer(
            optimizers.learning_rate(config.lr_d, config, total_steps),
            config,
            policy,
            'discriminator_optimizer',
        )
        networks.discriminator_optimizer.build(
            networks.discriminator.trainable_variables
        )
    return networks
