r"""Trains a bundled model on the open photos, start to end, on a CPU.

Usage (the shipped model; the time it took is in MODEL_CARD.md): the
automatic colour-bins model, then the hint branch over it, which starts
from runs/bundled/bins/bundled_model:

  python -m chromagen_tf.bundled.recipe --config=bins --photos_dir=open_photos
  python -m chromagen_tf.bundled.recipe --config=hint_branch \
      --photos_dir=open_photos

--config names what to train (`recipe_configs`: bins, the default, the
automatic colour-bins model; hint_branch, the shipped model, a hint branch
trained over the frozen bins model; hints; regression), and
--override=FIELD=VALUE changes one field of it. The bundled model is
written to WORK_DIR/bundled_model; copy it into chromagen_tf/bundled to ship
it.

Every stage runs through the project's own tools, with fixed seeds:

  convert   the photos are listed, and any near-duplicate of a held-out
            sample photo is left out; data_prep.make_tfrecords writes Lab
            shards, 10% val (seeded);
  pretrain  chromagen_tf.train --stage=pretrain: for the colour-bins head,
            cross-entropy alone, which also writes the training set's
            prior over the bins;
  gan       chromagen_tf.train --stage=gan (adversarial + lambda * the
            pretrain loss), from the pretrained weights;
  bundle    the blend of the two generators the config names is written in
            the bundled format, with its decoding settings;
  evaluate  chromagen_tf.evaluate on the val photos and the sample photos,
            across render sizes and decoding settings; the results go into
            model.json (`recipe_evaluate`).

Each stage whose output exists is reused, so re-running the same command
after an interruption goes on where it stopped (training resumes from its
last checkpoint). How to rebuild the open photos from Debian is in
MODEL_CARD.md.
"""

from chromagen_tf import cli_logging  # noqa: F401, I001 (before TensorFlow)
from absl import app
from absl import flags

from chromagen_tf import errors
from chromagen_tf.bundled import recipe_configs
from chromagen_tf.bundled import recipe_lib

_CONFIG = flags.DEFINE_enum(
    'config',
    'bins',
    sorted(recipe_configs.CONFIGS),
    'Which model to train: a config of chromagen_tf.bundled.recipe_configs.',
)
_OVERRIDE = flags.DEFINE_multi_string(
    'override',
    [],
    'FIELD=VALUE: changes one field of the config (tuples '
    'take comma-separated values). Repeat for more fields.',
)
_STAGES = flags.DEFINE_list(
    'stages',
    None,
    'Which stages to run, in order. Default: the config\'s '
    f'(all of {",".join(recipe_configs.STAGES)} that it trains).',
)
_PHOTOS_DIR = flags.DEFINE_string(
    'photos_dir', None, 'Folder of training photos (the open photos set).'
)
_HELD_OUT_DIR = flags.DEFINE_string(
    'held_out_dir',
    None,
    'Photos that must stay out of training: '
    'near-duplicates of them in --photos_dir are dropped, and the evaluate '
    'stage measures on them. Default: the sample photos.',
)
_WORK_DIR = flags.DEFINE_string(
    'work_dir',
    None,
    'Shards, checkpoints, reports and TensorBoard logs. '
    'Default: runs/bundled/CONFIG.',
)
_OUTPUT_DIR = flags.DEFINE_string(
    'output_dir',
    None,
    'Where the bundled model (model.json, '
    'generator.npz) is written. Default: WORK_DIR/bundled_model.',
)

flags.mark_flags_as_required(['photos_dir'])


def config_from_flags() -> recipe_configs.RecipeConfig:
    """The chosen config with the flags' changes."""
    config = recipe_configs.with_overrides(
        recipe_configs.get_config(_CONFIG.value), _OVERRIDE.value
    )
    if _STAGES.value is not None:
        config = recipe_configs.with_overrides(
            config, ['stages=' + ','.join(_STAGES.value)]
        )
    return config


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    try:
        paths = recipe_configs.recipe_paths(
            _CONFIG.value,
            _PHOTOS_DIR.value,
            _HELD_OUT_DIR.value,
            _WORK_DIR.value,
            _OUTPUT_DIR.value,
        )
        recipe_lib.run_recipe(config_from_flags(), _CONFIG.value, paths)
    except errors.ChromaGenError as error:
        errors.fail('recipe', error)
    except OSError as error:  # Linking photos, reading model.json.
        errors.fail('recipe', error, errors.RUNTIME_EXIT_CODE)


if __name__ == '__main__':
    app.run(main)
