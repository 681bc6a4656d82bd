"""The per-replica train steps of both stages and the training loop.

Each step computes per-example losses, reduces them with
`tf.nn.compute_average_loss(..., global_batch_size=...)` and lets the Keras
optimizer all-reduce (sum) the gradients across replicas
(`optimizers.apply_gradients`). The loop runs `num_steps` of them per
`tf.function` call and updates the generator's moving average (`ema`)
after each.
"""

import tensorflow as tf

from chromagen_tf import configs
from chromagen_tf import models
from chromagen_tf.models import unet_lite
from chromagen_tf.training import ema
from chromagen_tf.training import losses
from chromagen_tf.training import networks as networks_lib
from chromagen_tf.training import optimizers

# Metrics every loop reports, per stage; all are averages over the batch.
PRETRAIN_METRICS = ('l1',)
GAN_METRICS = ('d_loss', 'g_loss', 'g_adversarial', 'l1', 'd_real', 'd_fake')
# A colour-bins generator also reports its cross-entropy, the loss it
# trains on (L1 of its decoded ab is then a measurement only).
BINS_METRICS = ('ce',)
# A hint branch (`models/hint_branch.py`) trains on L1 of its a*b* only:
# its output is the automatic a*b* plus a correction, not a distribution.
# The terms whose non-finiteness stops training.
LOSS_TERMS = ('l1', 'ce', 'd_loss', 'g_loss', 'g_adversarial')


def metric_names(config: configs.TrainConfig) -> tuple[str, ...]:
    """The metrics a stage's training loop reports, in order."""
    names = GAN_METRICS if config.stage == 'gan' else PRETRAIN_METRICS
    if config.model.color_head == 'bins' and not config.model.hint_branch:
        names += BINS_METRICS
    return names


class StepFunctions:
    """Per-replica steps and the multi-step `tf.function` training loop."""

    def __init__(
        self,
        config: configs.TrainConfig,
        strategy: tf.distribute.Strategy,
        networks: networks_lib.Networks,
        global_step: tf.Variable,
    ):
        self.config = config
        self.strategy = strategy
        self.networks = networks
        self.global_step = global_step
        self.metric_names = metric_names(config)
        # L -> (bin logits, ab) for a colour-bins generator that trains on
        # its cross-entropy, else None.
        self._logits_and_ab = (
            None
            if config.model.hint_branch
            else unet_lite.logits_and_ab_model(networks.generator)
        )
        self._global_batch_size = config.global_batch_size
        self.train_loop = tf.function(self._train_loop)

    def _average(self, per_example):
        return tf.nn.compute_average_loss(
            per_example, global_batch_size=self._global_batch_size
        )

    # --- Per-replica steps -------------------------------------------------

    def pretrain_step(self, batch):
        """One generator update on the reconstruction loss."""
        l_channel, ab, *hints = batch
        generator = self.networks.generator
        optimizer = self.networks.generator_optimizer
        with tf.GradientTape() as tape:
            _, reconstruction, metrics = self._reconstruction(
                l_channel, ab, hints
            )
            scaled = optimizer.scale_loss(reconstruction)
        gradients = tape.gradient(scaled, generator.trainable_variables)
        optimizers.apply_gradients(
            optimizer, gradients, generator.trainable_variables
        )
        return metrics

    def _reconstruction(self, l_channel, ab, hints):
        """The generator's forward pass and its reconstruction loss.

        hints: [hint_ab, hint_mask] for a hint generator, or [] (none).

        Returns:
          (predicted ab, the loss term: L1 or, for a colour-bins head, the
          cross-entropy, {'l1': ..., ['ce': ...]}).
        """
        inputs = models.generator_inputs(
            self.networks.generator, l_channel, *hints
        )
        if self._logits_and_ab is None:
            prediction = self.networks.generator(inputs, training=True)
            l1 = self._average(losses.l1(ab, prediction))
            return prediction, l1, {'l1': l1}
        logits, prediction = self._logits_and_ab(inputs, training=True)
        ce = self._average(losses.color_bins_cross_entropy(ab, logits))
        l1 = self._average(losses.l1(ab, tf.stop_gradient(prediction)))
        return prediction, ce, {'l1': l1, 'ce': ce}

    def gan_step(self, batch):
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
                self._reconstruction(l_channel, ab, hints)
            )
            with g_tape.stop_recording():
                with tf.GradientTape() as d_tape:
                    real_input = tf.concat(
                        [l_channel, tf.cast(ab, l_channel.dtype)], axis=-1
                    )
                    fake_input = tf.concat(
                        [
                            l_channel,
                            tf.cast(tf.stop_gradient(fake_ab), l_channel.dtype),
                        ],
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
                optimizers.apply_gradients(
                    d_optimizer, d_gradients, discriminator.trainable_variables
                )
            fresh_logits = discriminator(
                tf.concat([l_channel, tf.cast(fake_ab, l_channel.dtype)], -1),
                training=True,
            )
            g_adversarial = self._average(
                losses.generator_adversarial_loss(fresh_logits, config.gan_loss)
            )
            weight = (
                config.lambda_ce
                if self._logits_and_ab is not None
                else config.lambda_l1
            )
            g_loss = g_adversarial + weight * reconstruction
            g_scaled = g_optimizer.scale_loss(g_loss)
        g_gradients = g_tape.gradient(g_scaled, generator.trainable_variables)
        metrics = {
            'd_loss': d_loss,
            'g_loss': g_loss,
            'g_adversarial': g_adversarial,
            **reconstruction_metrics,
            'd_real': self._average(
                losses.discriminator_score(real_logits, config.gan_loss)
            ),
            'd_fake': self._average(
                losses.discriminator_score(fake_logits, config.gan_loss)
            ),
        }
        optimizers.apply_gradients(
            g_optimizer, g_gradients, generator.trainable_variables
        )
        return metrics

    def replica_step(self, batch):
        """The stage's step on one replica's batch; returns its metrics."""
        if self.config.stage == 'gan':
            return self.gan_step(batch)
        return self.pretrain_step(batch)

    # --- Distributed -------------------------------------------------------

    def _sum(self, per_replica):
        return tf.nest.map_structure(
            lambda value: self.strategy.reduce(
                tf.distribute.ReduceOp.SUM, value, axis=None
            ),
            per_replica,
        )

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
                ema.update_ema(
                    self.networks.ema_generator,
                    self.networks.generator,
                    self.config.ema_decay,
                    global_step,
                )
            finite = tf.reduce_all(
                [
                    tf.math.is_finite(values[name])
                    for name in self.metric_names
                    if name in LOSS_TERMS
                ]
            )
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
