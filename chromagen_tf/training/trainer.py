"""The two-stage training loop: L1 pretraining, then the conditional GAN.

`train(config)` is the library entry point behind `python -m
chromagen_tf.train`. It follows the TF Model Garden pattern:

  1. resolve the precision policy, then build the strategy
     (distribute.setup);
  2. build the networks (under that policy and config.seed, both scoped to
     the build), the optimizers, the step counter and the checkpoint inside
     `strategy.scope()`, building the optimizers' slots
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
import time
from typing import Any, Callable, Optional

from absl import logging
import tensorflow as tf
import tqdm

from chromagen_tf import configs
from chromagen_tf import errors
from chromagen_tf import hints
from chromagen_tf.data import input_pipeline
from chromagen_tf.data import records
from chromagen_tf.training import bin_prior
from chromagen_tf.training import corrupt_records
from chromagen_tf.training import distribute
from chromagen_tf.training import preemption
from chromagen_tf.training import state

DatasetFn = Callable[[tf.distribute.InputContext], tf.data.Dataset]


def total_steps(config: configs.TrainConfig) -> int:
    """train_steps, or epochs x steps per epoch of the train split."""
    if config.train_steps:
        return config.train_steps
    records = input_pipeline.count_records(config.data_dir, 'train')
    steps_per_epoch = records // config.global_batch_size
    if steps_per_epoch == 0:
        raise errors.TrainingError(
            f'The train split has {records} records, fewer than one global '
            f'batch of {config.global_batch_size}. Lower --global_batch_size.'
        )
    return config.epochs * steps_per_epoch


def _make_datasets(config, strategy, start_step, dataset_fn):
    train_pattern = records.shard_pattern(config.data_dir, 'train')

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
            hints=config.hints,
            # Without hints a hint branch is the frozen automatic model, so
            # such examples would teach it nothing.
            no_hint_probability=(
                0.0 if config.model.hint_branch else hints.NO_HINT_PROBABILITY
            ),
        )

    return strategy.distribute_datasets_from_function(dataset_fn or _train_fn)


def _raise_non_finite(step, values):
    terms = [
        f'{name}={value:.4g}'
        for name, value in values.items()
        if not math.isfinite(value)
    ]
    raise errors.NonFiniteLossError(
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
    log_prior = None
    if config.model.color_head == 'bins' and dataset_fn is None:
        # Every worker estimates it (the same records give the same values),
        # so none waits for the chief's file; only the chief writes it.
        try:
            log_prior = bin_prior.read_or_estimate(
                config.model_dir,
                config.data_dir,
                write=chief,
                skip_corrupt_records=config.skip_corrupt_records,
            )
        except (
            tf.errors.DataLossError,
            tf.errors.InvalidArgumentError,
        ) as error:
            corrupt_records.raise_if_corrupt(config, error)
            raise
    steps_to_run = (
        total_steps(config) if dataset_fn is None else (config.train_steps)
    )
    if config.skip_corrupt_records and dataset_fn is None:
        corrupt_records.report_skipped(config)
    trainer = state.Trainer(config, strategy, policy, steps_to_run, log_prior)
    try:
        return _train_loop(config, trainer, steps_to_run, dataset_fn)
    finally:
        trainer.close()


def _train_loop(config, trainer, steps_to_run, dataset_fn):
    from chromagen_tf.training import evaluation  # pylint: disable=g-import-not-at-top

    how = trainer.restore_or_initialise()
    step = int(trainer.global_step.numpy())
    strategy = trainer.strategy
    evaluator = evaluation.Evaluator(
        config, strategy, trainer, chief=(distribute.is_chief(strategy))
    )
    result = dict(stage=config.stage, start=how, start_step=step)
    if step >= steps_to_run:
        logging.info(
            'Step %d already reached %d: nothing to do.', step, steps_to_run
        )
        result.update(step=step, stopped='complete', losses={})
        return result
    iterator = iter(_make_datasets(config, strategy, step, dataset_fn))
    agree_to_stop = preemption.stop_agreement(strategy)
    bar = tqdm.tqdm(
        total=steps_to_run, initial=step, unit='step', desc=config.stage
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
            except (
                tf.errors.DataLossError,
                tf.errors.InvalidArgumentError,
            ) as error:
                corrupt_records.raise_if_corrupt(config, error)
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
            bar.set_postfix(losses, refresh=False)
            bar.update(num_steps)
            if step % config.summary_every == 0 or step == steps_to_run:
                evaluator.write_train_summaries(step, losses, images_per_second)
            if step % config.eval_every == 0 or step == steps_to_run:
                evaluator.evaluate(step)
            # Every worker must agree to stop at the same step, or the ones
            # still training would wait forever in their next all-reduce.
            stopping = agree_to_stop(bool(stop_request.signal_name))
            # Save at every multiple of checkpoint_every (each one ends a
            # loop), at the end, and when asked to stop (preemption).
            if (
                step % config.checkpoint_every == 0
                or step == steps_to_run
                or stopping
            ):
                trainer.manager.save(
                    checkpoint_number=step, check_interval=False
                )
            if stopping:
                stopped = stop_request.signal_name or 'another worker stopped'
                break
    bar.close()
    evaluator.close()
    result.update(
        step=step,
        losses=losses,
        stopped=stopped,
        checkpoint=trainer.manager.latest_checkpoint,
    )
    logging.info(
        'Stage %s stopped at step %d (%s).', config.stage, step, stopped
    )
    return result


def _next_multiple(step: int, every: int) -> int:
    return (step // every + 1) * every if every > 0 else 1 << 62
