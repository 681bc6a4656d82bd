"""TensorBoard summaries and evaluation during training.

Writers live under MODEL_DIR/<stage>/train and MODEL_DIR/<stage>/eval, and
every summary is written with step=global_step. The eval writer gets:
  * scalars over the whole val split: l1 (normalised ab, the training
    loss), ab_mae (real Lab units), psnr (RGB), colorfulness of the
    predictions and of the ground truth (Hasler and Suesstrunk 2003);
  * one image per example of a fixed batch of `num_eval_images` val photos:
    grayscale input | prediction | ground truth, side by side;
  * for a hint model, the same scalars with `EVAL_HINTS` hints per photo
    simulated from the truth (`hints.sample`, the same hints at every
    evaluation), named `<metric>_with_hints`: without hints a hint branch is
    its frozen automatic model (which is all that runs for the scalars
    without hints and the images), so only these show it learn.
Workers other than the chief write nothing.
"""

import os

from absl import logging
import keras
import tensorflow as tf

from chromagen_tf import color
from chromagen_tf import hints
from chromagen_tf import metrics
from chromagen_tf import models
from chromagen_tf.data import input_pipeline
from chromagen_tf.data import records
from chromagen_tf.training import losses

EVAL_METRICS = ('l1', *metrics.TRAINING_EVAL_METRICS)
# Hints per val photo in a hint model's evaluation, and their seed.
EVAL_HINTS = 10
_EVAL_HINT_SEED = 20171
_HINT_SUFFIX = '_with_hints'


def _simulated_hints(ab_true):
    """EVAL_HINTS hints per example; example i of a batch uses seed i."""
    size = tf.shape(ab_true)[0]
    seeds = tf.stack(
        [
            tf.range(size, dtype=tf.int64),
            tf.fill([size], tf.constant(_EVAL_HINT_SEED, tf.int64)),
        ],
        axis=1,
    )
    return tf.map_fn(
        lambda pair: hints.sample(pair[0], pair[1], num_hints=EVAL_HINTS),
        (tf.cast(ab_true, tf.float32), seeds),
        fn_output_signature=(tf.float32, tf.float32),
    )


def _automatic_ab(generator, l_normalized):
    """`generator`'s a*b* without hints; a hint branch runs its trunk only."""
    automatic = models.automatic_generator(generator)
    if automatic is None:
        return generator(
            models.generator_inputs(generator, l_normalized), training=False
        )
    return automatic(l_normalized, training=False)


def side_by_side(l_normalized, ab_pred, ab_true) -> tf.Tensor:
    """[B, H, 3W, 3] RGB in [0, 1]: gray input | prediction | ground truth."""
    gray = color.normalized_to_rgb(l_normalized, tf.zeros_like(ab_true))
    prediction = color.normalized_to_rgb(l_normalized, ab_pred)
    truth = color.normalized_to_rgb(l_normalized, ab_true)
    return tf.concat([gray, prediction, truth], axis=2)


class Evaluator:
    """Writes training scalars, and evaluates on the val split."""

    def __init__(self, config, strategy, trainer, chief: bool):
        self.config = config
        self.strategy = strategy
        self.trainer = trainer
        if chief:
            self.train_writer = tf.summary.create_file_writer(
                os.path.join(trainer.write_dir, 'train')
            )
            self.eval_writer = tf.summary.create_file_writer(
                os.path.join(trainer.write_dir, 'eval')
            )
        else:
            self.train_writer = tf.summary.create_noop_writer()
            self.eval_writer = tf.summary.create_noop_writer()
        self._val_pattern = records.shard_pattern(config.data_dir, 'val')
        self._has_val = bool(tf.io.gfile.glob(self._val_pattern))
        if not self._has_val:
            logging.warning(
                'No val split at %s: evaluation is skipped.', self._val_pattern
            )
            self._num_val = 0
        else:
            self._num_val = input_pipeline.count_records(config.data_dir, 'val')
        self._image_batch = None
        self._eval_step = tf.function(self._replica_sums)

    def write_train_summaries(self, step, values, images_per_second):
        networks = self.trainer.networks
        with self.train_writer.as_default(step=step):
            for name, value in values.items():
                tf.summary.scalar(f'losses/{name}', value)
            tf.summary.scalar('throughput/images_per_second', images_per_second)
            optimizers = {'generator': networks.generator_optimizer}
            if networks.discriminator_optimizer is not None:
                optimizers['discriminator'] = networks.discriminator_optimizer
            for name, optimizer in optimizers.items():
                tf.summary.scalar(
                    f'learning_rate/{name}',
                    float(optimizer.learning_rate.numpy()),
                )
                if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
                    tf.summary.scalar(
                        f'loss_scale/{name}',
                        float(optimizer.dynamic_scale.numpy()),
                    )
        self.train_writer.flush()

    def _dataset(self, input_context=None):
        # Fixed-size padded batches, the same count on every replica: every
        # val photo counts once under any strategy and shard count, and
        # TPUs get the static shapes they need.
        return input_pipeline.make_eval_dataset(
            self._val_pattern,
            image_size=self.config.image_size,
            global_batch_size=self.config.global_batch_size,
            num_examples=self._num_val,
            input_context=input_context,
            skip_corrupt_records=self.config.skip_corrupt_records,
        )

    def _replica_sums(self, batch):
        def _metrics(l_normalized, ab_true, ab_pred):
            ab_pred = tf.cast(ab_pred, tf.float32)
            rgb_pred = color.normalized_to_rgb(l_normalized, ab_pred)
            rgb_true = color.normalized_to_rgb(l_normalized, ab_true)
            ab_pred_real = color.denormalize_ab(ab_pred)
            ab_true_real = color.denormalize_ab(ab_true)
            values = {
                'l1': losses.l1(ab_true, ab_pred),
                **metrics.image_metrics(
                    rgb_pred,
                    rgb_true,
                    ab_pred_real,
                    ab_true_real,
                    metrics.TRAINING_EVAL_METRICS,
                ),
            }
            return values

        def _fn(l_normalized, ab_true, weight):
            # A hint model is evaluated as an automatic colorizer (no
            # hints), and again with simulated hints.
            generator = self.trainer.networks.inference_generator
            values = _metrics(
                l_normalized, ab_true, _automatic_ab(generator, l_normalized)
            )
            if models.takes_hints(generator):
                hint_ab, hint_mask = _simulated_hints(ab_true)
                guided = _metrics(
                    l_normalized,
                    ab_true,
                    generator(
                        [l_normalized, hint_ab, hint_mask], training=False
                    ),
                )
                values.update(
                    (name + _HINT_SUFFIX, value)
                    for name, value in guided.items()
                )
            # tf.where, not a product: a padding example's PSNR is inf.
            real = weight > 0
            sums = {
                k: tf.reduce_sum(tf.where(real, v, 0.0))
                for k, v in values.items()
            }
            sums['count'] = tf.reduce_sum(weight)
            return sums

        per_replica = self.strategy.run(_fn, args=batch)
        return {
            name: self.strategy.reduce(
                tf.distribute.ReduceOp.SUM, value, axis=None
            )
            for name, value in per_replica.items()
        }

    def evaluate(self, step):
        """Evaluates on the whole val split and writes images and scalars."""
        if not self._has_val:
            return {}
        dataset = self.strategy.distribute_datasets_from_function(self._dataset)
        totals = None
        for batch in dataset:
            sums = self._eval_step(batch)
            if totals is None:
                totals = {k: float(v) for k, v in sums.items()}
            else:
                for name, value in sums.items():
                    totals[name] += float(value)
        if not totals or totals['count'] == 0:
            return {}
        results = {
            name: totals[name] / totals['count']
            for name in totals
            if name != 'count'
        }
        with self.eval_writer.as_default(step=step):
            for name, value in results.items():
                tf.summary.scalar(f'metrics/{name}', value)
            self._write_images()
        self.eval_writer.flush()
        logging.info(
            'Eval at step %d: %s',
            step,
            ', '.join(f'{k}={v:.4g}' for k, v in results.items()),
        )
        return results

    def _write_images(self):
        if self._image_batch is None:
            dataset = input_pipeline.make_dataset(
                self._val_pattern,
                training=False,
                image_size=self.config.image_size,
                global_batch_size=self.config.num_eval_images,
                skip_corrupt_records=self.config.skip_corrupt_records,
            )
            self._image_batch = next(iter(dataset))
        l_normalized, ab_true = self._image_batch
        generator = self.trainer.networks.inference_generator
        # Every replica colours the same batch; the first one's output is
        # kept. This runs on TPUs too, where variables live on the device.
        per_replica = self.strategy.run(
            lambda l: tf.cast(_automatic_ab(generator, l), tf.float32),
            args=(l_normalized,),
        )
        ab_pred = self.strategy.experimental_local_results(per_replica)[0]
        grid = side_by_side(l_normalized, ab_pred, ab_true)
        tf.summary.image(
            'gray_prediction_truth',
            grid,
            max_outputs=self.config.num_eval_images,
        )

    def close(self):
        self.train_writer.close()
        self.eval_writer.close()
