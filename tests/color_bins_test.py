"""Tests of the colour-bins head: the bins, its loss, training and saving."""

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
from chromagen_tf import files
from chromagen_tf import models
from chromagen_tf.data import records
from chromagen_tf.inference import colorize_lib
from chromagen_tf.models import color_bins
from chromagen_tf.models import unet_lite
from chromagen_tf.serving import export_lib
from chromagen_tf.serving import signatures
from chromagen_tf.training import bin_prior
from chromagen_tf.training import losses
from chromagen_tf.training import trainer
from tests import shards
from tests import utils

_BINS_MODEL = configs.ModelConfig(
    generator='resnet18_unet_lite',
    width=8,
    discriminator_width=8,
    color_head='bins',
    temperature=0.5,
)


def _ab(a: float, b: float) -> np.ndarray:
    return np.array([a, b], np.float32) / color.AB_SCALE


def _soft_encode_numpy(ab: np.ndarray) -> np.ndarray:
    """Zhang's soft encoding from scratch: a Gaussian (sigma 5 Lab units)
    of the distance to each centre of the 10-unit grid over [-110, 110]."""
    axis = np.arange(-110, 111, 10, dtype=np.float64)
    centres = np.stack(np.meshgrid(axis, axis, indexing='ij'), -1).reshape(
        -1, 2
    )
    distance = np.linalg.norm(ab[..., None, :] * 110.0 - centres, axis=-1)
    weights = np.exp(-(distance**2) / (2 * 5.0**2))
    return weights / weights.sum(-1, keepdims=True)


class ColorBinsTest(tf.test.TestCase):
    def test_the_grid_holds_gray_and_spans_the_gamut(self):
        centres = color_bins.bin_centres() * color.AB_SCALE
        self.assertEqual(centres.shape, (color_bins.NUM_BINS, 2))
        self.assertEqual(np.sum(np.all(centres == 0, axis=1)), 1)
        self.assertAllClose(centres.min(0), [-110, -110])
        self.assertAllClose(centres.max(0), [110, 110])
        self.assertAllClose(np.diff(np.unique(centres[:, 0])), [10] * 22)

    def test_soft_encoding_peaks_at_the_nearest_bin_and_decodes_back(self):
        colours = np.stack([_ab(0, 0), _ab(33, -48), _ab(-71.5, 86)])
        targets = color_bins.soft_encode(colours).numpy()
        self.assertAllClose(targets, _soft_encode_numpy(colours), atol=1e-6)
        centres = color_bins.bin_centres() * color.AB_SCALE
        self.assertAllClose(
            centres[targets.argmax(-1)], [[0, 0], [30, -50], [-70, 90]]
        )
        # Gaussian weights, sigma 5: a neighbour 10 away has e^-2 of the
        # weight of an exact match.
        gray = targets[0]
        self.assertAllClose(
            gray[np.all(centres == [10, 0], axis=1)][0] / gray.max(),
            np.exp(-2.0),
            rtol=1e-4,
        )
        # The mean of the soft targets sits within a unit of the colour.
        decoded = color_bins.annealed_mean(np.log(targets), 1.0).numpy()
        self.assertAllClose(
            decoded * color.AB_SCALE, colours * color.AB_SCALE, atol=1.0
        )

    def test_lower_temperatures_move_from_the_mean_to_the_mode(self):
        # 60% gray, 40% a saturated green: the mean is pale, the mode gray,
        # and the annealed mean in between moves towards the mode.
        probabilities = np.full(color_bins.NUM_BINS, 1e-9, np.float32)
        centres = color_bins.bin_centres() * color.AB_SCALE
        gray = np.all(centres == [0, 0], axis=1)
        green = np.all(centres == [-60, 50], axis=1)
        probabilities[gray], probabilities[green] = 0.6, 0.4
        logits = np.log(probabilities)
        mean = color_bins.annealed_mean(logits, 1.0).numpy()
        self.assertAllClose(mean * color.AB_SCALE, [-24, 20], atol=1e-3)
        chromas = [
            np.linalg.norm(
                color_bins.annealed_mean(logits, t).numpy() * color.AB_SCALE
            )
            for t in (1.0, 0.38, 0.05)
        ]
        self.assertGreater(chromas[0], chromas[1])
        self.assertGreater(chromas[1], chromas[2])
        # At T = 0.05 green keeps (0.4 / 0.6)^20 = 3e-4 of gray's weight.
        self.assertLess(chromas[2], 0.1)

    def test_cross_entropy_matches_numpy(self):
        rng = np.random.default_rng(0)
        ab = rng.uniform(-0.6, 0.6, (2, 8, 8, 2)).astype(np.float32)
        logits = rng.normal(size=(2, 2, 2, color_bins.NUM_BINS)).astype(
            np.float32
        )
        # Each logit covers a 4x4 block: the target is the block's mean ab.
        blocks = ab.reshape(2, 2, 4, 2, 4, 2).mean(axis=(2, 4))
        targets = _soft_encode_numpy(blocks)
        log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        expected = -(targets * log_p).sum(-1).mean(axis=(1, 2))
        self.assertAllClose(
            losses.color_bins_cross_entropy(ab, logits), expected, rtol=1e-5
        )

    def test_prior_adjusted_annealed_mean_matches_numpy(self):
        rng = np.random.default_rng(1)
        logits = rng.normal(size=(3, color_bins.NUM_BINS))
        log_prior = np.log(rng.dirichlet(np.ones(color_bins.NUM_BINS)))
        for temperature, tau in ((1.0, 0.0), (0.38, 0.5), (0.6, 1.0)):
            adjusted = (logits - tau * log_prior) / temperature
            p = np.exp(adjusted - adjusted.max(-1, keepdims=True))
            p /= p.sum(-1, keepdims=True)
            expected = p @ color_bins.bin_centres()
            layer = color_bins.AnnealedMean(
                temperature, log_prior.tolist(), tau
            )
            self.assertAllClose(
                layer(logits.astype(np.float32)), expected, atol=1e-5
            )

    def test_the_generator_outputs_the_annealed_mean_of_its_logits(self):
        generator = models.build_generator(
            'resnet18_unet_lite', width=8, color_head='bins', temperature=0.5
        )
        l_channel = tf.random.stateless_uniform([2, 64, 64, 1], (1, 2), -1, 1)
        logits, ab = unet_lite.logits_and_ab_model(generator)(l_channel)
        self.assertEqual(logits.shape, (2, 16, 16, color_bins.NUM_BINS))
        small = color_bins.annealed_mean(logits, 0.5)
        self.assertAllClose(ab, tf.image.resize(small, [64, 64]), atol=1e-5)
        path = os.path.join(self.get_temp_dir(), 'bins.keras')
        generator.save(path)
        reloaded = keras.models.load_model(path)
        self.assertAllClose(reloaded(l_channel), ab, atol=1e-5)
        self.assertIsNone(
            unet_lite.logits_and_ab_model(
                models.build_generator('resnet18_unet_lite', width=8)
            )
        )

    def test_bins_need_a_lite_generator(self):
        with self.assertRaisesRegex(ValueError, 'unet_lite'):
            models.build_generator('resnet18_unet', width=8, color_head='bins')
        with self.assertRaisesRegex(errors.UsageError, 'unet_lite'):
            configs.ModelConfig(generator='pix2pix_unet', color_head='bins')


class OlderConfigsTest(tf.test.TestCase):
    def test_directories_from_before_the_colour_head_still_match(self):
        # What config.json and a stage's config.json held before
        # color_head, temperature and prior_strength existed.
        model_dir = self.get_temp_dir()
        old_model = {
            'generator': 'resnet18_unet_lite',
            'width': 8,
            'discriminator_width': 8,
            'spectral_norm': False,
        }
        files.write_json_atomically(
            configs.model_config_path(model_dir), old_model
        )
        config = utils.tiny_config(
            'data', model_dir, model=configs.ModelConfig(**old_model)
        )
        stage = configs.to_dict(config)
        stage['model'] = old_model
        del stage['lambda_ce']
        os.makedirs(config.stage_dir)
        files.write_json_atomically(
            files.join(config.stage_dir, configs.STAGE_CONFIG_FILE), stage
        )
        configs.check_and_write_model_config(model_dir, config.model)
        configs.check_and_write_stage_config(config)
        self.assertEqual(
            configs.read_model_config(model_dir).color_head, 'regression'
        )
        with self.assertRaisesRegex(
            configs.ConfigMismatchError, "color_head='regression'.*'bins'"
        ):
            configs.check_and_write_model_config(model_dir, _BINS_MODEL)


class ColorBinsTrainingTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = shards.write_shards(
            os.path.join(tf.compat.v1.test.get_temp_dir(), 'bins_data'),
            image_size=48,
            num_train=8,
            num_val=4,
        )

    @pytest.mark.slow  # Both stages; loss_scale_test steps on the bins.
    def test_both_stages_train_on_cross_entropy_and_bundle(self):
        model_dir = os.path.join(self.get_temp_dir(), 'bins_run')
        result = trainer.train(
            utils.tiny_config(self.data_dir, model_dir, model=_BINS_MODEL)
        )
        self.assertEqual(result['step'], 2)
        self.assertEqual(set(result['losses']), {'l1', 'ce'})
        # Random logits: about log(529) nats.
        self.assertAllInRange(result['losses']['ce'], 3.0, 9.0)
        result = trainer.train(
            utils.tiny_config(
                self.data_dir,
                model_dir,
                stage='gan',
                model=_BINS_MODEL,
                mixed_precision='bfloat16',
            )
        )
        self.assertEqual(result['step'], 2)
        self.assertIn('ce', result['losses'])
        for value in result['losses'].values():
            self.assertTrue(np.isfinite(value))
        train_tags = utils.event_tags(os.path.join(model_dir, 'gan', 'train'))
        self.assertEqual(train_tags.get('losses/ce'), 'scalars')

        # The trainer kept the training set's prior beside the checkpoints.
        log_prior = models.loading.read_log_prior(model_dir)
        self.assertLen(log_prior, color_bins.NUM_BINS)
        generator, model_config, _ = models.restore_generator(
            model_dir, prior_strength=0.7
        )
        self.assertEqual(model_config.prior_strength, 0.7)
        path = bundled.save(
            generator,
            model_config,
            os.path.join(self.get_temp_dir(), 'bundle'),
            render_size=64,
            info={bundled.BIN_PRIOR_KEY: log_prior},
        )
        reloaded, reloaded_config, _ = bundled.load_generator(path)
        self.assertEqual(reloaded_config.temperature, 0.5)
        self.assertEqual(reloaded_config.prior_strength, 0.7)
        l_channel = tf.random.stateless_uniform([1, 64, 64, 1], (3, 4), -1, 1)
        self.assertAllClose(
            reloaded(l_channel), generator(l_channel), atol=2e-3
        )
        unadjusted, _, _ = bundled.load_generator(path, prior_strength=0.0)
        self.assertNotAllClose(
            unadjusted(l_channel), generator(l_channel), atol=1e-3
        )

    def test_the_prior_is_the_mean_soft_target_mixed_with_uniform(self):
        log_prior = bin_prior.estimate_log_prior(self.data_dir)
        totals, pixels = 0.0, 0
        for path in shards.sample_photo_paths()[:8]:  # The train split.
            ab = shards.lab_from_photo(path, 48)[..., 1:] / color.AB_SCALE
            blocks = ab.reshape(6, 8, 6, 8, 2).mean(axis=(1, 3))
            totals += color_bins.soft_encode(blocks).numpy().sum(axis=(0, 1))
            pixels += 36
        expected = 0.5 * totals / pixels + 0.5 / color_bins.NUM_BINS
        # Records store ab to within 0.5 units, hence the tolerance.
        self.assertAllClose(np.exp(log_prior), expected, atol=1e-3)
        # The 13 bins within 20 of gray hold ~half of these photos' pixels.
        centres = color_bins.bin_centres() * color.AB_SCALE
        near_gray = np.hypot(centres[:, 0], centres[:, 1]) <= 20
        share = 2.0 * (np.exp(log_prior) - 0.5 / color_bins.NUM_BINS)
        self.assertEqual(near_gray.sum(), 13)
        self.assertGreater(share[near_gray].sum(), 0.4)

    def test_every_worker_gets_the_prior_and_only_the_chief_writes_it(self):
        model_dir = os.path.join(self.get_temp_dir(), 'prior_workers')
        other = bin_prior.read_or_estimate(
            model_dir, self.data_dir, write=False
        )
        self.assertFalse(os.path.exists(models.loading.prior_path(model_dir)))
        chief = bin_prior.read_or_estimate(model_dir, self.data_dir)
        self.assertEqual(other, chief)
        self.assertEqual(models.loading.read_log_prior(model_dir), chief)
        # A file that holds no prior is named, not a KeyError.
        files.write_json_atomically(
            models.loading.prior_path(model_dir), {'log_prior': chief[:10]}
        )
        with self.assertRaisesRegex(
            errors.ChromaGenError, 'no log_prior of 529 values'
        ):
            models.loading.read_log_prior(model_dir)

    def test_a_corrupt_record_is_named_or_skipped_by_the_prior(self):
        directory = shards.write_shards(
            os.path.join(self.get_temp_dir(), 'corrupt'),
            image_size=32,
            num_train=4,
            num_val=1,
            train_shards=1,
        )
        path = os.path.join(directory, 'train-00000-of-00001.tfrecord')
        with open(path, 'r+b') as f:
            f.seek(os.path.getsize(path) // 2)
            f.write(bytes(32))
        model_dir = os.path.join(self.get_temp_dir(), 'corrupt_run')
        # The prior is the first thing a colour-bins run reads.
        with self.assertRaisesRegex(records.CorruptRecordError, path):
            trainer.train(
                utils.tiny_config(directory, model_dir, model=_BINS_MODEL)
            )
        self.assertIsNone(models.loading.read_log_prior(model_dir))
        with self.assertRaises(tf.errors.DataLossError):
            bin_prior.estimate_log_prior(directory)
        log_prior = bin_prior.read_or_estimate(
            model_dir, directory, skip_corrupt_records=True
        )
        self.assertLen(log_prior, color_bins.NUM_BINS)
        self.assertAllInRange(
            np.exp(log_prior), 0.49 / color_bins.NUM_BINS, 1.0
        )

    @pytest.mark.slow  # 200 steps; unet_test overfits in the fast tier.
    def test_pretraining_on_cross_entropy_overfits_four_images(self):
        four = shards.write_shards(
            os.path.join(self.get_temp_dir(), 'four'),
            image_size=32,
            num_train=4,
            num_val=1,
            train_shards=1,
        )
        config = utils.tiny_config(
            four,
            os.path.join(self.get_temp_dir(), 'overfit'),
            model=_BINS_MODEL,
            train_steps=1,
            lr_g=3e-3,
            augment=False,
            eval_every=1000,
            summary_every=1000,
            checkpoint_every=1000,
        )
        first = trainer.train(config)['losses']
        config = dataclasses.replace(config, train_steps=200, steps_per_loop=50)
        last = trainer.train(config)['losses']
        # The soft targets' own entropy (1.3-1.6 nats) bounds the
        # cross-entropy from below, so it cannot fall as far as L1 can.
        self.assertLess(last['ce'], 0.5 * first['ce'], (first, last))
        self.assertLess(last['l1'], 0.6 * first['l1'], (first, last))


def _mean_chroma(ab_list) -> float:
    return float(
        np.mean([np.hypot(ab[..., 0], ab[..., 1]).mean() for ab in ab_list])
    )


class ColorBinsInferenceTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        root = tf.compat.v1.test.get_temp_dir()
        cls.model_dir = os.path.join(root, 'bins_model')
        cls.generator = utils.make_model_dir(
            cls.model_dir, model_config=_BINS_MODEL
        )
        cls.l_channel = tf.random.stateless_uniform(
            [1, 64, 48, 1], (5, 6), 0, 100
        )

    def test_temperature_overrides_the_recorded_one(self):
        chromas = {}
        for temperature in (None, 0.1, 1.0):
            colorizer = colorize_lib.load_colorizer(
                self.model_dir, render_size=64, temperature=temperature
            )
            chromas[temperature] = _mean_chroma(
                colorizer.predict_ab([self.l_channel])
            )
        # The recorded temperature is _BINS_MODEL's 0.5; a random network's
        # bin probabilities are near uniform, so their mean is near gray
        # and sharper decoding is more colourful.
        self.assertGreater(chromas[0.1], chromas[None])
        self.assertGreater(chromas[None], chromas[1.0])
        bundle = bundled.save(
            self.generator,
            _BINS_MODEL,
            os.path.join(self.get_temp_dir(), 'bundle'),
            render_size=64,
        )
        for temperature in (None, 0.1):
            colorizer = colorize_lib.load_colorizer(
                bundle, temperature=temperature
            )
            self.assertAllClose(
                _mean_chroma(colorizer.predict_ab([self.l_channel])),
                chromas[temperature],
                rtol=0.02,
            )

    def test_prior_strength_weights_rare_colours_up(self):
        # A prior that calls the gray bin common and everything else rare:
        # dividing it out moves probability off gray, so colour rises.
        centres = color_bins.bin_centres()
        log_prior = np.where(
            np.all(centres == 0, axis=1),
            np.log(0.5),
            np.log(0.5 / (color_bins.NUM_BINS - 1)),
        )
        model_dir = os.path.join(self.get_temp_dir(), 'with_prior')
        utils.make_model_dir(model_dir, model_config=_BINS_MODEL)
        files.write_json_atomically(
            models.loading.prior_path(model_dir),
            {'log_prior': log_prior.tolist()},
        )
        chromas = [
            _mean_chroma(
                colorize_lib.load_colorizer(
                    model_dir, render_size=64, prior_strength=tau
                ).predict_ab([self.l_channel])
            )
            for tau in (0.0, 1.0)
        ]
        self.assertGreater(chromas[1], chromas[0])
        with self.assertRaisesRegex(errors.UsageError, 'prior'):
            colorize_lib.load_colorizer(self.model_dir, prior_strength=1.0)

    def test_decoding_settings_need_a_colour_bins_model(self):
        # And no export: export_test checks that on the export it makes.
        regression = os.path.join(self.get_temp_dir(), 'regression')
        utils.make_model_dir(regression)
        with self.assertRaisesRegex(errors.UsageError, 'colour-bins'):
            colorize_lib.load_colorizer(regression, temperature=0.5)
        with self.assertRaisesRegex(errors.UsageError, 'prior_strength'):
            colorize_lib.load_colorizer(regression, prior_strength=0.5)

    @pytest.mark.slow  # Export and TFLite conversion; export_test has both.
    def test_saved_model_and_tflite_serve_what_the_generator_computes(self):
        export_base = os.path.join(self.get_temp_dir(), 'served')
        module = signatures.ColorizationModule(self.generator, render_size=64)
        version_dir = export_lib.export_saved_model(module, export_base, 1)
        loaded = tf.saved_model.load(version_dir)
        l_normalized = self.l_channel[:, :, :32] / 50.0 - 1.0
        served = loaded.signatures['predict_ab'](
            **{signatures.L_CHANNEL: l_normalized}
        )[signatures.AB]
        self.assertAllClose(served, self.generator(l_normalized), atol=1e-5)
        # TFLite, at its fixed square working size: the softmax over the
        # bins and the annealed mean convert too.
        path = export_lib.export_tflite(
            module, os.path.join(self.get_temp_dir(), 'tflite'), 1
        )
        interpreter = tf.lite.Interpreter(model_path=path)
        interpreter.allocate_tensors()
        square = self.l_channel[:, :48, :48] / 50.0 - 1.0
        square = tf.image.resize(square, [64, 64])
        interpreter.set_tensor(
            interpreter.get_input_details()[0]['index'], square.numpy()
        )
        interpreter.invoke()
        ab = interpreter.get_tensor(
            interpreter.get_output_details()[0]['index']
        )
        self.assertAllClose(ab, self.generator(square), atol=1e-4)


if __name__ == '__main__':
    tf.test.main()
