"""Tests of the two training stages on tiny models and real photos."""

import dataclasses
import json
import os
import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from chromagen_tf import configs
from chromagen_tf import errors
from chromagen_tf.data import records
from chromagen_tf.training import distribute
from chromagen_tf.training import state
from chromagen_tf.training import trainer
from tests import shards
from tests import utils

tiny_config = utils.tiny_config


class TrainerGlobalStateTest(tf.test.TestCase):
    """Building a Trainer leaves the process's Keras and random state alone."""

    def _trainer(self, name, seed, precision='float32'):
        config = tiny_config(
            '',
            os.path.join(self.get_temp_dir(), name),
            seed=seed,
            mixed_precision=precision,
        )
        strategy, policy = distribute.setup('one_device', precision)
        built = state.Trainer(config, strategy, policy)
        self.addCleanup(built.close)
        return built

    def test_leaves_the_policy_and_the_random_state_as_they_were(self):
        policy = keras.config.dtype_policy().name
        python_state = random.getstate()
        numpy_state = np.random.get_state()
        tf_global_seed = tf.compat.v1.get_seed(None)[0]

        built = self._trainer('bfloat16', seed=3, precision='bfloat16')

        # The networks were built under the stage's policy...
        self.assertIn(
            'mixed_bfloat16',
            {
                layer.dtype_policy.name
                for layer in built.networks.generator.layers
            },
        )
        # ...which did not outlive the build, nor did the seed.
        self.assertEqual(keras.config.dtype_policy().name, policy)
        self.assertEqual(random.getstate(), python_state)
        numpy_after = np.random.get_state()
        self.assertEqual(numpy_after[0], numpy_state[0])
        self.assertAllEqual(numpy_after[1], numpy_state[1])
        self.assertEqual(numpy_after[2:], numpy_state[2:])
        self.assertEqual(tf.compat.v1.get_seed(None)[0], tf_global_seed)

    def test_the_same_seed_gives_the_same_initial_weights(self):
        # What multi-worker training relies on: every worker builds its own
        # networks, and they must start from identical variables.
        first, again, other = (
            [
                w.numpy()
                for w in self._trainer(name, seed).networks.generator.weights
            ]
            for name, seed in (('first', 5), ('again', 5), ('other', 6))
        )
        for a, b in zip(first, again, strict=True):
            self.assertAllEqual(a, b)
        self.assertFalse(
            all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
        )


class TrainStagesTest(tf.test.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.data_dir = shards.write_shards(
            os.path.join(tf.compat.v1.test.get_temp_dir(), 'train_data'),
            image_size=48,
            num_train=8,
            num_val=4,
        )

    def _check_stage_outputs(self, model_dir, stage, scalars):
        stage_dir = os.path.join(model_dir, stage)
        self.assertEqual(
            tf.train.latest_checkpoint(stage_dir),
            os.path.join(stage_dir, 'ckpt-2'),
        )
        train_tags = utils.event_tags(os.path.join(stage_dir, 'train'))
        for tag in scalars:
            self.assertEqual(train_tags.get(tag), 'scalars', tag)
        eval_tags = utils.event_tags(os.path.join(stage_dir, 'eval'))
        self.assertEqual(eval_tags.get('gray_prediction_truth'), 'images')
        for name in ('l1', 'ab_mae', 'psnr', 'colorfulness', 'colorfulness_gt'):
            self.assertEqual(eval_tags.get(f'metrics/{name}'), 'scalars')
        self.assertTrue(os.path.exists(os.path.join(stage_dir, 'config.json')))

    def _run_both_stages(self, model_dir, pretrain_precision, gan_precision):
        result = trainer.train(
            tiny_config(
                self.data_dir, model_dir, mixed_precision=pretrain_precision
            )
        )
        self.assertEqual(result['step'], 2)
        self.assertTrue(np.isfinite(result['losses']['l1']))
        self._check_stage_outputs(
            model_dir,
            'pretrain',
            [
                'losses/l1',
                'throughput/images_per_second',
                'learning_rate/generator',
            ],
        )
        result = trainer.train(
            tiny_config(
                self.data_dir,
                model_dir,
                stage='gan',
                mixed_precision=gan_precision,
            )
        )
        self.assertEqual(result['step'], 2)
        self.assertIn('pretrain/ckpt-2', result['start'])
        gan_scalars = [
            f'losses/{name}'
            for name in (
                'd_loss',
                'g_loss',
                'g_adversarial',
                'l1',
                'd_real',
                'd_fake',
            )
        ]
        gan_scalars += [
            'learning_rate/generator',
            'learning_rate/discriminator',
        ]
        if gan_precision == 'float16':
            gan_scalars += ['loss_scale/generator', 'loss_scale/discriminator']
        self._check_stage_outputs(model_dir, 'gan', gan_scalars)
        for value in result['losses'].values():
            self.assertTrue(np.isfinite(value))

    @pytest.mark.slow  # Both stages, with evaluation.
    def test_float32_pretrain_then_float16_gan(self):
        self._run_both_stages(
            os.path.join(self.get_temp_dir(), 'run_a'), 'float32', 'float16'
        )

    @pytest.mark.slow  # Both stages, with evaluation.
    def test_bfloat16_pretrain_then_float32_gan(self):
        self._run_both_stages(
            os.path.join(self.get_temp_dir(), 'run_b'), 'bfloat16', 'float32'
        )

    def test_checkpoints_at_every_multiple_below_steps_per_loop(self):
        model_dir = os.path.join(self.get_temp_dir(), 'every_three')
        trainer.train(
            tiny_config(
                self.data_dir,
                model_dir,
                train_steps=10,
                steps_per_loop=50,
                checkpoint_every=3,
                max_checkpoints=10,
                eval_every=1000,
                summary_every=1000,
            )
        )
        state = tf.train.get_checkpoint_state(
            os.path.join(model_dir, 'pretrain')
        )
        steps = [
            int(path.rsplit('-', 1)[1])
            for path in state.all_model_checkpoint_paths
        ]
        self.assertEqual(steps, [3, 6, 9, 10])

    @pytest.mark.slow  # Three training runs.
    def test_resuming_a_run_from_before_a_field_existed(self):
        # A stage config written before min_crop_scale existed resumes with
        # its default, and refuses another value naming the field.
        model_dir = os.path.join(self.get_temp_dir(), 'older_config')
        trainer.train(tiny_config(self.data_dir, model_dir, train_steps=1))
        path = os.path.join(model_dir, 'pretrain', 'config.json')
        with open(path) as f:
            saved = json.load(f)
        del saved['min_crop_scale']
        with open(path, 'w') as f:
            json.dump(saved, f)
        result = trainer.train(tiny_config(self.data_dir, model_dir))
        self.assertEqual(result['step'], 2)
        with open(path) as f:
            saved = json.load(f)
        del saved['min_crop_scale']
        with open(path, 'w') as f:
            json.dump(saved, f)
        with self.assertRaisesRegex(
            configs.ConfigMismatchError, 'min_crop_scale=None.*0.5'
        ):
            trainer.train(
                tiny_config(
                    self.data_dir, model_dir, train_steps=3, min_crop_scale=0.5
                )
            )

    @pytest.mark.slow  # 150 steps.
    def test_pretraining_overfits_four_images(self):
        model_dir = os.path.join(self.get_temp_dir(), 'overfit')
        four = shards.write_shards(
            os.path.join(self.get_temp_dir(), 'four'),
            image_size=32,
            num_train=4,
            num_val=1,
            train_shards=1,
        )
        config = tiny_config(
            four,
            model_dir,
            train_steps=1,
            lr_g=3e-3,
            augment=False,
            eval_every=1000,
            summary_every=1000,
            checkpoint_every=1000,
        )
        first = trainer.train(config)['losses']['l1']
        config = dataclasses.replace(config, train_steps=150, steps_per_loop=25)
        last = trainer.train(config)['losses']['l1']
        self.assertLess(last, 0.2 * first, (first, last))

    @pytest.mark.slow  # Three training runs.
    def test_resume_continues_and_matches_an_uninterrupted_run(self):
        four = shards.write_shards(
            os.path.join(self.get_temp_dir(), 'resume_data'),
            image_size=32,
            num_train=4,
            num_val=1,
            train_shards=1,
        )
        # One file, no shuffle, no augmentation, batch = the whole split:
        # the input order is deterministic, so results must agree.
        common = dict(
            augment=False,
            shuffle_buffer=1,
            eval_every=1000,
            deterministic_input=True,
        )
        resumed_dir = os.path.join(self.get_temp_dir(), 'resumed')
        trainer.train(tiny_config(four, resumed_dir, train_steps=2, **common))
        saved = tf.train.load_checkpoint(
            os.path.join(resumed_dir, 'pretrain', 'ckpt-2')
        )

        strategy = tf.distribute.OneDeviceStrategy('/cpu:0')
        config = tiny_config(four, resumed_dir, train_steps=4, **common)
        restored = state.Trainer(config, strategy, 'float32')
        self.assertIn('resumed', restored.restore_or_initialise())
        self.assertEqual(int(restored.global_step), 2)
        # Write the restored state back out and compare it key by key with
        # what was saved: the optimizer's slots must have come back.
        rewritten = tf.train.load_checkpoint(
            restored.checkpoint.write(
                os.path.join(self.get_temp_dir(), 'rewritten', 'ckpt')
            )
        )
        slot_keys = [
            key
            for key in saved.get_variable_to_shape_map()
            if key.startswith('generator_optimizer/')
        ]
        self.assertGreater(len(slot_keys), 20)
        for key in slot_keys:
            self.assertAllEqual(
                rewritten.get_tensor(key), saved.get_tensor(key), msg=key
            )
        restored.close()

        result = trainer.train(config)
        self.assertEqual(result['start_step'], 2)
        self.assertEqual(result['step'], 4)
        straight_dir = os.path.join(self.get_temp_dir(), 'straight')
        trainer.train(tiny_config(four, straight_dir, train_steps=4, **common))
        resumed = tf.train.load_checkpoint(
            os.path.join(resumed_dir, 'pretrain', 'ckpt-4')
        )
        straight = tf.train.load_checkpoint(
            os.path.join(straight_dir, 'pretrain', 'ckpt-4')
        )
        compared = 0
        for key in straight.get_variable_to_shape_map():
            if key.startswith('generator/'):
                self.assertAllClose(
                    resumed.get_tensor(key),
                    straight.get_tensor(key),
                    atol=1e-6,
                    rtol=1e-5,
                    msg=key,
                )
                compared += 1
        self.assertGreater(compared, 20)

    @pytest.mark.slow  # Two training runs.
    def test_lr_decay_falls_linearly_to_zero_and_is_restored(self):
        model_dir = os.path.join(self.get_temp_dir(), 'decay')
        config = tiny_config(
            self.data_dir,
            model_dir,
            train_steps=4,
            lr_decay_fraction=0.5,
            lr_g=1e-3,
        )
        trainer.train(config)
        train_dir = os.path.join(model_dir, 'pretrain', 'train')
        # Logged after each step: constant for the first half, then down to
        # zero at the last step.
        logged = [
            utils.scalars_at(train_dir, step)['learning_rate/generator']
            for step in (1, 2, 3, 4)
        ]
        self.assertAllClose(logged, [1e-3, 1e-3, 5e-4, 0.0])
        # A resumed stage takes the schedule's position from the restored
        # optimizer, not from a fresh count.
        restored = state.Trainer(
            config, tf.distribute.OneDeviceStrategy('/cpu:0'), 'float32', 4
        )
        restored.restore_or_initialise()
        self.assertEqual(
            float(restored.networks.generator_optimizer.learning_rate), 0.0
        )
        restored.close()

    def test_lr_decay_fraction_out_of_range_is_a_clear_error(self):
        with self.assertRaisesRegex(errors.UsageError, 'lr_decay_fraction'):
            tiny_config(self.data_dir, 'unused', lr_decay_fraction=1.5)

    def test_gan_without_pretrain_checkpoint_is_a_clear_error(self):
        config = tiny_config(
            self.data_dir,
            os.path.join(self.get_temp_dir(), 'no_pre'),
            stage='gan',
        )
        with self.assertRaisesRegex(
            errors.TrainingError, 'Run pretraining first'
        ):
            trainer.train(config)

    def test_incompatible_resume_names_the_field(self):
        model_dir = os.path.join(self.get_temp_dir(), 'mismatch')
        configs.check_and_write_model_config(
            model_dir, configs.ModelConfig(width=16, discriminator_width=8)
        )
        with self.assertRaisesRegex(
            configs.ConfigMismatchError, 'width=16.*width=8'
        ):
            trainer.train(tiny_config(self.data_dir, model_dir))
        stage = tiny_config(self.data_dir, model_dir)
        configs.check_and_write_stage_config(stage)
        with self.assertRaisesRegex(configs.ConfigMismatchError, 'lr_g'):
            configs.check_and_write_stage_config(
                dataclasses.replace(stage, lr_g=1.0)
            )
        # Schedule fields may change on resume.
        configs.check_and_write_stage_config(
            dataclasses.replace(stage, train_steps=99)
        )

    @pytest.mark.slow  # Two training runs.
    def test_nan_input_stops_and_keeps_the_last_good_checkpoint(self):
        model_dir = os.path.join(self.get_temp_dir(), 'nan')
        config = tiny_config(self.data_dir, model_dir, eval_every=1000)
        trainer.train(config)
        stage_dir = os.path.join(model_dir, 'pretrain')
        good = tf.train.load_checkpoint(os.path.join(stage_dir, 'ckpt-2'))

        def nan_dataset(input_context):
            del input_context
            l_channel = np.zeros([4, 32, 32, 1], np.float32)
            l_channel[1, 3, 3, 0] = np.nan
            ab = np.zeros([4, 32, 32, 2], np.float32)
            return tf.data.Dataset.from_tensors((l_channel, ab)).repeat()

        with self.assertRaisesRegex(
            errors.NonFiniteLossError, 'at step 3: l1=nan'
        ):
            trainer.train(
                dataclasses.replace(config, train_steps=4),
                dataset_fn=nan_dataset,
            )
        self.assertEqual(
            tf.train.latest_checkpoint(stage_dir),
            os.path.join(stage_dir, 'ckpt-2'),
        )
        after = tf.train.load_checkpoint(os.path.join(stage_dir, 'ckpt-2'))
        for key in good.get_variable_to_shape_map():
            self.assertAllEqual(good.get_tensor(key), after.get_tensor(key))

    # The trainer's other read of the records, the colour-bins prior, is
    # checked in color_bins_test without tracing a step.
    @pytest.mark.slow  # Builds and traces a training step.
    def test_corrupt_shard_is_named(self):
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
        config = tiny_config(
            directory, os.path.join(self.get_temp_dir(), 'corrupt_run')
        )
        with self.assertRaisesRegex(records.CorruptRecordError, path):
            trainer.train(config)


if __name__ == '__main__':
    tf.test.main()
