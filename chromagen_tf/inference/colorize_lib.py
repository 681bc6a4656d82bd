"""Colorizing photos with a trained model: the colorize tool's model side.

`load_colorizer` builds a `Colorizer` from any of the places a user may
point at:

  * nothing: the bundled model (`chromagen_tf/bundled`, MODEL_CARD.md), or
    any folder in its format;
  * an export base directory (`models/chromagen`): its newest version;
  * one SavedModel version directory (`models/chromagen/3`);
  * a training directory (`--model_dir` of the trainer): its latest
    checkpoint, restored with `models.restore_generator`.

The `Colorizer` (`colorizer.py`) colorizes at full resolution exactly as
the serving graph does. The colorize tool walks folders and writes outputs
with `colorize_folders`; the evaluation tool uses a `Colorizer` directly.
"""

import os
from typing import Optional

import tensorflow as tf

from chromagen_tf import bundled
from chromagen_tf import configs
from chromagen_tf import errors
from chromagen_tf import models
from chromagen_tf.inference.colorizer import Colorizer
from chromagen_tf.models import unet_lite
from chromagen_tf.serving import export_lib
from chromagen_tf.serving import full_resolution
from chromagen_tf.serving import signatures

# Images per network call, and held in memory at once, unless a tool's
# --batch_size says otherwise.
DEFAULT_BATCH_SIZE = 8


class ModelNotFoundError(errors.NotFoundError, ValueError):
    """--model points at nothing a model can be loaded from."""


_INPUT_SIGNATURE = [
    tf.TensorSpec([None, None, None, 1], tf.float32),
    tf.TensorSpec([None, None, None, 2], tf.float32),
    tf.TensorSpec([None, None, None, 1], tf.float32),
]


def _keras_colorizer(
    generator, render_size: int, size_multiple: int, description: str
) -> Colorizer:
    """A Colorizer over a Keras generator, with its hints and logits."""

    @tf.function(input_signature=_INPUT_SIGNATURE)
    def predict(l_normalized, hint_ab, hint_mask):
        inputs = models.generator_inputs(
            generator, l_normalized, hint_ab, hint_mask
        )
        return tf.cast(generator(inputs, training=False), tf.float32)

    logits_fn = None
    logits_model = unet_lite.logits_and_ab_model(generator)
    if logits_model is not None:

        @tf.function(input_signature=_INPUT_SIGNATURE)
        def logits_fn(l_normalized, hint_ab, hint_mask):
            inputs = models.generator_inputs(
                generator, l_normalized, hint_ab, hint_mask
            )
            return logits_model(inputs, training=False)[0]

    automatic_fn = None
    automatic = models.automatic_generator(generator)
    if models.takes_hints(generator) and automatic is not None:

        @tf.function(input_signature=_INPUT_SIGNATURE[:1])
        def automatic_fn(l_normalized):
            return tf.cast(automatic(l_normalized, training=False), tf.float32)

    return Colorizer(
        predict,
        render_size,
        size_multiple,
        description,
        takes_hints=models.takes_hints(generator),
        logits_fn=logits_fn,
        automatic_fn=automatic_fn,
    )


def load_generator(
    model: str,
    stage: str = 'gan',
    checkpoint_path: Optional[str] = None,
    temperature: Optional[float] = None,
    prior_strength: Optional[float] = None,
    hint_correction: Optional[float] = None,
) -> tuple[object, configs.ModelConfig, int, str]:
    """The Keras generator of a bundled model or, if not, a training dir.

    Args:
      model: A bundled-model folder or a training directory.
      stage, checkpoint_path: For a training directory: which stage's latest
        checkpoint, or which checkpoint, to read.
      temperature, prior_strength, hint_correction: A colour-bins model's
        decoding settings and a hint branch's correction scale
        (`ModelConfig.hint_correction`); default: the model's own.

    Returns:
      (generator, model_config, render_size, weights): render_size is the
      working size recorded with the bundle or trained at, weights the file
      or checkpoint read.

    Raises:
      bundled.BundledModelError, errors.NotFoundError: nothing to load.
    """
    if bundled.is_bundled_model(model):
        generator, model_config, info = bundled.load_generator(
            model, temperature, prior_strength, hint_correction
        )
        return (
            generator,
            model_config,
            info['render_size'],
            os.path.join(model, bundled.WEIGHTS_FILE),
        )
    generator, model_config, path = models.restore_generator(
        model,
        stage,
        checkpoint_path,
        temperature=temperature,
        prior_strength=prior_strength,
        hint_correction=hint_correction,
    )
    return (
        generator,
        model_config,
        configs.trained_image_size(model, stage),
        path,
    )


def load_colorizer(
    model: Optional[str] = None,
    stage: str = 'gan',
    render_size: Optional[int] = None,
    temperature: Optional[float] = None,
    prior_strength: Optional[float] = None,
    hint_correction: Optional[float] = None,
) -> Colorizer:
    """Loads a Colorizer from the bundled model, an export or a training dir.

    Args:
      model: The path given as --model; None or empty: the bundled model.
      stage: For a training directory: which stage's checkpoint to use.
      render_size: Working size; default: the one recorded with the model
        (see the module docstring).
      temperature, prior_strength: For a colour-bins model (bundled or a
        training dir): the decoder's settings; default: the model's own.
      hint_correction: For a hint branch (bundled or a training dir): the
        scale of its correction; default: the model's own.

    Raises:
      ModelNotFoundError: the path holds no model.
    """
    model = model or bundled.BUNDLED_DIR
    if not tf.io.gfile.isdir(model):
        raise ModelNotFoundError(f'--model={model} is not a directory.')
    if bundled.is_bundled_model(model):
        generator, model_config, trained_size, _ = load_generator(
            model,
            temperature=temperature,
            prior_strength=prior_strength,
            hint_correction=hint_correction,
        )
        return _keras_colorizer(
            generator,
            render_size or trained_size,
            models.size_multiple(model_config.generator),
            f'bundled model {model}',
        )
    if model == bundled.BUNDLED_DIR:
        raise ModelNotFoundError(
            f'The bundled model is missing from {model}; reinstall '
            'ChromaGen, or pass --model.'
        )
    version_dir = None
    if tf.saved_model.contains_saved_model(model):
        version_dir = model
    elif not tf.io.gfile.exists(configs.model_config_path(model)):
        version_dir = export_lib.latest_version_dir(model)
    if version_dir is not None:
        if any(
            value is not None
            for value in (temperature, prior_strength, hint_correction)
        ):
            raise errors.UsageError(
                f'{version_dir} is an export, which decodes as it was '
                'exported; --temperature, --prior_strength and '
                '--hint_correction apply to bundled models and training '
                'directories.'
            )
        loaded = tf.saved_model.load(version_dir)
        metadata = export_lib.read_metadata(version_dir)
        with_hints = loaded.signatures.get('predict_ab_with_hints')
        signature = loaded.signatures['predict_ab']

        def automatic(l_normalized):
            return signature(**{signatures.L_CHANNEL: l_normalized})[
                signatures.AB
            ]

        def predict(l_normalized, hint_ab, hint_mask):
            if with_hints is None:
                return automatic(l_normalized)
            return with_hints(
                **{
                    signatures.L_CHANNEL: l_normalized,
                    signatures.HINT_AB: hint_ab,
                    signatures.HINT_MASK: hint_mask,
                }
            )[signatures.AB]

        return Colorizer(
            predict,
            render_size
            or metadata.get('render_size', full_resolution.DEFAULT_RENDER_SIZE),
            metadata.get(
                'size_multiple', full_resolution.DEFAULT_SIZE_MULTIPLE
            ),
            description=f'SavedModel {version_dir}',
            keep_alive=loaded,
            takes_hints=with_hints is not None,
            # A hint-branch export's predict_ab skips the branch.
            automatic_fn=automatic if with_hints is not None else None,
        )
    if tf.io.gfile.exists(configs.model_config_path(model)):
        generator, model_config, trained_size, path = load_generator(
            model,
            stage,
            temperature=temperature,
            prior_strength=prior_strength,
            hint_correction=hint_correction,
        )
        return _keras_colorizer(
            generator,
            render_size or trained_size,
            models.size_multiple(model_config.generator),
            f'checkpoint {path}',
        )
    raise ModelNotFoundError(
        f'--model={model} holds neither a SavedModel, nor numbered versions '
        'of one, nor a training config.json.'
    )
