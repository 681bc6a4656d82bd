"""Checkpoint names of a training directory, and partial-write cleanup.

Restoring a generator from a checkpoint is `models.restore_generator`.

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

from absl import logging
import tensorflow as tf

from chromagen_tf import configs
from chromagen_tf import files
from chromagen_tf.models import loading

CHECKPOINT_NAME = 'ckpt'
EMA_GENERATOR = loading.EMA_GENERATOR


def checkpoint_prefix(model_dir: str, stage: str, step: int) -> str:
    """MODEL_DIR/<stage>/ckpt-<step>, the checkpoint saved after `step`."""
    return files.join(
        configs.stage_dir(model_dir, stage), f'{CHECKPOINT_NAME}-{step}'
    )


def checkpoint_index_file(model_dir: str, stage: str, step: int) -> str:
    """The file whose presence marks that checkpoint as complete."""
    return checkpoint_prefix(model_dir, stage, step) + '.index'


def remove_partial_checkpoints(directory: str) -> None:
    """Deletes the ckpt-N_temp folders a killed checkpoint write leaves.

    A save writes into ckpt-N_temp/ and only then moves the files to their
    final names, so a temp folder at start-up belongs to a dead process.
    """
    pattern = os.path.join(directory, f'{CHECKPOINT_NAME}-*_temp')
    for path in tf.io.gfile.glob(pattern):
        logging.info('Removing %s, left by an interrupted save.', path)
        tf.io.gfile.rmtree(path)
