"""The networks, optimizers and per-replica train steps of both stages.

Each step computes per-example losses, reduces them with
`tf.nn.compute_average_loss(..., global_batch_size=...)` and lets the Keras
optimizer all-reduce (sum) the gradients across replicas. For float16 the
optimizers are wrapped in `keras.optimizers.LossScaleOptimizer`: the loss is
scaled with `optimizer.scale_loss()`, and `optimizer.apply()` unscales the
gradients and skips the update (halving the scale) when they are not finite.

With `ema_decay > 0` a second generator holds an exponential moving average
of the first one's weights, updated after every step in cross-replica
context; evaluation, export and the GAN stage's start use it.
"""

import dataclasses
from typing import Optional

import keras
import tensorflow as tf

from chromagen_tf import configs
from chromagen_tf import models
from chromagen_tf.models import unet_lite
from chromagen_tf.training import losses

# Metrics every loop reports, per stage; all are averages over the batch.
PRETRAIN_METRICS = ('l1',)
GAN_METRICS = ('d_loss', 'g_loss', 'g_adversarial', 'l1', 'd_real', 'd_fake')
# A colour-bins generator also reports its cross-entropy, the loss it
# trains on (L1 of its decoded ab is then a measurement only).
BINS_METRICS = ('ce',)
# The terms whose non-finiteness stops training.
LOSS_TERMS = ('l1', 'ce', 'd_loss', 'g_loss', 'g_adversarial')


def metric_names(config: configs.TrainConfig) -> tuple[str, ...]:
    """The metrics a stage's training loop reports, in order."""
    names = GAN_METRICS if config.stage == 'gan' else PRETRAIN_METRICS
    if config.model.color_head == 'bins':
        names += BINS_METRICS
    return names


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


def copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copies every weight (BatchNorm statistics too) of one generator."""
    for to, value in zip(target.weights, source.weights, strict=True):
        to.assign(value)


def ema_decay_at(decay: float, step):
    """The decay of the update after `step` steps: min(decay, (1+n)/(10+n)).

    The warm-up of tf.train.ExponentialMovingAverage(num_updates=...): the
    average follows the first steps closely instead of holding on to the
    initial weights for ~1 / (1 - decay) steps.
    """
    step = tf.cast(step, tf.float32)
    return tf.minimum(tf.constant(decay, tf.float32),
                      (1.0 + step) / (10.0 + step))


def update_ema(ema_generator: keras.Model, generator: keras.Model, decay,
               step) -> None:
    """ema <- d * ema + (1 - d) * weights, for every weight, d at `step`.

    Called in cross-replica context, after the optimizers have applied the
    all-reduced gradients: the trainable weights are then the same on every
    replica, and the assignment writes every replica's copy of the average.
    BatchNorm's moving statistics are averaged alike (replica 0's, as a
    checkpoint saves them).
    """
    d = ema_decay_at(decay, step)
    for average, value in zip(ema_generator.weights, generator.weights,
                              strict=True):
        average.assign(
            tf.cast(d, average.dtype) * average
            + tf.cast(1.0 - d, average.dtype) * tf.cast(value, average.dtype))


class LinearDecayToZero(keras.optimizers.schedules.LearningRateSchedule):
    """Constant, then linearly down to zero over the last `decay_steps`.

    pix2pix's schedule (Isola et al. 2017, and its reference code's
    `n_epochs` / `n_epochs_decay`): the learning rate stays at its initial
    value, then falls linearly to zero by `total_steps`. A fixed budget is
    best spent with a rate that reaches zero at its end (Li et al. 2020,
    "Budgeted training").
    """

    def __init__(self, initial_learning_rate: float, total_steps: int,
                 decay_steps: int):
        self.initial_learning_rate = float(initial_learning_rate)
        self.total_steps = int(total_steps)
        self.decay_steps = max(int(decay_steps), 1)

    def __call__(self, step):
        remaining = tf.cast(self.total_steps, tf.float32) - tf.cast(
            step, tf.float32)
        fraction = tf.clip_by_value(remaining / self.decay_steps, 0.0, 1.0)
        return self.initial_learning_rate * fraction

    def get_config(self):
        return dict(initial_learning_rate=self.initial_learning_rate,
                    total_steps=self.total_steps,
                    decay_steps=self.decay_steps)


def learning_rate(initial: float, config: configs.TrainConfig,
                  total_steps: int):
    """initial, or its LinearDecayToZero if config.lr_decay_fraction > 0."""
    if config.lr_decay_fraction <= 0:
        return initial
    if total_steps < 1:  # A decay to nowhere would train at rate 0.
        raise ValueError('lr_decay_fraction needs the stage\'s total_steps.')
    return LinearDecayToZero(initial, total_steps,
                             round(config.lr_decay_fraction * total_steps))


def _make_optimizer(learning_rate, config, policy, name):
    optimizer = keras.optimizers.Adam(
        learning_rate=learning_rate,
        beta_1=config.beta1,
        beta_2=config.beta2,
        name=name,
    )
    if policy == 'mixed_float16':
        optimizer = keras.optimizers.LossScaleOptimizer(
            optimizer, name=name + '_loss_scale'
        )
    return optimizer


def build_networks(config: configs.TrainConfig, policy: str,
                   total_steps: Optional[int] = None,
                   log_prior: Optional[list[float]] = None) -> Networks:
    """Builds models and optimizers; call inside `strategy.scope()`.

    total_steps, the stage's length (default: config.train_steps), places
    the learning-rate decay of config.lr_decay_fraction. log_prior: a
    colour-bins model's prior over the bins; None: MODEL_DIR/bin_prior.json's.
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
    generator_optimizer = _make_optimizer(
        learning_rate(config.lr_g, config, total_steps), config, policy,
        'generator_optimizer'
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
        copy_weights(generator, networks.ema_generator)
    if config.stage == 'gan':
        networks.discriminator = models.build_discriminator(
            width=config.model.discriminator_width,
            spectral_norm=config.model.spectral_norm,
            synchronized_batch_norm=config.sync_batch_norm,
        )
        networks.discriminator_optimizer = _make_optimizer(
            learning_rate(config.lr_d, config, total_steps), config, policy,
            'discriminator_optimizer'
        )
        networks.discriminator_optimizer.build(
            networks.discriminator.trainable_variables
        )
    return networks


def apply_gradients(optimizer, gradients, variables) -> None:
    """optimizer.apply, with float16 overflow agreed across replicas.

    Keras' LossScaleOptimizer decides to skip a step from the gradients it
    is given, which in a replica context are that replica's own, before the
    all-reduce; under MirroredStrategy it acts on replica 0's verdict, so an
    overflow on replica 1 alone would be summed into every weight. Here the
    replicas first all-reduce a count of those that overflowed; if any did,
    every replica's gradients are made non-finite, so that all of them skip
    the step and halve the loss scale together.
    """
    context = tf.distribute.get_replica_context()
    if (isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
            and context is not None and context.num_replicas_in_sync > 1):
        finite = tf.reduce_all([
            tf.reduce_all(tf.math.is_finite(gradient))
            for gradient in gradients if gradient is not None])
        overflowed = context.all_reduce(
            tf.distribute.ReduceOp.SUM,
            tf.cast(tf.logical_not(finite), tf.float32))
        poison = tf.where(overflowed > 0, float('nan'), 0.0)
        gradients = [
            None if gradient is None else
            gradient + tf.cast(poison, gradient.dtype)
            for gradient in gradients]
    optimizer.apply(gradients, variables)


class StepFunctions:
    """Per-replica steps and the multi-step `tf.function` training loop."""

    def __init__(self, config, strategy, networks: Networks, global_step):
        self.config = config
        self.strategy = strategy
        self.networks = networks
        self.global_step = global_step
        self.metric_names = metric_names(config)
        # L -> (bin logits, ab) for a colour-bins generator, else None.
        self._logits_and_ab = unet_lite.logits_and_ab_model(
            networks.generator)
        self._global_batch_size = config.global_batch_size
        self.train_loop = tf.function(self._train_loop)

    def _average(self, per_example):
        return tf.nn.compute_average_loss(
            per_example, global_batch_size=self._global_batch_size
        )

    # --- Per-replica steps -------------------------------------------------

    def pretrain_step(self, batch, return_gradients=False):
        l_channel, ab, *hints = batch
        generator = self.networks.generator
        optimizer = self.networks.generator_optimizer
        with tf.GradientTape() as tape:
            _, reconstruction, metrics = self._reconstruction(
                l_channel, ab, hints)
            scaled = optimizer.scale_loss(reconstruction)
        gradients = tape.gradient(scaled, generator.trainable_variables)
        if return_gradients:
            return metrics, {'generator': gradients}
        apply_gradients(optimizer, gradients, generator.trainable_variables)
        return metrics

    def _reconstruction(self, l_channel, ab, hints):
        """The generator's forward pass and its reconstruction loss.

        hints: [hint_ab, hint_mask] for a hint generator, or [] (none).

        Returns:
          (predicted ab, the loss term: L1 or, for a colour-bins head, the
          cross-entropy, {'l1': ..., ['ce': ...]}).
        """
        inputs = models.generator_inputs(self.networks.generator, l_channel,
                                         *hints)
        if self._logits_and_ab is None:
            prediction = self.networks.generator(inputs, training=True)
            l1 = self._average(losses.l1(ab, prediction))
            return prediction, l1, {'l1': l1}
        logits, prediction = self._logits_and_ab(inputs, training=True)
        ce = self._average(losses.color_bins_cross_entropy(ab, logits))
        l1 = self._average(losses.l1(ab, tf.stop_gradient(prediction)))
        return prediction, ce, {'l1': l1, 'ce': ce}

    def gan_step(self, batch, return_gradients=False):
        """One D update on the detached fake, then one G update on fresh D.

        The order is the tutorial's and pix2pix's: the generator loss uses
        D(fake) recomputed after the discriminator's update.
        """
        l_channel, ab, *hints = batch
        config = self.config
        generator = self.networks.generator
        discriminator = self.networks.discriminator
        g_optimizer = self.networks.generator_optimizer
        d_optimizer = self.networks.discriminator_optimizer
        with tf.GradientTape() as g_tape:
            fake_ab, reconstruction, reconstruction_metrics = (
                self._reconstruction(l_channel, ab, hints))
            with g_tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    real_input = tf.concat(
                        [l_channel, tf.cast(ab, l_channel.dtype)], axis=-1
                    )
                    fake_input = tf.concat(
                        [l_channel,
                         tf.cast(tf.stop_gradient(fake_ab), l_channel.dtype)],
                        axis=-1,
                    )
                    real_logits = discriminator(real_input, training=True)
                    fake_logits = discriminator(fake_input, training=True)
                    d_loss = self._average(
                        losses.discriminator_loss(
                            real_logits, fake_logits, config.gan_loss
                        )
                    )
                    d_scaled = d_optimizer.scale_loss(d_loss)
                d_gradients = d_tape.gradient(
                    d_scaled, discriminator.trainable_variables
                )
                if not return_gradients:
                    apply_gradients(d_optimizer, d_gradients,
                                    discriminator.trainable_variables)
            fresh_logits = discriminator(
                tf.concat([l_channel, tf.cast(fake_ab, l_channel.dtype)], -1),
                training=True,
            )
            g_adversarial = self._average(
                losses.generator_adversarial_loss(fresh_logits,
                                                  config.gan_loss)
            )
            weight = (config.lambda_ce if self._logits_and_ab is not None
                      else config.lambda_l1)
            g_loss = g_adversarial + weight * reconstruction
            g_scaled = g_optimizer.scale_loss(g_loss)
        g_gradients = g_tape.gradient(g_scaled, generator.trainable_variables)
        metrics = {
            'd_loss': d_loss,
            'g_loss': g_loss,
            'g_adversarial': g_adversarial,
            **reconstruction_metrics,
            'd_real': self._average(
                losses.discriminator_score(real_logits, config.gan_loss)),
            'd_fake': self._average(
                losses.discriminator_score(fake_logits, config.gan_loss)),
        }
        if return_gradients:
            return metrics, {
                'generator': g_gradients, 'discriminator': d_gradients
            }
        apply_gradients(g_optimizer, g_gradients,
                        generator.trainable_variables)
        return metrics

    def replica_step(self, batch, return_gradients=False):
        if self.config.stage == 'gan':
            return self.gan_step(batch, return_gradients)
        return self.pretrain_step(batch, return_gradients)

    # --- Distributed -------------------------------------------------------

    def _sum(self, per_replica):
        return tf.nest.map_structure(
            lambda value: self.strategy.reduce(
                tf.distribute.ReduceOp.SUM, value, axis=None
            ),
            per_replica,
        )

    def distributed_gradients(self, batch):
        """Losses and all-replica gradients of one step, without applying.

        Used by the tests that check that N replicas match one.
        """
        metrics, gradients = self.strategy.run(
            self.replica_step, args=(batch, True)
        )
        return self._sum(metrics), self._sum(gradients)

    def _train_loop(self, iterator, num_steps):
        """Runs up to num_steps steps; stops at the first non-finite loss.

        Returns:
          (mean of each metric over the steps run, the global step of the
          first non-finite loss or -1, the metrics at that step).
        """
        global_step = self.global_step
        totals = {name: tf.constant(0.0) for name in self.metric_names}
        bad_values = dict(totals)
        first_bad_step = tf.constant(-1, tf.int64)
        steps_run = tf.constant(0.0)
        for _ in tf.range(num_steps):
            values = self._sum(
                self.strategy.run(self.replica_step, args=(next(iterator),))
            )
            global_step.assign_add(1)
            if self.networks.ema_generator is not None:
                update_ema(self.networks.ema_generator,
                           self.networks.generator, self.config.ema_decay,
                           global_step)
            finite = tf.reduce_all([
                tf.math.is_finite(values[name])
                for name in self.metric_names if name in LOSS_TERMS
            ])
            if not finite:
                first_bad_step = global_step.read_value()
                bad_values = values
                break
            totals = {name: totals[name] + values[name] for name in totals}
            steps_run += 1.0
        means = {
            name: total / tf.maximum(steps_run, 1.0)
            for name, total in totals.items()
        }
        return means, first_bad_step, bad_values
