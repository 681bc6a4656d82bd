"""The stages of the bundled-model recipe, as functions of its config.

`run_recipe` runs the stages a `RecipeConfig` names, each through the
project's own command-line tools (`run_tools`), so that the recipe does what
a user's commands would. `chromagen_tf.bundled.recipe` is its command line;
the evaluate stage is in `recipe_evaluate`.
"""

import dataclasses
import os
import time

import numpy as np
from PIL import Image

from chromagen_tf import bundled
from chromagen_tf import errors
from chromagen_tf import files
from chromagen_tf import models
from chromagen_tf.bundled import recipe_configs
from chromagen_tf.bundled import recipe_evaluate
from chromagen_tf.data import image_folders
from chromagen_tf.inference import run_tools

# Two photos count as the same picture when their 32x32 gray thumbnails
# correlate this well; distinct photos of similar scenes in the open photos
# reach 0.93 at most against the sample photos.
_DUPLICATE_CORRELATION = 0.98
# The recipe's config, written into the work dir at every run.
CONFIG_FILE = 'recipe_config.json'


def _thumbnail(path: str) -> np.ndarray:
    with Image.open(path) as image:
        gray = np.asarray(image.convert('L').resize((32, 32)), np.float32)
    return (gray - gray.mean()) / (gray.std() + 1e-6)


def _photos(folder: str) -> list[str]:
    return [
        name for name, _ in image_folders.find_images(folder, recursive=False)
    ]


def link_training_photos(
    photos_dir: str, held_out_dir: str, output_dir: str
) -> tuple[int, list[str]]:
    """Symlinks the photos that are not near-duplicates of held-out ones.

    Returns:
      (photos linked, names dropped as near-duplicates).
    """
    held_out = [
        _thumbnail(os.path.join(held_out_dir, name))
        for name in _photos(held_out_dir)
    ]
    os.makedirs(output_dir, exist_ok=True)
    linked, dropped = 0, []
    for name in _photos(photos_dir):
        source = os.path.abspath(os.path.join(photos_dir, name))
        try:
            thumbnail = _thumbnail(source)
        except OSError:
            thumbnail = None  # The converter reports unreadable files.
        if thumbnail is not None and any(
            float((thumbnail * other).mean()) >= _DUPLICATE_CORRELATION
            for other in held_out
        ):
            dropped.append(name)
            continue
        target = os.path.join(output_dir, name)
        if not os.path.lexists(target):
            os.symlink(source, target)
        linked += 1
    return linked, dropped


def init_from(config: recipe_configs.RecipeConfig) -> str:
    """The --init_from of the pretrain stage."""
    if config.init_from == recipe_configs.SHIPPED_MODEL:
        return bundled.BUNDLED_DIR
    return config.init_from


def train_commands(
    config: recipe_configs.RecipeConfig, paths: recipe_configs.RecipePaths
) -> dict[str, list[str]]:
    """The chromagen_tf.train command of each training stage."""
    common = [
        f'--data_dir={paths.data_dir}',
        f'--model_dir={paths.model_dir}',
        f'--generator={config.generator}',
        f'--discriminator_width={config.discriminator_width}',
        f'--image_size={config.image_size}',
        f'--global_batch_size={config.global_batch_size}',
        f'--seed={config.seed}',
        '--steps_per_loop=50',
        '--summary_every=50',
        '--eval_every=500',
        '--checkpoint_every=500',
        '--max_checkpoints=20',
        '--num_eval_images=8',
        f'--lr_decay_fraction={config.lr_decay_fraction}',
        f'--ema_decay={config.ema_decay}',
        f'--color_head={config.color_head}',
        f'--temperature={config.temperature}',
        f'--hints={config.hints}',
        f'--hint_branch={config.hint_branch}',
        f'--prior_strength={config.train_prior_strength}',
        f'--min_crop_scale={config.min_crop_scale}',
    ]
    pretrain = [
        'chromagen_tf.train',
        '--stage=pretrain',
        *common,
        f'--train_steps={config.pretrain_steps}',
        f'--lr_g={config.lr_pretrain}',
    ]
    if config.init_from:
        pretrain.append(f'--init_from={init_from(config)}')
    gan = [
        'chromagen_tf.train',
        '--stage=gan',
        *common,
        f'--train_steps={config.gan_steps}',
        f'--lambda_l1={config.lambda_l1}',
        f'--lambda_ce={config.lambda_ce}',
    ]
    return {'pretrain': pretrain, 'gan': gan}


def blend_generators(model_dir: str, gan_weight: float, average: bool = True):
    """The GAN generator's weights interpolated towards the L1-only one's.

    Weight-space ensembling of a model and its fine-tuned version (WiSE-FT,
    Wortsman et al. 2022): the GAN stage starts from the pretrained
    generator, so the two lie in one basin and their interpolation trades
    the GAN's colourfulness against the L1 model's accuracy smoothly.
    BatchNorm statistics are interpolated alike. gan_weight 0 reads the
    pretrained generator alone (there need be no GAN stage). average: use
    the stages' moving averages of the weights where they were kept.

    Returns:
      (generator, model_config, description of the sources).
    """
    if gan_weight <= 0.0:
        generator, model_config, path = models.restore_generator(
            model_dir, 'pretrain', average=average
        )
        return generator, model_config, f'pretrain/{os.path.basename(path)}'
    generator, model_config, gan_path = models.restore_generator(
        model_dir, 'gan', average=average
    )
    if gan_weight >= 1.0:
        return generator, model_config, f'gan/{os.path.basename(gan_path)}'
    pretrained, _, pretrain_path = models.restore_generator(
        model_dir, 'pretrain', average=average
    )
    for variable, start in zip(generator.weights, pretrained.weights):
        variable.assign(gan_weight * variable + (1.0 - gan_weight) * start)
    return (
        generator,
        model_config,
        (
            f'{gan_weight:g} x gan/{os.path.basename(gan_path)} + '
            f'{1 - gan_weight:g} x pretrain/{os.path.basename(pretrain_path)}'
        ),
    )


def bundle(
    config: recipe_configs.RecipeConfig,
    name: str,
    paths: recipe_configs.RecipePaths,
) -> str:
    """Writes the trained generator in the bundled format.

    model.json records the config (`training`) beside the architecture.
    """
    generator, model_config, sources = blend_generators(
        paths.model_dir, config.gan_weight, config.bundle_average
    )
    info = {
        'training': {
            'recipe': name,
            'data': 'open photos (MODEL_CARD.md)',
            # What the weights were trained with; which stages one command
            # ran is not part of it.
            **{
                name: value
                for name, value in dataclasses.asdict(config).items()
                if name != 'stages'
            },
        }
    }
    if model_config.color_head == 'bins':
        model_config = models.loading.with_decoding(
            model_config,
            config.bundle_temperature or config.temperature,
            config.bundle_prior_strength,
        )
        log_prior = models.loading.read_log_prior(paths.model_dir)
        if model_config.prior_strength and not log_prior:
            raise errors.UsageError(
                f'{paths.model_dir} keeps no bin_prior.json, so the bundle '
                'cannot decode with bundle_prior_strength > 0.'
            )
        info[bundled.BIN_PRIOR_KEY] = log_prior
    if model_config.hint_branch:
        model_config = models.loading.with_decoding(
            model_config, hint_correction=config.bundle_hint_correction
        )
    if config.ema_decay > 0:
        sources += (
            ' (moving averages)'
            if config.bundle_average
            else ' (trained weights, not their averages)'
        )
    info['checkpoint'] = sources
    source = init_from(config)
    if config.hint_branch and bundled.is_bundled_model(source):
        # The frozen automatic model ships as it came: its own weights file
        # and prior, so that without hints the bundle is that model.
        info[bundled.BIN_PRIOR_KEY] = bundled.read_info(source).get(
            bundled.BIN_PRIOR_KEY
        )
        info['checkpoint'] += f'; automatic generator: {source}'
    output = bundled.save(
        generator,
        model_config,
        paths.output_dir,
        render_size=config.render_size,
        info=info,
    )
    if config.hint_branch and bundled.is_bundled_model(source):
        bundled.reuse_weights_file(source, output)
    return output


def _run(*command: str) -> None:
    seconds = run_tools.run(*command)
    print(f'      done in {seconds:.0f} s', flush=True)


def run_recipe(
    config: recipe_configs.RecipeConfig,
    name: str,
    paths: recipe_configs.RecipePaths,
) -> str:
    """Runs the stages config.stages names; returns the bundle's folder.

    Args:
      config: What to train.
      name: The config's name, recorded in model.json.
      paths: Where to read and write.
    """
    if 'convert' in config.stages and not os.path.isdir(paths.photos_dir):
        raise errors.UsageError(f'{paths.photos_dir} is not a folder.')
    started = time.monotonic()
    os.makedirs(paths.work_dir, exist_ok=True)
    files.write_json_atomically(
        os.path.join(paths.work_dir, CONFIG_FILE),
        {'recipe': name, **dataclasses.asdict(config)},
    )
    commands = train_commands(config, paths)
    if 'convert' in config.stages:
        linked, dropped = link_training_photos(
            paths.photos_dir, paths.held_out_dir, paths.linked_photos
        )
        print(
            f'{linked} training photos; {len(dropped)} near-duplicates of '
            f'held-out photos left out: {dropped}',
            flush=True,
        )
        _run(
            'data_prep.make_tfrecords',
            f'--image_dir={paths.linked_photos}',
            f'--output_dir={paths.data_dir}',
            f'--image_size={config.stored_size}',
            '--val_fraction=0.1',
            f'--seed={config.seed}',
            '--num_shards=4',
        )
    for stage in ('pretrain', 'gan'):
        if stage in config.stages:
            _run(*commands[stage])
    if 'bundle' in config.stages:
        bundle(config, name, paths)
        print(f'Bundled model written to {paths.output_dir}', flush=True)
    if 'evaluate' in config.stages:
        recipe_evaluate.evaluate_stage(config, paths)
    print(
        f'Recipe stages {",".join(config.stages)} took '
        f'{(time.monotonic() - started) / 60:.1f} min.',
        flush=True,
    )
    return paths.output_dir
