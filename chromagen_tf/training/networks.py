"""The networks a training stage builds, with their optimizers.

`build_networks` builds the generator (and its moving average, and for the
GAN stage the discriminator) and both optimizers.
"""

import dataclasses
from typing import Optional

import keras

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


def build_networks(config: configs.TrainConfig, policy: str,
                   total_steps: Optional[int] = None,
                   log_prior: Optional[list[float]] = None) -> Networks:
    """Builds models and optimizers; call inside `strategy.scope()`.

    total_steps, the stage's length (default:
    config.train_steps), places the learning-rate decay of
    config.lr_decay_fraction. log_prior: a colour-bins model's prior over
    the bins; None: MODEL_DIR/bin_prior.json's.
    """
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
        optimizers.learning_rate(config.lr_g, config, total_steps), config,
        policy, 'generator_optimizer'
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
            config, policy, 'discriminator_optimizer'
        )
        networks.discriminator_optimizer.build(
            networks.discriminator.trainable_variables
        )
    return networks
