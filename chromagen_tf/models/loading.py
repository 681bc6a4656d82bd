"""A generator from its config: built, restored from a checkpoint, or copied.

Everything that colorizes (inference, serving, the bundled format) builds
its generator here, from a `configs.ModelConfig`, and never needs the
training code. A training directory's layout is `configs.stage_dir`'s:

  MODEL_DIR/config.json              the ModelConfig (architecture)
  MODEL_DIR/bin_prior.json           a colour-bins model's prior over the bins
  MODEL_DIR/<stage>/ckpt-<step>.*    tf.train.Checkpoint files

A checkpoint holds `generator` and, for a stage trained with --ema_decay,
`ema_generator`, the moving average of its weights, which is what a restored
generator gets unless asked otherwise.
"""

import dataclasses
from typing import Optional

from absl import logging
import keras
import tensorflow as tf

from chromagen_tf import configs
from chromagen_tf import errors
from chromagen_tf import files
from chromagen_tf.models import color_bins
from chromagen_tf.models import generators

EMA_GENERATOR = 'ema_generator'
PRIOR_FILE = 'bin_prior.json'


def prior_path(model_dir: str) -> str:
    """MODEL_DIR/bin_prior.json."""
    return files.join(model_dir, PRIOR_FILE)


def read_log_prior(model_dir: str) -> Optional[list[float]]:
    """The colour-bin log prior a training directory keeps, or None.

    Raises:
      errors.ChromaGenError: the file holds no prior of Q values.
    """
    path = prior_path(model_dir)
    values = files.read_json(path)
    if values is None:
        return None
    log_prior = values.get('log_prior') if isinstance(values, dict) else None
    if not isinstance(log_prior, list) or len(log_prior) != color_bins.NUM_BINS:
        raise errors.ChromaGenError(
            f'{path} holds no log_prior of {color_bins.NUM_BINS} values; '
            'delete it, and training estimates it again.'
        )
    return [float(value) for value in log_prior]


def build_from_config(
    model: configs.ModelConfig, log_prior=None, **kwargs
) -> keras.Model:
    """Builds the generator a ModelConfig describes (random weights).

    log_prior: a colour-bins model's prior over the bins, which its decoder
    needs when prior_strength > 0. kwargs go to `build_generator`.

    Raises:
      errors.UsageError: prior_strength > 0 without a prior.
    """
    if model.color_head == 'bins':
        if model.prior_strength and log_prior is None:
            raise errors.UsageError(
                f'prior_strength={model.prior_strength} needs the training '
                "set's colour-bin prior, which this model does not keep "
                '(bin_prior.json of a training directory, bin_log_prior of a '
                'bundled model.json); use --prior_strength=0.'
            )
        kwargs.update(
            color_head='bins',
            temperature=model.temperature,
            log_prior=log_prior,
            prior_strength=model.prior_strength,
        )
    return generators.build_generator(
        model.generator,
        width=model.width,
        hints=model.hints,
        hint_branch=model.hint_branch,
        hint_correction=model.hint_correction,
        **kwargs,
    )


def generator_key(checkpoint_path: str) -> str:
    """The key of the generator to restore: 'ema_generator' if kept."""
    names = [name for name, _ in tf.train.list_variables(checkpoint_path)]
    if any(name.startswith(EMA_GENERATOR + '/') for name in names):
        return EMA_GENERATOR
    return 'generator'


def read_generator(
    generator: keras.Model, checkpoint_path: str, average: bool = True
) -> str:
    """Reads a checkpoint's generator (its EMA if kept) into `generator`.

    average=False reads the trained weights even where an average was kept.

    Returns:
      The checkpoint key read: 'generator' or 'ema_generator'.

    Raises:
      AssertionError: the checkpoint's generator has another architecture.
    """
    key = generator_key(checkpoint_path) if average else 'generator'
    status = tf.train.Checkpoint(**{key: generator}).read(checkpoint_path)
    status.expect_partial().assert_existing_objects_matched()
    return key


def latest_checkpoint(model_dir: str, stage: str) -> str:
    """The newest checkpoint prefix of a stage.

    Raises:
      errors.NotFoundError: the stage has none.
    """
    path = tf.train.latest_checkpoint(configs.stage_dir(model_dir, stage))
    if path is None:
        raise errors.NotFoundError(
            f'No {stage} checkpoint in {configs.stage_dir(model_dir, stage)}.'
            f' Train the {stage} stage first.'
        )
    return path


def restore_generator(
    model_dir: str,
    stage: str = 'gan',
    checkpoint_path: Optional[str] = None,
    average: bool = True,
    temperature: Optional[float] = None,
    prior_strength: Optional[float] = None,
    hint_correction: Optional[float] = None,
) -> tuple[keras.Model, configs.ModelConfig, str]:
    """Rebuilds a trained generator from a training directory.

    Only the generator is read, as its moving average if the stage kept
    one (--ema_decay): the discriminator and the optimizers are left out
    (`expect_partial`), and every generator variable must be found in the
    checkpoint (`assert_existing_objects_matched`).

    Args:
      model_dir: A training directory written by `chromagen_tf.train`.
      stage: Which stage's latest checkpoint to use, if checkpoint_path is
        not given.
      checkpoint_path: An explicit checkpoint prefix.
      average: Read the moving average of the weights if the checkpoint
        keeps one; False reads the trained weights themselves.
      temperature, prior_strength, hint_correction: Decode with these
        settings instead of its configured ones (`with_decoding`);
        the prior comes from MODEL_DIR/bin_prior.json.

    Returns:
      (generator, model_config, checkpoint_path).

    Raises:
      errors.NotFoundError: there is no config.json or no checkpoint.
    """
    trained_config = configs.read_model_config(model_dir)
    model_config = with_decoding(
        trained_config, temperature, prior_strength, hint_correction
    )
    if checkpoint_path is None:
        checkpoint_path = latest_checkpoint(model_dir, stage)
    log_prior = read_log_prior(model_dir)
    # A checkpoint matches variables by their place in the model, which a
    # correction scale's (weightless) layer shifts: read the model as it
    # trained, then copy its weights into the one asked for.
    trained = dataclasses.replace(
        model_config, hint_correction=trained_config.hint_correction
    )
    generator = build_from_config(trained, log_prior)
    read_generator(generator, checkpoint_path, average)
    if trained != model_config:
        scaled = build_from_config(model_config, log_prior)
        copy_weights_by_path(generator, scaled)
        generator = scaled
    return generator, model_config, checkpoint_path


def copy_weights_by_path(source: keras.Model, target: keras.Model) -> int:
    """Copies every weight of `source` into the weight of `target` that has
    the same path, e.g. a generator without hints into one with them.

    Every weight of `target` must be matched, except those of its hint
    layers (`hint_conv`, a hint branch's `hint_*`), which keep their
    start.

    Returns:
      The number of weights copied.

    Raises:
      ValueError: a weight of `target` outside the hint layers has no
        counterpart of the same shape in `source`.
    """
    values = {variable.path: variable for variable in source.weights}
    copied = 0
    for variable in target.weights:
        value = values.get(variable.path)
        if value is None and variable.path.startswith('hint_'):
            continue
        if value is None or tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f'{variable.path} {tuple(variable.shape)} has no counterpart '
                f'in {source.name}.'
            )
        variable.assign(tf.cast(value, variable.dtype))
        copied += 1
    logging.info(
        'Copied %d weights from %s into %s.', copied, source.name, target.name
    )
    return copied


def with_decoding(
    model: configs.ModelConfig,
    temperature: Optional[float] = None,
    prior_strength: Optional[float] = None,
    hint_correction: Optional[float] = None,
) -> configs.ModelConfig:
    """The model decoded with other settings, where given: a colour-bins
    model's temperature and prior strength, a hint branch's correction
    scale (`ModelConfig.hint_correction`).

    Raises:
      errors.UsageError: a setting for a model without colour bins, a
        temperature that is not positive or a negative prior_strength; a
        hint_correction for a model without a hint branch, or negative.
    """
    settings = {
        name: float(value)
        for name, value in (
            ('temperature', temperature),
            ('prior_strength', prior_strength),
        )
        if value is not None
    }
    if settings and model.color_head != 'bins':
        raise errors.UsageError(
            f'--{next(iter(settings))} needs a colour-bins model; this '
            f'{model.generator} predicts a*b* directly '
            '(color_head=regression).'
        )
    if hint_correction is not None:
        settings['hint_correction'] = float(hint_correction)
    if not settings:
        return model
    # ModelConfig checks each value; here they are flags.
    try:
        return dataclasses.replace(model, **settings)
    except errors.UsageError as error:
        raise errors.UsageError(f'--{error}') from None
