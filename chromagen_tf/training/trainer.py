"""The two-stage training loop: L1 pretraining, then the conditional GAN.

`train(config)` is the library entry point behind `python -m
chromagen_tf.train`. It follows the TF Model Garden pattern:

  1. set the precision policy, then build the strategy (distribute.setup);
  2. build the networks, the optimizers, the step counter and the
     checkpoint inside `strategy.scope()`, building the optimizers' slots
     up front (Keras 3 creates them lazily, and a first `apply` inside
     `strategy.run` fails under MirroredStrategy, keras-team/keras#19246);
  3. resume from MODEL_DIR/<stage> if it has a checkpoint, else initialise
     (the GAN stage copies the pretrained generator);
  4. run `steps_per_loop` steps per `tf.function` call through
     `strategy.run`, with per-example losses reduced by
     `tf.nn.compute_average_loss` over the global batch;
  5. write summaries with step=global_step, evaluate, checkpoint, and stop
     cleanly on SIGTERM/SIGINT or with a clear error on a non-finite loss.
"""

import math
import os
import time
from typing import Any, Callable, Optional

from absl import logging
import keras
import tensorflow as tf

from chromagen_tf import configs
from chromagen_tf import errors
from chromagen_tf import progress
from chromagen_tf.data import input_pipeline
from chromagen_tf.training import checkpoints
from chromagen_tf.training import distribute
from chromagen_tf.training import preemption
from chromagen_tf.training import train_steps

DatasetFn = Callable[[tf.distribute.InputContext], tf.data.Dataset]


class TrainingError(errors.ChromaGenError, RuntimeError):
    """Training cannot start or cannot go on; the message says why."""


class NonFiniteLossError(TrainingError):
    """A loss became NaN or Inf."""


def total_steps(config: configs.TrainConfig) -> int:
    """train_steps, or epochs x steps per epoch of the train split."""
    if config.train_steps:
        return config.train_steps
    records = input_pipeline.count_records(config.data_dir, 'train')
    steps_per_epoch = records // config.global_batch_size
    if steps_per_epoch == 0:
        raise TrainingError(
            f'The train split has {records} records, fewer than one global '
            f'batch of {config.global_batch_size}. Lower --global_batch_size.'
        )
    return config.epochs * steps_per_epoch


def _initialise_gan_generator(config, generator) -> str:
    """Copies the pretrained generator into a fresh GAN stage."""
    source = config.init_from
    if source.lower() == 'none':
        logging.info('GAN stage from scratch (--init_from=none).')
        return 'scratch'
    if not source:
        pretrain_dir = os.path.join(config.model_dir, 'pretrain')
        source = tf.train.latest_checkpoint(pretrain_dir)
        if source is None:
            raise TrainingError(
                f'The GAN stage starts from the pretrained generator, but '
                f'{pretrain_dir} has no checkpoint. Run pretraining first:\n'
                f'  python -m chromagen_tf.train --stage=pretrain '
                f'--data_dir={config.data_dir} --model_dir={config.model_dir}'
                '\nor pass --init_from=CHECKPOINT, or --init_from=none to '
                'train the pix2pix baseline from scratch.'
            )
    elif tf.io.gfile.isdir(source):
        directory = source
        source = tf.train.latest_checkpoint(directory)
        if source is None:
            raise TrainingError(f'--init_from={directory} has no checkpoint.')
    status = tf.train.Checkpoint(generator=generator).read(source)
    try:
        status.expect_partial().assert_existing_objects_matched()
    except AssertionError as error:
        raise TrainingError(
            f'--init_from={source} does not hold a generator of this '
            f'architecture ({config.model.generator}, width '
            f'{config.model.width}): {error}'
        ) from error
    logging.info('GAN stage: generator initialised from %s', source)
    return source


class Trainer:
    """Holds the networks, optimizers, checkpoint and step functions."""

    def __init__(
        self,
        config: configs.TrainConfig,
        strategy: tf.distribute.Strategy,
        policy: str,
    ):
        self.config = config
        self.strategy = strategy
        self.policy = policy
        self.gan = config.stage == 'gan'
        # Same seed, same initial weights: runs are reproducible, and every
        # worker of a multi-worker job starts from identical variables.
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            self.networks = train_steps.build_networks(config, policy)
            self.global_step = tf.Variable(
                0, dtype=tf.int64, trainable=False, name='global_step',
                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA,
            )
            objects = dict(
                step=self.global_step,
                generator=self.networks.generator,
                generator_optimizer=self.networks.generator_optimizer,
            )
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
        if self.gan:
            return 'initialised from ' + _initialise_gan_generator(
                self.config, self.networks.generator
            )
        return 'initialised'

    def close(self):
        distribute.remove_temporary(self._temporary)


def _make_datasets(config, strategy, start_step, dataset_fn):
    train_pattern = input_pipeline.split_file_pattern(config.data_dir, 'train')

    def _train_fn(input_context):
        return input_pipeline.make_dataset(
            train_pattern,
            training=True,
            image_size=config.image_size,
            global_batch_size=config.global_batch_size,
            input_context=input_context,
            # A resumed job draws a fresh, reproducible order.
            seed=config.seed + start_step,
            shuffle_buffer=config.shuffle_buffer,
            skip_corrupt_records=config.skip_corrupt_records,
            augment=config.augment,
            min_crop_scale=config.min_crop_scale,
            deterministic=config.deterministic_input,
        )

    return strategy.distribute_datasets_from_function(dataset_fn or _train_fn)


def _report_skipped_records(config):
    """Counts what --skip_corrupt_records will drop: one pass over the data."""
    files = input_pipeline.list_files(
        input_pipeline.split_file_pattern(config.data_dir, 'train'))
    problems = input_pipeline.find_corrupt_records(files)
    for path, index, message in problems:
        logging.warning('Skipping corrupt record %d of %s: %s', index, path,
                        message)
    logging.warning('--skip_corrupt_records: %d corrupt record(s) in %d '
                    'train file(s) will be skipped.', len(problems),
                    len({path for path, _, _ in problems}))
    return problems


def _raise_if_corrupt_records(config, error):
    """Names the damaged file after tf.data failed, which tf.data does not."""
    files = input_pipeline.list_files(
        input_pipeline.split_file_pattern(config.data_dir, 'train'))
    logging.error('Input pipeline failed (%s); looking for the bad record.',
                  error.message)
    problems = input_pipeline.find_corrupt_records(files)
    if problems:
        lines = '\n'.join(f'  {path}: record {index}: {message}'
                          for path, index, message in problems[:10])
        raise input_pipeline.CorruptRecordError(
            f'{len(problems)} corrupt record(s) in the train split:\n{lines}'
            '\nRe-create these shards with make_tfrecords, or pass '
            '--skip_corrupt_records to train on the rest.'
        ) from error


def _raise_non_finite(step, values):
    terms = [
        f'{name}={value:.4g}' for name, value in values.items()
        if not math.isfinite(value)
    ]
    raise NonFiniteLossError(
        f'Loss became non-finite at step {step}: {", ".join(terms)}. '
        'Training stopped; the last good checkpoint was kept and not '
        'overwritten. Lower the learning rate, check the data, or use '
        'float32.'
    )


def train(
    config: configs.TrainConfig,
    *,
    dataset_fn: Optional[DatasetFn] = None,
) -> dict[str, Any]:
    """Runs one training stage to config's step count (resuming if needed).

    Args:
      config: The stage's configuration.
      dataset_fn: Replaces the training input pipeline (tests).

    Returns:
      A summary: final step, last losses, stop reason, checkpoint path.

    Raises:
      TrainingError: bad setup (missing data or pretrain checkpoint, config
        mismatch); NonFiniteLossError on a NaN or Inf loss.
    """
    strategy, policy = distribute.setup(
        config.strategy, config.mixed_precision, config.tpu
    )
    chief = distribute.is_chief(strategy)
    if chief:
        configs.check_and_write_model_config(config.model_dir, config.model)
        configs.check_and_write_stage_config(config)
    steps_to_run = total_steps(config) if dataset_fn is None else (
        config.train_steps
    )
    if config.skip_corrupt_records and dataset_fn is None:
        _report_skipped_records(config)
    trainer = Trainer(config, strategy, policy)
    try:
        return _train_loop(config, trainer, steps_to_run, dataset_fn)
    finally:
        trainer.close()


def _train_loop(config, trainer, steps_to_run, dataset_fn):
    from chromagen_tf.training import evaluation  # pylint: disable=g-import-not-at-top

    how = trainer.restore_or_initialise()
    step = int(trainer.global_step.numpy())
    strategy = trainer.strategy
    evaluator = evaluation.Evaluator(config, strategy, trainer, chief=(
        distribute.is_chief(strategy)))
    result = dict(stage=config.stage, start=how, start_step=step)
    if step >= steps_to_run:
        logging.info('Step %d already reached %d: nothing to do.', step,
                     steps_to_run)
        result.update(step=step, stopped='complete', losses={})
        return result
    iterator = iter(_make_datasets(config, strategy, step, dataset_fn))
    agree_to_stop = preemption.stop_agreement(strategy)
    bar = progress.ProgressBar(
        steps_to_run, initial=step, unit='step',
        description=f'{config.stage}',
    )
    losses = {}
    stopped = 'complete'
    with preemption.StopRequest() as stop_request:
        while step < steps_to_run:
            boundary = min(
                steps_to_run,
                _next_multiple(step, config.steps_per_loop),
                _next_multiple(step, config.summary_every),
                _next_multiple(step, config.eval_every),
                # A loop can only save at its end: ending loops at every
                # checkpoint multiple keeps the promise that a crash loses
                # at most checkpoint_every steps.
                _next_multiple(step, config.checkpoint_every),
            )
            num_steps = boundary - step
            start = time.perf_counter()
            try:
                outputs = trainer.steps.train_loop(
                    iterator, tf.constant(num_steps, tf.int32)
                )
            except (tf.errors.DataLossError,
                    tf.errors.InvalidArgumentError) as error:
                _raise_if_corrupt_records(config, error)
                raise
            mean_losses, first_bad_step, bad_values = outputs
            first_bad_step = int(first_bad_step)
            if first_bad_step >= 0:
                _raise_non_finite(
                    first_bad_step,
                    {k: float(v) for k, v in bad_values.items()},
                )
            elapsed = time.perf_counter() - start
            step = int(trainer.global_step.numpy())
            losses = {k: float(v) for k, v in mean_losses.items()}
            images_per_second = (
                num_steps * config.global_batch_size / max(elapsed, 1e-9)
            )
            bar.update(num_steps, **losses)
            if step % config.summary_every == 0 or step == steps_to_run:
                evaluator.write_train_summaries(
                    step, losses, images_per_second
                )
            if step % config.eval_every == 0 or step == steps_to_run:
                evaluator.evaluate(step)
            # Every worker must agree to stop at the same step, or the ones
            # still training would wait forever in their next all-reduce.
            stopping = agree_to_stop(bool(stop_request.signal_name))
            # Save at every multiple of checkpoint_every (each one ends a
            # loop), at the end, and when asked to stop (preemption).
            if (step % config.checkpoint_every == 0 or step == steps_to_run
                    or stopping):
                trainer.manager.save(checkpoint_number=step,
                                     check_interval=False)
            if stopping:
                stopped = stop_request.signal_name or 'another worker stopped'
                break
    bar.close()
    evaluator.close()
    result.update(
        step=step, losses=losses, stopped=stopped,
        checkpoint=trainer.manager.latest_checkpoint,
    )
    logging.info('Stage %s stopped at step %d (%s).', config.stage, step,
                 stopped)
    return result


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every if every > 0 else 1 << 62
