"""The bundled-model recipe: its configs, overrides, paths and stages."""

import dataclasses
import os
import shutil
import subprocess
import sys

import pytest

from chromagen_tf import bundled
from chromagen_tf import errors
from chromagen_tf.bundled import recipe_configs
from chromagen_tf.bundled import recipe_evaluate
from chromagen_tf.bundled import recipe_lib
from tests import conftest


def _flags(command):
    """{flag: value} of a `python -m MODULE --flag=value ...` command."""
    return dict(
        argument[2:].split('=', 1)
        for argument in command[1:]
        if argument.startswith('--')
    )


def test_shipped_model_was_trained_with_its_config():
    # model.json records what the shipped weights were trained with; the
    # config of the same name must still say the same.
    training = bundled.read_info()['training']
    config = recipe_configs.get_config(training.get('recipe', 'bins'))
    values = dataclasses.asdict(config)
    compared = [name for name in training if name in values]
    assert len(compared) >= 10, compared
    for name in compared:
        recorded = training[name]
        if isinstance(recorded, list):
            recorded = tuple(recorded)
        assert values[name] == recorded, name


def _pretrain_flags(name):
    """A recipe config and the flags of its pretraining command."""
    config = recipe_configs.get_config(name)
    paths = recipe_configs.recipe_paths(name, 'photos')
    return config, _flags(recipe_lib.train_commands(config, paths)['pretrain'])


def test_hints_config_fine_tunes_the_bins_model():
    config, pretrain = _pretrain_flags('hints')
    assert config.stages == ('convert', 'pretrain', 'bundle', 'evaluate')
    expected = {
        'stage': 'pretrain',
        'hints': 'local',
        'init_from': os.path.join('runs', 'bundled', 'bins', 'bundled_model'),
        'train_steps': '3000',
        'lr_g': '0.0001',
        'ema_decay': '0.999',
        'min_crop_scale': '0.4',
        'image_size': '128',
        'global_batch_size': '16',
        'generator': 'resnet18_unet_lite',
        'color_head': 'bins',
        'discriminator_width': '32',
        'seed': '0',
    }
    assert {name: pretrain.get(name) for name in expected} == expected


def test_hint_branch_config_trains_over_the_bins_bundle_as_it_decodes():
    config, pretrain = _pretrain_flags('hint_branch')
    expected = {
        'hints': 'local',
        'hint_branch': 'True',
        'init_from': os.path.join('runs', 'bundled', 'bins', 'bundled_model'),
        'prior_strength': str(config.bundle_prior_strength),
        'temperature': '0.38',
        'image_size': '256',
        'train_steps': '4000',
    }
    assert {name: pretrain.get(name) for name in expected} == expected
    assert config.gan_steps == 0
    with pytest.raises(errors.UsageError, match='hint branch'):
        dataclasses.replace(config, train_prior_strength=0.0)
    # The shipped bundle decodes its branch at the config's scale.
    shipped = bundled.read_info()['model']
    assert shipped['hint_correction'] == config.bundle_hint_correction
    with pytest.raises(errors.UsageError, match='needs hint_branch'):
        dataclasses.replace(
            recipe_configs.get_config('bins'), bundle_hint_correction=0.5
        )


def test_regression_config_differs_from_the_default_where_it_says():
    default = dataclasses.asdict(recipe_configs.get_config('bins'))
    regression = dataclasses.asdict(recipe_configs.get_config('regression'))
    changed = {
        name: value
        for name, value in regression.items()
        if default[name] != value
    }
    assert changed == {
        'color_head': 'regression',
        'gan_weight': 0.5,
        'ema_decay': 0.0,
        'bundle_prior_strength': 0.0,
    }


def test_overrides_parse_each_field_type():
    config = recipe_configs.with_overrides(
        recipe_configs.get_config('bins'),
        [
            'pretrain_steps=10',
            'lr_pretrain=1e-3',
            'bundle_average=false',
            'bundle_temperature=0.5',
            'curve_sizes=64, 96',
            'stages=convert,pretrain',
            'init_from=some/folder',
        ],
    )
    assert (
        config.pretrain_steps,
        config.lr_pretrain,
        config.bundle_average,
        config.bundle_temperature,
        config.curve_sizes,
        config.stages,
        config.init_from,
    ) == (
        10,
        1e-3,
        False,
        0.5,
        (64, 96),
        ('convert', 'pretrain'),
        'some/folder',
    )
    assert (
        recipe_configs.with_overrides(
            config, ['bundle_temperature=none']
        ).bundle_temperature
        is None
    )


@pytest.mark.parametrize(
    'override, message',
    [
        ('pretrain_step=10', 'FIELD one of'),
        ('pretrain_steps', 'expected FIELD=VALUE'),
        ('pretrain_steps=ten', 'pretrain_steps'),
        ('bundle_average=maybe', 'bundle_average'),
        ('gan_weight=1.5', 'gan_weight must be in'),
        ('stages=convert,train', 'stages must be among'),
    ],
)
def test_bad_override_is_one_clear_error(override, message):
    with pytest.raises(errors.UsageError, match=message):
        recipe_configs.with_overrides(
            recipe_configs.get_config('bins'), [override]
        )


def test_a_config_without_gan_stage_refuses_to_blend_or_run_it():
    hints = recipe_configs.get_config('hints')
    for override in ('gan_weight=0.5', 'stages=pretrain,gan'):
        with pytest.raises(errors.UsageError, match='gan'):
            recipe_configs.with_overrides(hints, [override])


def test_unknown_config_is_one_clear_error():
    with pytest.raises(errors.UsageError, match='bins'):
        recipe_configs.get_config('bigger')


def test_default_paths_stay_out_of_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    paths = recipe_configs.recipe_paths('bins', 'photos')
    assert paths.work_dir == str(tmp_path / 'runs' / 'bundled' / 'bins')
    assert paths.output_dir == os.path.join(paths.work_dir, 'bundled_model')
    assert paths.held_out_dir == str(conftest.SAMPLE_PHOTOS)
    assert paths.photos_dir == str(tmp_path / 'photos')


def _copy_photos(names, folder):
    folder.mkdir()
    for name in names:
        shutil.copy(conftest.SAMPLE_PHOTOS / name, folder / name)
    return folder


@pytest.mark.slow  # Seven processes that import TensorFlow.
def test_tiny_recipe_trains_bundles_and_records_metrics(tmp_path):
    photos = sorted(path.name for path in conftest.SAMPLE_PHOTOS.glob('*.jpg'))
    held_out = _copy_photos(photos[:3], tmp_path / 'held_out')
    # A held-out photo among the training photos is dropped.
    training = _copy_photos(photos[:1] + photos[3:], tmp_path / 'photos')
    work = tmp_path / 'work'
    overrides = [
        'stored_size=48',
        'image_size=32',
        'global_batch_size=2',
        'pretrain_steps=2',
        'gan_steps=0',
        'render_size=64',
        'curve_sizes=64',
        'decoding_curve=0.38:0',
        'stages=convert,pretrain,bundle,evaluate',
    ]
    completed = subprocess.run(
        [
            sys.executable,
            '-m',
            'chromagen_tf.bundled.recipe',
            f'--photos_dir={training}',
            f'--held_out_dir={held_out}',
            f'--work_dir={work}',
            *[f'--override={override}' for override in overrides],
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"left out: ['{photos[0]}']" in completed.stdout
    output = work / 'bundled_model'
    assert bundled.is_bundled_model(str(output))
    info = bundled.read_info(str(output))
    assert info['training']['recipe'] == 'bins'
    assert info['training']['pretrain_steps'] == 2
    assert info['checkpoint'] == 'pretrain/ckpt-2 (moving averages)'
    assert info['metrics']['sample_photos']['num_images'] == 3
    assert 'val_gan' not in info['metrics']
    assert set(info['metrics']['decoding_curve']) == {'0.38:0'}
    assert sorted(info['check']['per_photo']) == sorted(
        set(photos[:3]) & set(recipe_evaluate.CHECK_PHOTOS)
    )
    bundled.load_generator(str(output))
