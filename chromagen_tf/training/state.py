"""The state of a training stage: networks, optimizers, step and checkpoint.

`Trainer` builds them inside `strategy.scope()`, resumes the stage from its
newest checkpoint or initialises it (the GAN stage copies the pretrained
generator), and owns the stage's `tf.train.CheckpointManager`.
"""

import dataclasses
import os
from typing import Optional

from absl import logging
import tensorflow as tf

from chromagen_tf import bundled
from chromagen_tf import configs
from chromagen_tf import errors
from chromagen_tf import models
from chromagen_tf.training import checkpoints
from chromagen_tf.training import distribute
from chromagen_tf.training import ema
from chromagen_tf.training import networks
from chromagen_tf.training import train_steps


def _source_checkpoint(config) -> str:
    """The checkpoint, checkpoint folder or bundled model to start from."""
    source = config.init_from
    if source or config.stage != 'gan':
        return source
    pretrain_dir = configs.stage_dir(config.model_dir, 'pretrain')
    source = tf.train.latest_checkpoint(pretrain_dir)
    if source is None:
        raise errors.TrainingError(
            f'The GAN stage starts from the pretrained generator, but '
            f'{pretrain_dir} has no checkpoint. Run pretraining first:\n'
            f'  python -m chromagen_tf.train --stage=pretrain '
            f'--data_dir={config.data_dir} --model_dir={config.model_dir}'
            '\nor pass --init_from=CHECKPOINT, or --init_from=none to '
            'train the pix2pix baseline from scratch.'
        )
    return source


# How far the run's prior over the colour bins may be from the bundle's
# (log units) when a hint branch trains over that bundle: the bundle's is
# rounded in model.json, and a re-conversion of the same photos moves it
# by about 1e-4.
_PRIOR_TOLERANCE = 0.01


def _check_same_decoding(
    bundled_config, theirs, config, source, generator
) -> None:
    """A hint branch must train over its automatic model as that decodes
    (theirs: the bundle's prior over the colour bins, or None)."""
    wanted = (bundled_config.temperature, bundled_config.prior_strength)
    given = (config.model.temperature, config.model.prior_strength)
    if wanted != given:
        raise errors.TrainingError(
            f'--init_from={source} decodes at temperature {wanted[0]} and '
            f'prior strength {wanted[1]}; a hint branch over it must train '
            f'at the same (got {given[0]} and {given[1]}): pass '
            f'--temperature={wanted[0]} --prior_strength={wanted[1]}.'
        )
    if not wanted[1]:
        return
    ours = generator.get_layer('ab_small').log_prior
    if theirs is None or ours is None:
        return
    gap = max(abs(a - b) for a, b in zip(theirs, ours, strict=True))
    if gap > _PRIOR_TOLERANCE:
        raise errors.TrainingError(
            f'The prior over the colour bins of --data_dir differs from '
            f'that of --init_from={source} by up to {gap:.3g} (log units), '
            'so the frozen model would decode differently than it ships: '
            'train on the data it was trained on.'
        )


def _read_without_hints(config, generator, source: str) -> str:
    """Reads a checkpoint of the same model without hints, by weight path."""
    twin = models.build_from_config(
        dataclasses.replace(config.model, hints=False, hint_branch=False)
    )
    key = models.loading.read_generator(twin, source)
    models.loading.copy_weights_by_path(twin, generator)
    return key + ', without hints'


def _model_config_of(checkpoint_path: str):
    """The ModelConfig of MODEL_DIR/<stage>/ckpt-N's MODEL_DIR, or None."""
    model_dir = os.path.dirname(os.path.dirname(checkpoint_path))
    try:
        return configs.read_model_config(model_dir)
    except errors.NotFoundError:
        return None


def initialise_generator(config, generator) -> str:
    """Copies --init_from (or, for the GAN stage, the pretrained generator)
    into a new stage's generator.

    A source without hints starts a hint generator: every weight but the
    hint convolution's, which keeps its zero start.

    Returns:
      What the generator was initialised from, or '' if nothing.
    """
    source = _source_checkpoint(config)
    if not source and config.model.hint_branch:
        raise errors.TrainingError(
            'A hint branch trains over a frozen automatic model: pass '
            '--init_from an automatic checkpoint, checkpoint folder or '
            'bundled model of the same generator.'
        )
    if not source:
        return ''
    if source.lower() == 'none':
        logging.info('GAN stage from scratch (--init_from=none).')
        return 'scratch'
    if bundled.is_bundled_model(source):
        bundled_generator, bundled_config, bundled_info = (
            bundled.load_generator(source)
        )
        if (
            dataclasses.replace(
                bundled_config,
                hints=config.model.hints,
                hint_branch=config.model.hint_branch,
                hint_correction=config.model.hint_correction,
                temperature=config.model.temperature,
                prior_strength=config.model.prior_strength,
                discriminator_width=(config.model.discriminator_width),
                spectral_norm=config.model.spectral_norm,
            )
            != config.model
        ):
            raise errors.TrainingError(
                f'--init_from={source} holds a {bundled_config.generator} '
                f'(width {bundled_config.width}, {bundled_config.color_head} '
                f'head); this run trains a {config.model.generator} (width '
                f'{config.model.width}, {config.model.color_head} head).'
            )
        if config.model.hint_branch:
            _check_same_decoding(
                bundled_config,
                bundled_info.get(bundled.BIN_PRIOR_KEY),
                config,
                source,
                generator,
            )
        models.loading.copy_weights_by_path(bundled_generator, generator)
        logging.info('Generator initialised from the bundled model %s', source)
        return source
    if tf.io.gfile.isdir(source):
        directory = source
        source = tf.train.latest_checkpoint(directory)
        if source is None:
            raise errors.TrainingError(
                f'--init_from={directory} has no checkpoint.'
            )
    # A checkpoint's model_dir (two levels up) says whether it has hints;
    # checkpoints match variables by position, so a model without hints is
    # read into its own architecture and copied by weight path.
    source_config = _model_config_of(source)
    try:
        if (
            config.model.hints
            and source_config is not None
            and not source_config.hints
        ):
            key = _read_without_hints(config, generator, source)
        else:
            key = models.loading.read_generator(generator, source)
    except (AssertionError, ValueError) as error:
        raise errors.TrainingError(
            f'--init_from={source} does not hold a generator of this '
            f'architecture ({config.model.generator}, width '
            f'{config.model.width}): {error}'
        ) from error
    logging.info(
        '%s stage: generator initialised from %s (%s)',
        config.stage,
        source,
        key,
    )
    return source


class Trainer:
    """Holds the networks, optimizers, checkpoint and step functions."""

    def __init__(
        self,
        config: configs.TrainConfig,
        strategy: tf.distribute.Strategy,
        policy: str,
        total_steps: Optional[int] = None,
        log_prior: Optional[list[float]] = None,
    ):
        """Builds the networks and the checkpoint in the strategy's scope.

        Args:
          log_prior: A colour-bins model's prior over the bins; None: the
            one MODEL_DIR/bin_prior.json holds, if any.
        """
        self.config = config
        self.strategy = strategy
        self.policy = policy
        self.gan = config.stage == 'gan'
        with strategy.scope():
            # Built under config.seed and policy, which stay local to it.
            self.networks = networks.build_networks(
                config, policy, total_steps, log_prior
            )
            self.global_step = tf.Variable(
                0,
                dtype=tf.int64,
                trainable=False,
                name='global_step',
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
            objects = dict(
                step=self.global_step,
                generator=self.networks.generator,
                generator_optimizer=self.networks.generator_optimizer,
            )
            if self.networks.ema_generator is not None:
                objects[checkpoints.EMA_GENERATOR] = self.networks.ema_generator
            if self.gan:
                objects.update(
                    discriminator=self.networks.discriminator,
                    discriminator_optimizer=(
                        self.networks.discriminator_optimizer
                    ),
                )
            self.checkpoint = tf.train.Checkpoint(**objects)
        self.steps = train_steps.StepFunctions(
            config, strategy, self.networks, self.global_step
        )
        self.stage_dir = config.stage_dir
        self.write_dir, self._temporary = distribute.write_dir(
            self.stage_dir, strategy
        )
        checkpoints.remove_partial_checkpoints(self.write_dir)
        self.manager = tf.train.CheckpointManager(
            self.checkpoint,
            self.write_dir,
            max_to_keep=config.max_checkpoints,
            checkpoint_name=checkpoints.CHECKPOINT_NAME,
            step_counter=self.global_step,
        )

    def restore_or_initialise(self) -> str:
        """Resumes this stage, or initialises it. Returns what it did."""
        latest = tf.train.latest_checkpoint(self.stage_dir)
        if latest:
            status = self.checkpoint.restore(latest)
            status.assert_existing_objects_matched()
            logging.info(
                'Resumed %s at step %d.', latest, int(self.global_step.numpy())
            )
            return f'resumed from {latest}'
        source = initialise_generator(self.config, self.networks.generator)
        if not source:
            return 'initialised'
        if self.networks.ema_generator is not None:
            # The average starts where the stage's generator starts.
            with self.strategy.scope():
                ema.copy_weights(
                    self.networks.generator, self.networks.ema_generator
                )
        return 'initialised from ' + source

    def close(self):
        distribute.remove_temporary(self._temporary)
