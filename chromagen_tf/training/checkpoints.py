"""Checkpoint layout of a training directory, and restoring a generator.

Layout of a model_dir:

  MODEL_DIR/config.json              the ModelConfig (architecture)
  MODEL_DIR/pretrain/config.json     the pretrain stage's TrainConfig
  MODEL_DIR/pretrain/ckpt-<step>.*   tf.train.Checkpoint files
  MODEL_DIR/pretrain/{train,eval}/   TensorBoard event files
  MODEL_DIR/gan/...                  the same for the GAN stage

Each checkpoint holds `step`, `generator`, `generator_optimizer` and, in the
GAN stage, `discriminator` and `discriminator_optimizer`; a stage trained
with --ema_decay also holds `ema_generator`, the moving average of the
generator's weights, which is what a restored generator gets. Checkpoints are
numbered by global step, so `ckpt-1200` is the state after 1200 steps.
"""

import os
from typing import Optional

from absl import logging
import keras
import tensorflow as tf

from chromagen_tf import configs
from chromagen_tf import errors
from chromagen_tf import files

CHECKPOINT_NAME = 'ckpt'
EMA_GENERATOR = 'ema_generator'


def checkpoint_prefix(model_dir: str, stage: str, step: int) -> str:
    """MODEL_DIR/<stage>/ckpt-<step>, the checkpoint saved after `step`."""
    return files.join(configs.stage_dir(model_dir, stage),
                      f'{CHECKPOINT_NAME}-{step}')


def checkpoint_index_file(model_dir: str, stage: str, step: int) -> str:
    """The file whose presence marks that checkpoint as complete."""
    return checkpoint_prefix(model_dir, stage, step) + '.index'


def latest_checkpoint(model_dir: str, stage: str) -> Optional[str]:
    """The newest checkpoint prefix of a stage, or None."""
    return tf.train.latest_checkpoint(configs.stage_dir(model_dir, stage))


def generator_key(checkpoint_path: str) -> str:
    """The key of the generator to restore: 'ema_generator' if kept."""
    names = [name for name, _ in tf.train.list_variables(checkpoint_path)]
    if any(name.startswith(EMA_GENERATOR + '/') for name in names):
        return EMA_GENERATOR
    return 'generator'


def read_generator(generator: keras.Model, checkpoint_path: str,
                   average: bool = True) -> str:
    """Reads a checkpoint's generator (its EMA if kept) into `generator`.

    average=False reads the trained weights even where an average was kept.

    Returns:
      The checkpoint key read: 'generator' or 'ema_generator'.

    Raises:
      AssertionError: the checkpoint's generator has another architecture.
    """
    key = generator_key(checkpoint_path) if average else 'generator'
    status = tf.train.Checkpoint(**{key: generator}).read(checkpoint_path)
    status.expect_partial().assert_existing_objects_matched()
    return key


def build_generator_for(model: configs.ModelConfig,
                        log_prior=None,
                        **kwargs) -> keras.Model:
    """Builds the generator a ModelConfig describes (random weights).

    log_prior: a colour-bins model's prior over the bins
    (`bin_prior.py`), which its decoder needs when prior_strength > 0.
    """
    from chromagen_tf import models  # pylint: disable=g-import-not-at-top

    if model.color_head == 'bins':
        if model.prior_strength and log_prior is None:
            raise errors.UsageError(
                f'prior_strength={model.prior_strength} needs the training '
                "set's colour-bin prior, which this model does not keep "
                '(bin_prior.json of a training directory, bin_log_prior of a '
                'bundled model.json); use --prior_strength=0.')
        kwargs.update(color_head='bins', temperature=model.temperature,
                      log_prior=log_prior,
                      prior_strength=model.prior_strength)
    return models.build_generator(model.generator, width=model.width,
                                  **kwargs)


def restore_generator(
    model_dir: str,
    stage: str = 'gan',
    checkpoint_path: Optional[str] = None,
    average: bool = True,
    temperature: Optional[float] = None,
    prior_strength: Optional[float] = None,
) -> tuple[keras.Model, configs.ModelConfig, str]:
    """Rebuilds a trained generator from a training directory.

    Only the generator is read, as its moving average if the stage kept
    one (--ema_decay): the discriminator and the optimizers are left out
    (`expect_partial`), and every generator variable must be found in the
    checkpoint (`assert_existing_objects_matched`).

    Args:
      model_dir: A training directory written by `chromagen_tf.train`.
      stage: Which stage's latest checkpoint to use, if checkpoint_path is
        not given.
      checkpoint_path: An explicit checkpoint prefix.
      average: Read the moving average of the weights if the checkpoint
        keeps one; False reads the trained weights themselves.
      temperature, prior_strength: Decode a colour-bins model with these
        settings instead of its configured ones (`configs.with_decoding`);
        the prior comes from MODEL_DIR/bin_prior.json.

    Returns:
      (generator, model_config, checkpoint_path).

    Raises:
      errors.NotFoundError: there is no config.json or no checkpoint.
    """
    # pylint: disable-next=g-import-not-at-top
    from chromagen_tf.training import bin_prior

    model_config = configs.with_decoding(
        configs.read_model_config(model_dir), temperature, prior_strength)
    if checkpoint_path is None:
        checkpoint_path = latest_checkpoint(model_dir, stage)
        if checkpoint_path is None:
            raise errors.NotFoundError(
                f'No {stage} checkpoint in '
                f'{configs.stage_dir(model_dir, stage)}. '
                f'Train the {stage} stage first.'
            )
    generator = build_generator_for(model_config, bin_prior.read(model_dir))
    read_generator(generator, checkpoint_path, average)
    return generator, model_config, checkpoint_path


def remove_partial_checkpoints(directory: str) -> None:
    """Deletes the ckpt-N_temp folders a killed checkpoint write leaves.

    A save writes into ckpt-N_temp/ and only then moves the files to their
    final names, so a temp folder at start-up belongs to a dead process.
    """
    pattern = os.path.join(directory, f'{CHECKPOINT_NAME}-*_temp')
    for path in tf.io.gfile.glob(pattern):
        logging.info('Removing %s, left by an interrupted save.', path)
        tf.io.gfile.rmtree(path)
