"""The flags every tool that runs a trained model shares.

`colorize` and `evaluate` (and any later tool that loads a model) import
these instead of defining their own, so `--model`, `--stage`,
`--render_size` and `--batch_size` mean the same everywhere.
"""

from absl import flags

from chromagen_tf import configs
from chromagen_tf.inference import colorize_lib
from chromagen_tf.inference import colorizer

MODEL = flags.DEFINE_string(
    'model',
    None,
    'The model to run. Default: the bundled model (trained on about 450 '
    'open photos on a CPU; see MODEL_CARD.md). Also takes an export base '
    'directory (its newest version), one SavedModel version directory, a '
    'training --model_dir (its latest checkpoint of --stage) or a folder in '
    'the bundled format.',
)
STAGE = flags.DEFINE_enum(
    'stage',
    'gan',
    list(configs.STAGES),
    'For a training model_dir: which stage\'s checkpoint to use.',
)
RENDER_SIZE = flags.DEFINE_integer(
    'render_size',
    None,
    'Longer side of the working size the network runs at; larger gives '
    'finer colour and costs more. Default: the size the model was trained '
    'or exported for (recorded with the model).',
    lower_bound=32,
)
TEMPERATURE = flags.DEFINE_float(
    'temperature',
    None,
    'For a colour-bins model (--color_head=bins; bundled or a training '
    'model_dir): the annealed-mean temperature to decode at, from 1 (the '
    'mean of the predicted bin distribution) towards 0 (its most likely '
    'bin). Default: the one recorded with the model.',
    lower_bound=0.01,
)
PRIOR_STRENGTH = flags.DEFINE_float(
    'prior_strength',
    None,
    'For a colour-bins model: how much of its training set\'s prior over '
    'the bins to divide out before decoding, from 0 (none: calibrated, '
    'pale) to 1 (rare, saturated colours weighted up, roughly as in Zhang '
    'et al.\'s rebalancing). Default: the one recorded with the model.',
    lower_bound=0.0,
)
HINT_CORRECTION = flags.DEFINE_float(
    'hint_correction',
    None,
    'For a hint-branch model (bundled or a training model_dir): how much of '
    'the correction the branch learned (where each hint\'s colour should '
    'stop) to apply to its plain Gaussian spread of the hints, from 0 (the '
    'spread alone) to 1 (all of it, as trained); above 1 extrapolates. '
    'Default: the one recorded with the model (the bundled model\'s, 0.8, '
    'was chosen on the val split; MODEL_CARD.md).',
    lower_bound=0.0,
)
BATCH_SIZE = flags.DEFINE_integer(
    'batch_size',
    colorize_lib.DEFAULT_BATCH_SIZE,
    'Images per network call (and held in memory at once).',
    lower_bound=1,
)


def load_colorizer() -> colorizer.Colorizer:
    """The Colorizer these flags describe."""
    return colorize_lib.load_colorizer(
        MODEL.value,
        STAGE.value,
        RENDER_SIZE.value,
        TEMPERATURE.value,
        PRIOR_STRENGTH.value,
        HINT_CORRECTION.value,
    )
