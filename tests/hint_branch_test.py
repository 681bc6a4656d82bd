"""The hint branch over a frozen automatic generator (models/hint_branch.py)."""

import dataclasses
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from chromagen_tf import bundled
from chromagen_tf import color
from chromagen_tf import configs
from chromagen_tf import errors
from chromagen_tf import hint_format
from chromagen_tf import models
from chromagen_tf.inference import colorize_lib
from chromagen_tf.inference import hint_evaluation
from chromagen_tf.inference.colorizer import Colorizer
from chromagen_tf.models import color_bins
from chromagen_tf.models import hint_branch
from chromagen_tf.models import unet_lite
from chromagen_tf.serving import export_lib
from chromagen_tf.serving import signatures
from chromagen_tf.training import distribute
from chromagen_tf.training import state
from chromagen_tf.training import trainer
from tests import shards
from tests import utils

_AUTOMATIC = configs.ModelConfig(
    generator='resnet18_unet_lite', width=8, color_head='bins'
)
_BRANCH = dataclasses.replace(_AUTOMATIC, hints=True, hint_branch=True)


def _randomise(model, seed=0):
    """Weights far from their initialisation, so that equalities mean
    something (BatchNorm's variances kept positive)."""
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        value = rng.normal(0.0, 0.2, variable.shape)
        if 'variance' in variable.path:
            value = np.abs(value) + 0.5
        variable.assign(value.astype(np.float32))


def _pair():
    automatic = models.build_from_config(_AUTOMATIC)
    _randomise(automatic)
    branch = models.build_from_config(_BRANCH)
    models.loading.copy_weights_by_path(automatic, branch)
    return automatic, branch


def _one_cell_hints(height, width, cells):
    """Hint maps whose hints each fill one 4x4 cell of the 1/4 grid."""
    hint_ab = np.zeros([1, height, width, 2], np.float32)
    mask = np.zeros([1, height, width, 1], np.float32)
    for (row, column), value in cells:
        hint_ab[0, 4 * row : 4 * row + 4, 4 * column : 4 * column + 4] = value
        mask[0, 4 * row : 4 * row + 4, 4 * column : 4 * column + 4] = 1.0
    return tf.constant(hint_ab), tf.constant(mask)


class HintSpreadTest(tf.test.TestCase):
    def test_equals_a_direct_normalised_gaussian_sum(self):
        rng = np.random.default_rng(1)
        mask = (rng.random([1, 6, 9, 1]) < 0.15).astype(np.float32)
        difference = rng.normal(size=[1, 6, 9, 2]).astype(np.float32) * mask
        got = hint_branch.HintSpread([0.15, 0.02])(
            tf.constant(np.concatenate([mask, difference], -1))
        ).numpy()[0]
        rows, columns = np.mgrid[0:6, 0:9]
        for index, fraction in enumerate((0.15, 0.02)):
            sigma = fraction * np.hypot(6, 9)
            total, weight = np.zeros([6, 9, 2]), np.zeros([6, 9, 1])
            for r, c in zip(*np.nonzero(mask[0, ..., 0])):
                g = np.exp(
                    -((rows - r) ** 2 + (columns - c) ** 2) / (2 * sigma**2)
                )[..., None]
                total += g * difference[0, r, c]
                weight += g
            self.assertAllClose(
                got[..., 3 * index : 3 * index + 2],
                total / np.maximum(weight, 1.0),
                atol=1e-5,
            )
            self.assertAllClose(
                got[..., 3 * index + 2 : 3 * index + 3],
                weight / (1 + weight),
                atol=1e-5,
            )


class BranchModelTest(tf.test.TestCase):
    def test_without_hints_it_is_the_automatic_model_bit_for_bit(self):
        automatic, branch = _pair()
        l_channel = tf.random.stateless_uniform([2, 64, 96, 1], [0, 1], -1, 1)
        hint_ab, mask = _one_cell_hints(64, 96, [((3, 5), (0.5, -0.3))])
        expected = automatic(l_channel, training=False).numpy()
        self.assertAllEqual(
            branch(models.generator_inputs(branch, l_channel), training=False),
            expected,
        )
        # In a batch, the photo without hints is untouched too, while the
        # one with a hint changes.
        with_hints = branch(
            [
                l_channel,
                tf.concat([hint_ab, tf.zeros_like(hint_ab)], 0),
                tf.concat([mask, tf.zeros_like(mask)], 0),
            ],
            training=False,
        ).numpy()
        self.assertAllEqual(with_hints[1], expected[1])
        self.assertGreater(np.abs(with_hints[0] - expected[0]).max(), 0.1)

    def test_its_automatic_model_is_the_trunk_alone(self):
        automatic, branch = _pair()
        trunk = models.automatic_generator(branch)
        self.assertLen(trunk.inputs, 1)
        # Only the weightless up-sampling of the branch is in it.
        self.assertEqual(
            [layer.name for layer in trunk.layers if layer.name[:5] == 'hint_'],
            ['hint_output'],
        )
        self.assertEqual(trunk.count_params(), automatic.count_params())
        l_channel = tf.random.stateless_uniform([2, 64, 96, 1], [2, 3], -1, 1)
        self.assertAllEqual(
            trunk(l_channel, training=False),
            branch(models.generator_inputs(branch, l_channel), training=False),
        )
        self.assertIs(models.automatic_generator(automatic), automatic)
        hint_inputs = dataclasses.replace(_AUTOMATIC, hints=True)
        self.assertIsNone(
            models.automatic_generator(models.build_from_config(hint_inputs))
        )

    def test_a_colorizer_sends_photos_without_hints_to_the_trunk(self):
        _, branch = _pair()
        trunk = models.automatic_generator(branch)
        calls = []

        def spy(name, function):
            def call(*args):
                calls.append((name, int(args[0].shape[0])))
                return function(*args)

            return call

        def predict(l_channel, hint_ab, hint_mask):
            return branch([l_channel, hint_ab, hint_mask], training=False)

        def automatic(l_channel):
            return trunk(l_channel, training=False)

        rng = np.random.default_rng(3)
        photos = [rng.integers(0, 255, [48, 70, 3], np.uint8) for _ in range(3)]
        hint_lists = [None, [hint_format.Hint(30, 20, (200, 30, 30))], []]
        with_trunk = Colorizer(
            spy('branch', predict),
            64,
            32,
            takes_hints=True,
            automatic_fn=spy('trunk', automatic),
        ).colorize(photos, hint_lists)
        self.assertCountEqual(calls, [('trunk', 2), ('branch', 1)])
        plain = Colorizer(predict, 64, 32, takes_hints=True)
        without = plain.colorize(photos, hint_lists)
        for got, expected in zip(with_trunk, without, strict=True):
            self.assertAllEqual(got, expected)
        # The hinted photo went through the branch: its hint shows.
        unhinted = plain.colorize([photos[1]])[0]
        self.assertGreater(
            np.abs(with_trunk[1].astype(int) - unhinted).max(), 10
        )

    def test_a_regression_trunk_works_alike(self):
        automatic_config = dataclasses.replace(
            _AUTOMATIC, color_head='regression'
        )
        automatic = models.build_from_config(automatic_config)
        _randomise(automatic)
        branch = models.build_from_config(
            dataclasses.replace(automatic_config, hints=True, hint_branch=True)
        )
        models.loading.copy_weights_by_path(automatic, branch)
        l_channel = tf.random.stateless_uniform([1, 64, 64, 1], [5, 5], -1, 1)
        self.assertAllEqual(
            branch(models.generator_inputs(branch, l_channel), training=False),
            automatic(l_channel, training=False),
        )
        hint_ab, mask = _one_cell_hints(64, 64, [((4, 4), (0.3, 0.3))])
        guided = branch([l_channel, hint_ab, mask], training=False)
        self.assertAllClose(guided[0, 17, 17], [0.3, 0.3], atol=0.02)
        self.assertIsNone(unet_lite.logits_and_ab_model(branch))

    def test_starts_as_the_edge_blind_baseline(self):
        automatic, branch = _pair()
        l_channel = tf.random.stateless_uniform([1, 64, 96, 1], [2, 3], -1, 1)
        cells = [((2, 3), (0.4, -0.2)), ((12, 20), (-0.3, 0.5))]
        hint_ab, mask = _one_cell_hints(64, 96, cells)
        small = keras.Model(
            branch.inputs, branch.get_layer('hint_ab_small').output
        )
        got = small([l_channel, hint_ab, mask], training=False).numpy()[0]
        automatic_small = keras.Model(
            automatic.inputs, automatic.get_layer('ab_small').output
        )(l_channel, training=False).numpy()[0]
        simulated = hint_evaluation.Simulated(
            maps=None,
            centres=np.array([cell for cell, _ in cells], np.float32),
            values=np.array([value for _, value in cells], np.float32),
            boxes=[(row, column, 1) for (row, column), _ in cells],
        )
        expected = hint_evaluation.spread_baseline(
            automatic_small * color.AB_SCALE, simulated
        )
        self.assertAllClose(got * color.AB_SCALE, expected, atol=1e-3)
        # Each hint is met where it lies.
        for (row, column), value in cells:
            self.assertAllClose(got[row, column], value, atol=0.02)

    def test_a_correction_scale_shrinks_the_learned_correction(self):
        # hint_correction s gives automatic + spread + s * correction: the
        # same as scale 1 with the (linear) last convolution times s. Its
        # weights are those of any branch, so one file loads at any scale.
        _, branch = _pair()
        _randomise(branch, seed=1)
        scaled = models.build_from_config(
            dataclasses.replace(_BRANCH, hint_correction=0.7)
        )
        self.assertEqual(
            [v.path for v in scaled.weights], [v.path for v in branch.weights]
        )
        for target, source in zip(scaled.weights, branch.weights):
            target.assign(source)
        hint_ab, mask = _one_cell_hints(64, 96, [((3, 5), (0.5, -0.3))])
        l_channel = tf.random.stateless_uniform([1, 64, 96, 1], [4, 1], -1, 1)
        inputs = [l_channel, hint_ab, mask]
        got = scaled(inputs, training=False)
        last = branch.get_layer(f'{hint_branch.PREFIX}correction')
        kernel, bias = (w.numpy() for w in last.weights)
        last.set_weights([0.7 * kernel, 0.7 * bias])
        self.assertAllClose(got, branch(inputs, training=False), atol=1e-5)
        last.set_weights([kernel, bias])
        # The correction matters here, and the scale changes the result.
        self.assertGreater(
            np.abs(got - branch(inputs, training=False)).max(), 1e-2
        )
        # Without hints the scale changes nothing.
        self.assertAllEqual(
            scaled(models.generator_inputs(scaled, l_channel), training=False),
            branch(models.generator_inputs(branch, l_channel), training=False),
        )

    def test_a_correction_scale_needs_a_branch_and_is_not_negative(self):
        with self.assertRaises(errors.UsageError):
            dataclasses.replace(_AUTOMATIC, hint_correction=0.5)
        for bad in (-0.1, float('nan')):
            with self.assertRaises(errors.UsageError):
                dataclasses.replace(_BRANCH, hint_correction=bad)
        with self.assertRaisesRegex(errors.UsageError, '--hint_correction'):
            models.loading.with_decoding(_AUTOMATIC, hint_correction=0.5)
        self.assertEqual(
            models.loading.with_decoding(
                _BRANCH, hint_correction=0.5
            ).hint_correction,
            0.5,
        )

    def test_only_the_branch_is_trainable(self):
        _, branch = _pair()
        trainable = {variable.path for variable in branch.trainable_weights}
        self.assertTrue(trainable)
        self.assertTrue(
            all(path.startswith(hint_branch.PREFIX) for path in trainable)
        )
        self.assertEqual(
            {
                v.path
                for v in branch.weights
                if not v.path.startswith(hint_branch.PREFIX)
            },
            {v.path for v in models.build_from_config(_AUTOMATIC).weights},
        )

    def test_the_bundle_format_names_the_same_prefix(self):
        self.assertEqual(bundled.HINT_BRANCH_PREFIX, hint_branch.PREFIX)

    def test_config_needs_hints_and_a_lite_generator(self):
        with self.assertRaises(errors.UsageError):
            dataclasses.replace(_AUTOMATIC, hint_branch=True)
        with self.assertRaises(errors.UsageError):
            configs.ModelConfig(
                generator='resnet18_unet', hints=True, hint_branch=True
            )


class ShiftedLogitsTest(tf.test.TestCase):
    def test_a_whole_bin_step_moves_the_distribution_one_bin(self):
        logits = tf.random.stateless_normal(
            [1, 2, 3, color_bins.NUM_BINS], [4, 5]
        )
        step = color_bins.BIN_SPACING / color.AB_SCALE
        grid = tf.reshape(logits, [1, 2, 3, 23, 23]).numpy()
        moved = color_bins.ShiftLogits()(
            [logits, tf.fill([1, 2, 3, 2], 0.0) + [step, -2 * step]]
        )
        moved = tf.reshape(moved, [1, 2, 3, 23, 23]).numpy()
        # New bin (i, j) holds old bin (i - 1, j + 2).
        self.assertAllClose(moved[..., 1:, :-2], grid[..., :-1, 2:], atol=1e-5)
        half = color_bins.ShiftLogits()(
            [logits, tf.fill([1, 2, 3, 2], 0.0) + [step / 2, 0.0]]
        )
        half = tf.reshape(half, [1, 2, 3, 23, 23]).numpy()
        self.assertAllClose(
            half[..., 1:, :],
            (grid[..., 1:, :] + grid[..., :-1, :]) / 2,
            atol=1e-5,
        )

    def test_suggestions_follow_a_nearby_hint(self):
        _, branch = _pair()
        # An automatic distribution peaked at gray everywhere.
        head = branch.get_layer(unet_lite.LOGITS_LAYER)
        head.kernel.assign(tf.zeros_like(head.kernel))
        head.bias.assign(
            -50.0 * np.sum(color_bins.bin_centres() ** 2, -1).astype(np.float32)
        )
        logits_model = unet_lite.logits_and_ab_model(branch)
        l_channel = tf.random.stateless_uniform([1, 64, 64, 1], [6, 7], -1, 1)
        hint_ab, mask = _one_cell_hints(64, 64, [((8, 8), (0.6, 0.3))])
        without, _ = logits_model(
            models.generator_inputs(branch, l_channel), training=False
        )
        with_hint, ab = logits_model([l_channel, hint_ab, mask], training=False)
        self.assertAllClose(ab[0, 33, 33], [0.6, 0.3], atol=0.02)
        step = color_bins.BIN_SPACING / color.AB_SCALE
        top, _ = color_bins.suggest(without[0, 8, 8], 1)
        self.assertAllClose(top[0], [0.0, 0.0])
        # At the hint, the most likely colour is the hint's bin; two cells
        # away (weight exp(-8 / (2 * 3.4^2)) = 0.71 in the widest spread)
        # the peak has moved about 0.71 of the way.
        top, _ = color_bins.suggest(with_hint[0, 8, 8], 1)
        self.assertAllClose(top[0], [0.6, 0.3], atol=step)
        near, _ = color_bins.suggest(with_hint[0, 10, 10], 1)
        self.assertAllClose(near[0], [0.6 * 0.71, 0.3 * 0.71], atol=1.5 * step)
        far, _ = color_bins.suggest(with_hint[0, 15, 15], 1)
        self.assertAllClose(far[0], [0.0, 0.0], atol=step)


class BranchBundleTest(tf.test.TestCase):
    def test_two_files_and_the_automatic_file_serves_alone(self):
        automatic, branch = _pair()
        folder = self.get_temp_dir()
        bundled.save(
            branch, _BRANCH, os.path.join(folder, 'branch'), render_size=64
        )
        bundled.save(
            automatic,
            _AUTOMATIC,
            os.path.join(folder, 'automatic'),
            render_size=64,
        )
        with np.load(os.path.join(folder, 'branch', bundled.WEIGHTS_FILE)) as f:
            self.assertFalse([k for k in f.files if k.startswith('hint_')])
        with np.load(
            os.path.join(folder, 'branch', bundled.HINT_BRANCH_FILE)
        ) as f:
            self.assertTrue(all(k.startswith('hint_') for k in f.files))
        self.assertFalse(
            os.path.exists(
                os.path.join(folder, 'automatic', bundled.HINT_BRANCH_FILE)
            )
        )
        loaded, config, _ = bundled.load_generator(
            os.path.join(folder, 'branch')
        )
        self.assertTrue(config.hint_branch)
        plain, _, _ = bundled.load_generator(os.path.join(folder, 'automatic'))
        # Its colorizer sends photos without hints to the automatic model,
        # at any render size; the automatic bundle's has nothing to skip.
        colorizer = colorize_lib.load_colorizer(os.path.join(folder, 'branch'))
        self.assertIsNotNone(colorizer._automatic_fn)
        self.assertIsNotNone(colorizer.with_render_size(32)._automatic_fn)
        self.assertIsNone(
            colorize_lib.load_colorizer(
                os.path.join(folder, 'automatic')
            )._automatic_fn
        )
        l_channel = tf.random.stateless_uniform([1, 64, 64, 1], [8, 9], -1, 1)
        self.assertAllEqual(
            loaded(models.generator_inputs(loaded, l_channel), training=False),
            plain(l_channel, training=False),
        )
        os.remove(os.path.join(folder, 'branch', bundled.HINT_BRANCH_FILE))
        with self.assertRaisesRegex(bundled.BundledModelError, 'hint_branch'):
            bundled.load_generator(os.path.join(folder, 'branch'))

    def test_a_branch_bundle_ships_its_automatic_weights_file_unchanged(self):
        automatic, branch = _pair()
        folder = self.get_temp_dir()
        source = bundled.save(
            automatic, _AUTOMATIC, os.path.join(folder, 'a'), render_size=64
        )
        output = bundled.save(
            branch, _BRANCH, os.path.join(folder, 'b'), render_size=64
        )
        bundled.reuse_weights_file(source, output)

        def read(path):
            with open(os.path.join(path, bundled.WEIGHTS_FILE), 'rb') as f:
                return f.read()

        self.assertEqual(read(output), read(source))
        kernel = next(v for v in branch.weights if v.path == 'conv1/kernel')
        kernel.assign(kernel + 1.0)
        bundled.save(branch, _BRANCH, output, render_size=64)
        with self.assertRaisesRegex(bundled.BundledModelError, 'values'):
            bundled.reuse_weights_file(source, output)

    def test_a_bundle_records_its_correction_scale(self):
        _, branch = _pair()
        _randomise(branch, seed=2)
        output = bundled.save(
            branch,
            dataclasses.replace(_BRANCH, hint_correction=0.7),
            os.path.join(self.get_temp_dir(), 'scaled'),
            render_size=64,
        )
        loaded, loaded_config, _ = bundled.load_generator(output)
        self.assertEqual(loaded_config.hint_correction, 0.7)
        # The recorded scale can be overridden, as the decoding can; the
        # file's weights at scale 1 with the last convolution times 0.7
        # are the recorded model.
        unscaled, _, _ = bundled.load_generator(output, hint_correction=1.0)
        last = unscaled.get_layer(f'{hint_branch.PREFIX}correction')
        last.set_weights([0.7 * w for w in last.get_weights()])
        hint_ab, mask = _one_cell_hints(64, 64, [((5, 6), (-0.4, 0.2))])
        inputs = [
            tf.random.stateless_uniform([1, 64, 64, 1], [6, 2], -1, 1),
            hint_ab,
            mask,
        ]
        self.assertAllClose(
            loaded(inputs, training=False),
            unscaled(inputs, training=False),
            atol=1e-5,
        )
        # colorize, evaluate and the app reach it through load_generator.
        for setting, expected in ((None, 0.7), (0.25, 0.25)):
            _, model_config, _, _ = colorize_lib.load_generator(
                output, hint_correction=setting
            )
            self.assertEqual(model_config.hint_correction, expected)
        # Training on from it (at scale 1, as a branch always trains) takes
        # its weights: the recorded scale is a decoding setting.
        generator = models.build_from_config(_BRANCH)
        self.assertEqual(
            state.initialise_generator(
                configs.tiny('pretrain', model=_BRANCH, init_from=output),
                generator,
            ),
            output,
        )
        stored, _, _ = bundled.load_generator(output, hint_correction=1.0)
        for variable, source in zip(generator.weights, stored.weights):
            self.assertAllEqual(variable, source)


class BranchTrainingTest(tf.test.TestCase):
    @pytest.mark.slow
    def test_training_moves_the_branch_only(self):
        root = self.get_temp_dir()
        data_dir = shards.write_shards(
            os.path.join(root, 'data'),
            image_size=64,
            num_train=4,
            num_val=2,
            train_shards=1,
        )
        automatic_dir = os.path.join(root, 'automatic')
        source = utils.make_model_dir(automatic_dir, model_config=_AUTOMATIC)
        # Weights far from their start, BatchNorm statistics included.
        _randomise(source)
        checkpoint = tf.train.Checkpoint(
            generator=source, step=tf.Variable(7, dtype=tf.int64)
        )
        checkpoint.write(tf.train.latest_checkpoint(automatic_dir + '/gan'))
        branch_dir = os.path.join(root, 'branch')
        trainer.train(
            utils.tiny_config(
                data_dir,
                branch_dir,
                model=_BRANCH,
                hints='local',
                image_size=64,
                train_steps=2,
                ema_decay=0.9,
                init_from=os.path.join(automatic_dir, 'gan'),
            )
        )
        # Evaluation also measures the model with simulated hints: without
        # them a hint branch would show no progress at all.
        scalars = utils.scalars_at(
            os.path.join(branch_dir, 'pretrain', 'eval'), 2
        )
        self.assertGreater(
            scalars['metrics/psnr_with_hints'], scalars['metrics/psnr']
        )
        self.assertLess(scalars['metrics/l1_with_hints'], scalars['metrics/l1'])
        automatic, _, _ = models.restore_generator(automatic_dir, 'gan')
        for average in (False, True):
            trained, _, _ = models.restore_generator(
                branch_dir, 'pretrain', average=average
            )
            values = {v.path: v.numpy() for v in automatic.weights}
            for variable in trained.weights:
                if variable.path.startswith(hint_branch.PREFIX):
                    continue
                self.assertAllEqual(variable, values[variable.path])
            correction = trained.get_layer('hint_correction').kernel
            self.assertGreater(float(tf.reduce_max(tf.abs(correction))), 0.0)
            l_channel = tf.random.stateless_uniform(
                [1, 64, 64, 1], [1, 1], -1, 1
            )
            self.assertAllEqual(
                trained(
                    models.generator_inputs(trained, l_channel), training=False
                ),
                automatic(l_channel, training=False),
            )
        # A training directory decodes at another scale on request.
        scaled, scaled_config, _ = models.restore_generator(
            branch_dir, 'pretrain', hint_correction=0.5
        )
        self.assertEqual(scaled_config.hint_correction, 0.5)
        # The moving average (the last `trained` above) at scale 1 with its
        # last, linear, convolution halved.
        last = trained.get_layer(f'{hint_branch.PREFIX}correction')
        last.set_weights([0.5 * w for w in last.get_weights()])
        hint_ab, mask = _one_cell_hints(64, 64, [((3, 3), (0.5, -0.2))])
        inputs = [l_channel, hint_ab, mask]
        self.assertAllClose(
            scaled(inputs, training=False),
            trained(inputs, training=False),
            atol=1e-5,
        )


def _op_names(function) -> str:
    """Every node name in a concrete function's graph and its library."""
    graph_def = function.graph.as_graph_def()
    names = [node.name for node in graph_def.node]
    for library_function in graph_def.library.function:
        names += [node.name for node in library_function.node_def]
    return ' '.join(names)


class BranchExportTest(tf.test.TestCase):
    @pytest.mark.slow  # Traces every signature (12 s).
    def test_signatures_without_hints_skip_the_branch(self):
        _, branch = _pair()
        module = signatures.ColorizationModule(branch, render_size=64)
        endpoints = module.endpoints()
        image = tf.io.encode_png(
            tf.random.stateless_uniform([40, 56, 3], [4, 4], 0, 255, tf.int32)
            .numpy()
            .astype(np.uint8)
        )[tf.newaxis]

        def with_hints(points, colors):
            return endpoints['colorize_with_hints'](
                image,
                tf.constant(points, tf.float32, [1, len(points), 2]),
                tf.constant(colors, tf.uint8, [1, len(colors), 3]),
            )[signatures.COLORIZED_PNG]

        automatic = endpoints['serving_default'](image)[
            signatures.COLORIZED_PNG
        ]
        self.assertAllEqual(with_hints([], []), automatic)
        # Only padding: no point inside the photo.
        self.assertAllEqual(with_hints([[-1, -1]], [[9, 9, 9]]), automatic)
        hinted = with_hints([[20, 10]], [[200, 30, 30]])
        self.assertNotAllEqual(hinted, automatic)
        # The trunk's signature gives what the branch model's does without
        # hints.
        l_channel = tf.random.stateless_uniform([2, 64, 96, 1], [6, 6], -1, 1)
        self.assertAllEqual(
            endpoints['predict_ab'](l_channel)[signatures.AB],
            endpoints['predict_ab_with_hints'](
                l_channel,
                tf.zeros([2, 64, 96, 2]),
                tf.zeros([2, 64, 96, 1]),
            )[signatures.AB],
        )
        self.assertNotIn(
            'hint_spread',
            _op_names(endpoints['predict_ab'].get_concrete_function()),
        )
        self.assertIn(
            'hint_spread',
            _op_names(
                endpoints['predict_ab_with_hints'].get_concrete_function()
            ),
        )

    @pytest.mark.slow  # One SavedModel export (its tracing is the time).
    def test_an_export_applies_the_correction_scale_and_skips_the_branch(
        self,
    ):
        _, branch = _pair()
        _randomise(branch, seed=3)
        scaled = models.build_from_config(
            dataclasses.replace(_BRANCH, hint_correction=0.6)
        )
        for target, source in zip(scaled.weights, branch.weights):
            target.assign(source)
        export = export_lib.export_saved_model(
            signatures.ColorizationModule(scaled, render_size=64),
            os.path.join(self.get_temp_dir(), 'scaled'),
        )
        loaded = tf.saved_model.load(export)
        hint_ab, mask = _one_cell_hints(64, 64, [((4, 9), (0.6, 0.3))])
        l_channel = tf.random.stateless_uniform([1, 64, 64, 1], [8, 3], -1, 1)
        served = loaded.signatures['predict_ab_with_hints'](
            l_channel=l_channel, hint_ab=hint_ab, hint_mask=mask
        )[signatures.AB]
        self.assertAllClose(
            served,
            scaled([l_channel, hint_ab, mask], training=False),
            atol=1e-4,
        )
        self.assertGreater(
            np.abs(
                served - branch([l_channel, hint_ab, mask], training=False)
            ).max(),
            1e-2,
        )
        # Without hints the exported trunk gives what the branch does.
        self.assertAllEqual(
            loaded.signatures['predict_ab'](l_channel=l_channel)[signatures.AB],
            loaded.signatures['predict_ab_with_hints'](
                l_channel=l_channel,
                hint_ab=tf.zeros([1, 64, 64, 2]),
                hint_mask=tf.zeros([1, 64, 64, 1]),
            )[signatures.AB],
        )
        # The colorizer of an export sends photos without hints there.
        self.assertIsNotNone(colorize_lib.load_colorizer(export)._automatic_fn)

    @pytest.mark.slow
    def test_tflite_equals_the_saved_model_endpoint_with_hints(self):
        _, branch = _pair()
        module = signatures.ColorizationModule(branch, render_size=64)
        path = export_lib.export_tflite(
            module, os.path.join(self.get_temp_dir(), 'tflite')
        )
        interpreter = tf.lite.Interpreter(model_path=path)
        interpreter.allocate_tensors()
        hint_ab, mask = _one_cell_hints(64, 64, [((3, 4), (0.5, -0.4))])
        values = {
            signatures.L_CHANNEL: np.linspace(
                -1, 1, 64 * 64, dtype=np.float32
            ).reshape(1, 64, 64, 1),
            signatures.HINT_AB: hint_ab.numpy(),
            signatures.HINT_MASK: mask.numpy(),
        }
        for detail in interpreter.get_input_details():
            name = next(
                (
                    key
                    for key in (signatures.HINT_AB, signatures.HINT_MASK)
                    if key in detail['name']
                ),
                signatures.L_CHANNEL,
            )
            interpreter.set_tensor(detail['index'], values[name])
        interpreter.invoke()
        output = interpreter.get_tensor(
            interpreter.get_output_details()[0]['index']
        )
        expected = module.endpoints()['predict_ab_with_hints'](
            values[signatures.L_CHANNEL],
            values[signatures.HINT_AB],
            values[signatures.HINT_MASK],
        )[signatures.AB]
        self.assertAllClose(output, expected, atol=1e-4)
        self.assertAllClose(output[0, 13, 17], [0.5, -0.4], atol=0.02)


class BranchStartTest(tf.test.TestCase):
    def _trainer(self, **overrides):
        root = self.get_temp_dir()
        data_dir = shards.write_shards(
            os.path.join(root, 'data'),
            image_size=32,
            num_train=2,
            num_val=1,
            train_shards=1,
        )
        config = utils.tiny_config(
            data_dir,
            os.path.join(root, 'branch'),
            model=_BRANCH,
            hints='local',
            **overrides,
        )
        strategy, policy = distribute.setup(
            config.strategy, config.mixed_precision
        )
        return state.Trainer(config, strategy, policy)

    def test_needs_an_automatic_model_to_start_from(self):
        with self.assertRaisesRegex(errors.TrainingError, '--init_from'):
            self._trainer().restore_or_initialise()

    def test_trains_over_a_bundle_only_as_the_bundle_decodes(self):
        automatic = models.build_from_config(_AUTOMATIC)
        source = bundled.save(
            automatic,
            dataclasses.replace(_AUTOMATIC, temperature=0.5),
            os.path.join(self.get_temp_dir(), 'automatic'),
            render_size=64,
        )
        with self.assertRaisesRegex(
            errors.TrainingError, '--temperature=0.5 --prior_strength=0.0'
        ):
            self._trainer(init_from=source).restore_or_initialise()
