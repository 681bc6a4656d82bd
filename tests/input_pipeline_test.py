"""Tests of the tf.data input pipeline (data/input_pipeline.py)."""

import os

import numpy as np
import tensorflow as tf

from chromagen_tf import color
from chromagen_tf.data import input_pipeline
from chromagen_tf.data import records
from tests import shards


class PipelineTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = shards.write_shards(
            os.path.join(tf.compat.v1.test.get_temp_dir(), 'pipeline_data'),
            image_size=40,
            num_train=6,
            num_val=5,
            train_shards=2,
        )
        cls.train = records.shard_pattern(cls.data_dir, 'train')
        cls.val = records.shard_pattern(cls.data_dir, 'val')

    def test_training_batches_repeat_and_are_normalised(self):
        dataset = input_pipeline.make_dataset(
            self.train, training=True, image_size=32, global_batch_size=4
        )
        batches = list(dataset.take(5))  # 20 examples from 6 records.
        self.assertLen(batches, 5)
        for l_channel, ab in batches:
            self.assertEqual(l_channel.shape, (4, 32, 32, 1))
            self.assertEqual(ab.shape, (4, 32, 32, 2))
            self.assertAllInRange(l_channel, -1.0, 1.0)
            self.assertAllInRange(ab, -1.2, 1.2)

    def test_evaluation_reads_each_record_once_and_keeps_partial_batch(self):
        dataset = input_pipeline.make_dataset(
            self.val, training=False, image_size=40, global_batch_size=2
        )
        sizes = [int(l.shape[0]) for l, _ in dataset]
        self.assertEqual(sizes, [2, 2, 1])

    def test_evaluation_output_matches_stored_lab(self):
        dataset = input_pipeline.make_dataset(
            self.val, training=False, image_size=40, global_batch_size=5
        )
        l_normalized, ab_normalized = next(iter(dataset))
        paths = shards.sample_photo_paths()[6:11]
        for i, path in enumerate(paths):
            lab = shards.lab_from_photo(path, 40)
            self.assertAllClose(
                color.denormalize_l(l_normalized[i])[..., 0],
                lab[..., 0],
                atol=0.2,
            )
            self.assertAllClose(
                color.denormalize_ab(ab_normalized[i]), lab[..., 1:], atol=0.51
            )

    def test_training_is_reproducible_for_a_seed(self):
        def first_batches(seed):
            dataset = input_pipeline.make_dataset(
                self.train,
                training=True,
                image_size=32,
                global_batch_size=3,
                seed=seed,
                deterministic=True,
            )
            return [l.numpy() for l, _ in dataset.take(3)]

        first, again = first_batches(7), first_batches(7)
        for a, b in zip(first, again):
            self.assertAllEqual(a, b)
        other = first_batches(8)
        self.assertFalse(
            all(np.array_equal(a, b) for a, b in zip(first, other))
        )

    def test_input_pipelines_read_disjoint_records(self):
        def keys_for(pipeline_id, pattern, num_pipelines=2):
            context = tf.distribute.InputContext(
                num_input_pipelines=num_pipelines,
                input_pipeline_id=pipeline_id,
                num_replicas_in_sync=num_pipelines,
            )
            dataset = input_pipeline.make_dataset(
                pattern,
                training=False,
                image_size=40,
                global_batch_size=2,
                input_context=context,
            )
            return {float(tf.reduce_sum(l)) for l, _ in dataset.unbatch()}

        # train: 2 files, sharded by file; val: 1 file, sharded by record.
        for pattern, total in ((self.train, 6), (self.val, 5)):
            first, second = keys_for(0, pattern), keys_for(1, pattern)
            self.assertEmpty(first & second)
            self.assertLen(first | second, total)

    def test_crop_eagerly_and_inside_tf_data_agree(self):
        # "You'd be surprised how much these two differ!" (big_vision).
        l_channel = tf.random.stateless_uniform([40, 48, 1], [1, 2]) * 100
        ab = tf.random.stateless_uniform([40, 48, 2], [3, 4]) * 50
        seed = tf.constant([5, 6], tf.int64)
        eager = input_pipeline._crop_or_resize(l_channel, ab, 32, seed)
        in_data = next(
            iter(
                tf.data.Dataset.from_tensors((l_channel, ab, seed)).map(
                    lambda l, a, s: input_pipeline._crop_or_resize(l, a, 32, s)
                )
            )
        )
        self.assertAllClose(eager, in_data)

    def test_scale_crop_eagerly_and_inside_tf_data_agree(self):
        l_channel = tf.random.stateless_uniform([40, 48, 1], [1, 2]) * 100
        ab = tf.random.stateless_uniform([40, 48, 2], [3, 4]) * 50
        seed = tf.constant([5, 6], tf.int64)

        def crop(l, a, s):
            return input_pipeline._random_scale_crop(l, a, 32, 0.5, s)

        eager = crop(l_channel, ab, seed)
        in_data = next(
            iter(tf.data.Dataset.from_tensors((l_channel, ab, seed)).map(crop))
        )
        self.assertAllClose(eager, in_data)
        self.assertEqual(eager[0].shape, (32, 32, 1))

    def test_scale_crops_zoom_by_up_to_one_over_min_scale(self):
        # A ramp along the width: a crop's span of values measures its
        # side, so the zoom of every crop can be read back.
        ramp = tf.tile(
            tf.linspace(0.0, 100.0, 200)[tf.newaxis, :, tf.newaxis], [200, 1, 1]
        )
        ab = tf.zeros([200, 200, 2])
        spans = []
        for index in range(40):
            l_channel, _ = input_pipeline._random_scale_crop(
                ramp, ab, 32, 0.4, tf.constant([index, 9], tf.int64)
            )
            spans.append(float(l_channel[0, -1, 0] - l_channel[0, 0, 0]))
        # The whole side spans 100 L; a crop of side s spans about 100 s.
        self.assertGreater(min(spans), 0.4 * 100 * 0.9)
        self.assertLess(max(spans), 100.0 * 1.0001)
        self.assertGreater(max(spans) - min(spans), 25.0)

    def test_no_files_is_a_clear_error(self):
        with self.assertRaisesRegex(FileNotFoundError, 'make_tfrecords'):
            input_pipeline.make_dataset(
                os.path.join(self.get_temp_dir(), 'x-*'),
                training=True,
                image_size=32,
                global_batch_size=2,
            )


class CorruptRecordTest(tf.test.TestCase):
    def _corrupt_copy(self):
        directory = shards.write_shards(
            os.path.join(self.get_temp_dir(), 'data'),
            image_size=32,
            num_train=4,
            num_val=1,
            train_shards=1,
        )
        path = os.path.join(directory, 'train-00000-of-00001.tfrecord')
        with open(path, 'rb') as f:
            content = bytearray(f.read())
        # Flip bytes in the middle of the second record's payload.
        middle = len(content) // 2
        content[middle : middle + 16] = bytes(16)
        with open(path, 'wb') as f:
            f.write(content)
        return directory, path

    def test_corrupt_record_fails_loudly_and_is_found(self):
        directory, path = self._corrupt_copy()
        dataset = input_pipeline.make_dataset(
            records.shard_pattern(directory, 'train'),
            training=False,
            image_size=32,
            global_batch_size=1,
        )
        with self.assertRaises(
            (tf.errors.DataLossError, tf.errors.InvalidArgumentError)
        ):
            list(dataset)
        problems = records.find_corrupt_records([path])
        self.assertLen(problems, 1)
        self.assertEqual(problems[0][0], path)

    def test_skip_corrupt_records_drops_them(self):
        directory, _ = self._corrupt_copy()
        dataset = input_pipeline.make_dataset(
            records.shard_pattern(directory, 'train'),
            training=False,
            image_size=32,
            global_batch_size=1,
            skip_corrupt_records=True,
        )
        count = sum(1 for _ in dataset)
        self.assertGreaterEqual(count, 1)
        self.assertLess(count, 4)


if __name__ == '__main__':
    tf.test.main()
