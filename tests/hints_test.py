"""Colour hints: the sampler's statistics, the format, the zero start."""

import dataclasses
import json
import os

import numpy as np
import pytest
import tensorflow as tf

from chromagen_tf import color
from chromagen_tf import configs
from chromagen_tf import hint_format
from chromagen_tf import hints
from chromagen_tf import models
from chromagen_tf.data import input_pipeline
from chromagen_tf.data import records
from chromagen_tf.models import color_bins
from chromagen_tf.models import resnet
from chromagen_tf.training import distribute
from chromagen_tf.training import state
from tests import shards
from tests import utils


class SamplerTest(tf.test.TestCase):
    def test_statistics_follow_the_recipe(self):
        draws = list(
            tf.data.Dataset.range(3000)
            .map(
                lambda i: hints.draw(
                    tf.stack([tf.constant(7, tf.int64), i]), 64, 64
                )
            )
            .as_numpy_iterator()
        )
        counts = np.array([int(active.sum()) for active, _, _, _ in draws])
        share_empty = float(np.mean(counts == 0))
        # Binomial standard error at n=3000: 0.008.
        self.assertAllClose(share_empty, hints.NO_HINT_PROBABILITY, atol=0.03)
        # Geometric(1/8) on 1, 2, ...: mean 8, capped at 48 (mean 7.99).
        nonzero = counts[counts > 0]
        self.assertAllClose(nonzero.mean(), 8.0, atol=0.5)
        self.assertGreaterEqual(nonzero.min(), 1)
        self.assertLessEqual(counts.max(), hints.MAX_HINTS)
        sizes = np.concatenate([size for _, size, _, _ in draws])
        self.assertEqual(set(sizes.tolist()), set(range(1, 10)))

    def test_patch_values_are_the_true_means_and_nothing_leaks(self):
        rng = np.random.default_rng(0)
        ab = rng.uniform(-1, 1, [40, 48, 2]).astype(np.float32)
        for index in range(20):
            seed = tf.constant([3, index], tf.int64)
            hint_ab, mask = hints.sample(ab, seed, num_hints=1)
            _, size, top, left = (
                int(x[0]) for x in hints.draw(seed, 40, 48, num_hints=1)
            )
            patch = np.zeros([40, 48], bool)
            patch[top : top + size, left : left + size] = True
            self.assertAllEqual(mask.numpy()[..., 0] > 0, patch)
            expected = ab[patch].mean(axis=0)
            self.assertAllClose(
                hint_ab.numpy()[patch],
                np.broadcast_to(expected, [size * size, 2]),
                atol=1e-5,
            )
            self.assertAllEqual(hint_ab.numpy()[~patch], 0 * ab[~patch])

    def test_same_seed_same_hints_other_seed_other_hints(self):
        ab = tf.random.stateless_uniform([32, 32, 2], [0, 0])
        first = hints.sample(ab, [1, 2], num_hints=5)
        again = hints.sample(ab, [1, 2], num_hints=5)
        other = hints.sample(ab, [1, 3], num_hints=5)
        self.assertAllEqual(first[1], again[1])
        self.assertNotAllEqual(first[1], other[1])

    def test_in_tf_data_as_eagerly(self):
        ab = tf.random.stateless_uniform([32, 32, 2], [0, 1])
        eager = hints.sample(ab, tf.constant([4, 5], tf.int64))
        graph = next(
            iter(
                tf.data.Dataset.from_tensors(
                    (ab, tf.constant([4, 5], tf.int64))
                ).map(hints.sample)
            )
        )
        self.assertAllEqual(eager[0], graph[0])
        self.assertAllEqual(eager[1], graph[1])


class RasterizeTest(tf.test.TestCase):
    def test_points_land_where_clicked_and_outside_points_are_ignored(self):
        points = np.array([[50, 20], [-1, 5], [100, 5], [0, 39]], np.float32)
        colors = np.array(
            [[255, 0, 0], [0, 255, 0], [0, 255, 0], [0, 0, 255]], np.uint8
        )
        hint_ab, mask = hints.rasterize(
            points, colors, (40, 100), (20, 50), patch_size=1
        )
        self.assertEqual(float(tf.reduce_sum(mask)), 2.0)
        red = color.normalize_ab(
            color.rgb_to_lab(tf.constant([[1.0, 0.0, 0.0]]))[:, 1:]
        )[0]
        self.assertAllClose(hint_ab[10, 25], red, atol=1e-5)
        self.assertEqual(float(mask[19, 0, 0]), 1.0)

    def test_no_points_is_no_hints(self):
        hint_ab, mask = hints.rasterize(
            np.zeros([0, 2], np.float32),
            np.zeros([0, 3], np.uint8),
            (10, 10),
            (8, 8),
        )
        self.assertEqual(float(tf.reduce_sum(mask)), 0.0)
        self.assertEqual(float(tf.reduce_sum(tf.abs(hint_ab))), 0.0)


class FormatTest(tf.test.TestCase):
    def test_round_trip(self):
        hint_list = [
            hint_format.Hint(120, 45, (208, 64, 32)),
            hint_format.Hint(3.5, 0, (0, 0, 255)),
        ]
        self.assertEqual(
            hint_format.parse(hint_format.to_json(hint_list)), hint_list
        )
        self.assertEqual(
            json.loads(hint_format.to_json(hint_list))['hints'][0],
            {'x': 120, 'y': 45, 'color': '#d04020'},
        )

    def test_bad_documents_name_the_source_and_the_problem(self):
        cases = {
            'not json': 'not JSON',
            '[]': 'expected {"hints"',
            '{"hints": [{"x": 1, "y": 2}]}': 'hint 0: colour None',
            '{"hints": [{"x": "1", "y": 2, "color": "#000000"}]}': (
                'hint 0 has no numeric "x"'
            ),
            '{"hints": [{"x": 1, "y": 2, "color": "red"}]}': (
                "hint 0: colour 'red'"
            ),
            '{"hints": [5]}': 'hint 0 is not an object',
        }
        for document, problem in cases.items():
            with self.assertRaisesRegex(
                hint_format.HintFormatError, f'^photo.json: .*{problem}'
            ):
                hint_format.parse(document, 'photo.json')

    def test_points_outside_the_photo_are_refused(self):
        with self.assertRaisesRegex(
            hint_format.HintFormatError,
            r'p.json: hint 1 at \(10, 0\) is outside'
            r' the 10x5 photo',
        ):
            hint_format.check_inside(
                [
                    hint_format.Hint(9, 4, (0, 0, 0)),
                    hint_format.Hint(10, 0, (0, 0, 0)),
                ],
                10,
                5,
                'p.json',
            )


class SuggestTest(tf.test.TestCase):
    def test_distinct_colours_most_likely_first(self):
        logits = np.full([color_bins.NUM_BINS], -20.0, np.float32)
        centres = color_bins.bin_centres() * color.AB_SCALE

        def index(a, b):
            return int(np.argmin(np.hypot(*(centres - [a, b]).T)))

        logits[index(20, 30)] = 5.0
        logits[index(30, 30)] = 4.9  # The same colour, one bin away.
        logits[index(-40, 10)] = 4.0
        ab, probabilities = color_bins.suggest(tf.constant(logits), 2)
        self.assertAllClose(
            ab * color.AB_SCALE, [[20, 30], [-40, 10]], atol=1e-4
        )
        self.assertGreater(probabilities[0], probabilities[1])
        # The first one claims both of its bins, and nothing is counted
        # twice.
        self.assertGreater(float(probabilities[0]), 0.6)
        self.assertLessEqual(float(tf.reduce_sum(probabilities)), 1.0)


def _all_generators():
    for name in models.GENERATOR_NAMES:
        for head in configs.COLOR_HEADS:
            if head == 'bins' and name not in configs.BINS_GENERATORS:
                continue
            yield name, head


class ZeroStartTest(tf.test.TestCase):
    def test_the_bundled_architecture_equals_its_hint_twin(self):
        self._check_twins([('resnet18_unet_lite', 'bins')])

    @pytest.mark.slow
    def test_every_generator_without_hints_equals_its_hint_twin(self):
        self._check_twins(_all_generators())

    def _check_twins(self, generators):
        for name, head in generators:
            with self.subTest(generator=name, head=head):
                size = models.size_multiple(name)
                model = configs.ModelConfig(
                    generator=name, width=4, color_head=head
                )
                plain = models.build_from_config(model)
                hinted = models.build_from_config(
                    dataclasses.replace(model, hints=True)
                )
                models.loading.copy_weights_by_path(plain, hinted)
                l_channel = tf.random.stateless_uniform(
                    [2, size, size, 1], [1, 2], -1, 1
                )
                hint_ab, mask = hints.sample(
                    tf.random.stateless_uniform([size, size, 2], [3, 4]),
                    [5, 6],
                    num_hints=10,
                )
                expected = plain(l_channel, training=False)
                self.assertAllClose(
                    hinted(
                        models.generator_inputs(hinted, l_channel),
                        training=False,
                    ),
                    expected,
                    atol=1e-6,
                )
                # Zero hint weights: the hints change nothing yet.
                self.assertAllClose(
                    hinted(
                        [
                            l_channel,
                            tf.stack([hint_ab] * 2),
                            tf.stack([mask] * 2),
                        ],
                        training=False,
                    ),
                    expected,
                    atol=1e-6,
                )
                kernel = hinted.get_layer('hint_conv').kernel
                self.assertEqual(float(tf.reduce_max(tf.abs(kernel))), 0.0)

    def test_encoder_weight_files_load_into_a_hint_generator(self):
        source = models.build_generator('resnet18_unet', width=8)
        path = os.path.join(self.get_temp_dir(), 'encoder.weights.h5')
        models.get_encoder(source).save_weights(path)
        hinted = models.build_generator(
            'resnet18_unet', width=8, hints=True, encoder_weights=path
        )
        for expected, loaded in zip(
            models.get_encoder(source).weights,
            models.get_encoder(hinted).weights,
            strict=True,
        ):
            self.assertAllEqual(expected, loaded)
        # A hint encoder is a torchvision ResNet plus an offset input only.
        self.assertEqual(
            len(resnet.build_resnet_encoder(width=8).weights),
            len(resnet.build_resnet_encoder(width=8, stem_offset=True).weights),
        )

    def test_init_from_a_model_without_hints_keeps_its_output(self):
        root = self.get_temp_dir()
        data_dir = shards.write_shards(
            os.path.join(root, 'data'),
            image_size=32,
            num_train=4,
            num_val=2,
            train_shards=1,
        )
        plain_dir = os.path.join(root, 'plain')
        utils.make_model_dir(plain_dir)
        plain, plain_config, _ = models.restore_generator(plain_dir, 'gan')
        config = utils.tiny_config(
            data_dir,
            os.path.join(root, 'hinted'),
            model=dataclasses.replace(plain_config, hints=True),
            hints='local',
            init_from=os.path.join(plain_dir, 'gan'),
        )
        strategy, policy = distribute.setup(
            config.strategy, config.mixed_precision
        )
        trainer = state.Trainer(config, strategy, policy)
        self.assertIn('initialised from', trainer.restore_or_initialise())
        l_channel = tf.random.stateless_uniform([1, 32, 32, 1], [0, 1], -1, 1)
        generator = trainer.networks.generator
        self.assertAllClose(
            generator(
                models.generator_inputs(generator, l_channel), training=False
            ),
            plain(l_channel, training=False),
            atol=1e-6,
        )


class PipelineTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = shards.write_shards(
            os.path.join(tf.test.TestCase().get_temp_dir(), 'one_file'),
            image_size=32,
            num_train=6,
            num_val=2,
            train_shards=1,
        )
        cls.pattern = records.shard_pattern(cls.data_dir, 'train')
        # Two files with the same records: what the two workers read then
        # differs only by what they draw.
        (source,) = tf.io.gfile.glob(cls.pattern)
        cls.twin_dir = os.path.join(cls.data_dir, 'twins')
        for index in range(2):
            tf.io.gfile.makedirs(cls.twin_dir)
            tf.io.gfile.copy(
                source,
                os.path.join(
                    cls.twin_dir, f'train-{index:05d}-of-00002.tfrecord'
                ),
            )

    def _worker(self, pipeline_id, training=True, pattern=None, **kwargs):
        context = tf.distribute.InputContext(
            num_input_pipelines=2,
            input_pipeline_id=pipeline_id,
            num_replicas_in_sync=2,
        )
        return input_pipeline.make_dataset(
            pattern or self.pattern,
            training=training,
            image_size=32,
            global_batch_size=2,
            input_context=context,
            **kwargs,
        )

    def test_two_workers_one_file_read_every_record_once(self):
        keys = []
        for worker in (0, 1):
            dataset = self._worker(worker, training=False)
            for l_channel, _ in dataset.unbatch():
                keys.append(float(tf.reduce_mean(l_channel)))
        self.assertLen(keys, 6)
        self.assertLen(set(keys), 6)

    def test_workers_augment_and_hint_differently_and_reruns_repeat(self):
        pattern = os.path.join(self.twin_dir, 'train-*')

        def first_batch(worker):
            return next(
                iter(
                    self._worker(
                        worker,
                        pattern=pattern,
                        augment=True,
                        min_crop_scale=0.5,
                        seed=3,
                        shuffle_buffer=1,
                        hints='local',
                    )
                )
            )

        zero, one, zero_again = first_batch(0), first_batch(1), first_batch(0)
        self.assertLen(zero, 4)
        for a, b in zip(zero, zero_again):
            self.assertAllEqual(a, b)
        # The same records, so crops and hints differ by their seeds alone.
        self.assertNotAllClose(zero[0], one[0])
        self.assertNotAllEqual(zero[3], one[3])
