"""The model that ships with ChromaGen, and its file format.

A bundled model is a folder with two files:

  model.json      the `ModelConfig`, the render size to colorize at, how it
                  was trained and its measured metrics (and, for a
                  colour-bins model, its prior over the bins);
  generator.npz   the generator's variables in float16, keyed by variable
                  path (half the size of float32; loading restores float32);
  hint_branch.npz for a hint-branch model (`models/hint_branch.py`), the
                  branch's variables alike; generator.npz then holds the
                  frozen automatic generator's, so an automatic bundle's
                  file serves unchanged.

`load_generator()` rebuilds the generator offline from this package's own
folder (`BUNDLED_DIR`), so `colorize`, `evaluate`, `export` and the demo work
on a fresh clone or an installed wheel with no download. `save()` writes
the format. This module reads and writes the format only, and needs
nothing beyond `configs` and `models`; the recipe that trains and measures
the shipped model is `chromagen_tf.bundled.recipe`, and MODEL_CARD.md
describes it.
"""

import json
import os
import shutil
from typing import Any, Optional

import numpy as np

from chromagen_tf import configs
from chromagen_tf import errors
from chromagen_tf import files

BUNDLED_DIR = os.path.dirname(os.path.abspath(__file__))
INFO_FILE = 'model.json'
WEIGHTS_FILE = 'generator.npz'
HINT_BRANCH_FILE = 'hint_branch.npz'
# The path prefix of a hint branch's weights (`models.hint_branch.PREFIX`);
# this module imports no TensorFlow until a model is loaded, so that the
# recipe's command line can quiet TensorFlow's start-up lines first.
HINT_BRANCH_PREFIX = 'hint_'
FORMAT_VERSION = 1
# model.json's copy of a colour-bins model's prior (training/bin_prior.py).
BIN_PRIOR_KEY = 'bin_log_prior'


class BundledModelError(errors.UsageError, ValueError):
    """A bundled-model folder is missing or does not fit its config."""


def is_bundled_model(path: str) -> bool:
    """Whether `path` is a folder in the bundled-model format."""
    return os.path.isfile(os.path.join(path, INFO_FILE)) and os.path.isfile(
        os.path.join(path, WEIGHTS_FILE)
    )


def read_info(path: str = BUNDLED_DIR) -> dict[str, Any]:
    """The model.json of a bundled model."""
    info_path = os.path.join(path, INFO_FILE)
    if not os.path.isfile(info_path):
        raise BundledModelError(
            f'{path} has no {INFO_FILE}: not a bundled ChromaGen model.'
        )
    with open(info_path, encoding='utf-8') as f:
        info = json.load(f)
    if info.get('format_version') != FORMAT_VERSION:
        raise BundledModelError(
            f'{info_path} has format_version {info.get("format_version")!r}; '
            f'this ChromaGen reads {FORMAT_VERSION}.'
        )
    return info


def save(
    generator,
    model_config: configs.ModelConfig,
    path: str,
    *,
    render_size: int,
    info: Optional[dict[str, Any]] = None,
) -> str:
    """Writes a generator in the bundled format.

    Args:
      generator: The trained Keras generator.
      model_config: Its architecture.
      path: Folder to write into (created).
      render_size: Longer side of the working size to colorize at.
      info: More to record in model.json (training, metrics).

    Returns:
      The folder written.
    """
    os.makedirs(path, exist_ok=True)
    arrays = {WEIGHTS_FILE: {}, HINT_BRANCH_FILE: {}}
    for variable in generator.weights:
        value = np.asarray(variable.numpy(), np.float32)
        if np.abs(value).max(initial=0) >= np.finfo(np.float16).max:
            raise BundledModelError(f'{variable.path} does not fit float16.')
        arrays[_weights_file(model_config, variable.path)][variable.path] = (
            value.astype(np.float16)
        )
    for name, values in arrays.items():
        if values:
            temporary = os.path.join(path, '.' + name)
            with open(temporary, 'wb') as f:
                np.savez_compressed(f, **values)
            os.replace(temporary, os.path.join(path, name))
    values = dict(info or {})
    values.update(
        format_version=FORMAT_VERSION,
        model=configs.to_dict(model_config),
        render_size=render_size,
    )
    files.write_json_atomically(os.path.join(path, INFO_FILE), values)
    return path


def reuse_weights_file(source: str, path: str) -> None:
    """Puts `source`'s generator.npz in bundle `path`, if it holds the same
    values (a hint branch's frozen automatic generator): the file then stays
    byte for byte the one the automatic bundle shipped.

    Raises:
      BundledModelError: the two files' arrays differ.
    """
    target = os.path.join(path, WEIGHTS_FILE)
    origin = os.path.join(source, WEIGHTS_FILE)
    with np.load(origin) as theirs, np.load(target) as ours:
        same = set(theirs.files) == set(ours.files) and all(
            np.array_equal(theirs[key], ours[key]) for key in ours.files
        )
    if not same:
        raise BundledModelError(
            f'{target} does not hold the values of {origin}.'
        )
    shutil.copyfile(origin, target)


def _weights_file(model_config: configs.ModelConfig, path: str) -> str:
    """The file of a bundle that holds the weight at `path`."""
    if model_config.hint_branch and path.startswith(HINT_BRANCH_PREFIX):
        return HINT_BRANCH_FILE
    return WEIGHTS_FILE


def _read_arrays(path: str, model_config: configs.ModelConfig) -> dict:
    names = [WEIGHTS_FILE]
    if model_config.hint_branch:
        names.append(HINT_BRANCH_FILE)
    arrays = {}
    for name in names:
        weights_path = os.path.join(path, name)
        if not os.path.isfile(weights_path):
            raise BundledModelError(f'{path} has no {name}.')
        with np.load(weights_path) as values:
            arrays.update((key, values[key]) for key in values.files)
    return arrays


def load_generator(
    path: str = BUNDLED_DIR,
    temperature: Optional[float] = None,
    prior_strength: Optional[float] = None,
    hint_correction: Optional[float] = None,
):
    """Rebuilds a bundled generator in float32.

    temperature, prior_strength, hint_correction: decode with these
    settings instead of the recorded ones (`models.loading.with_decoding`).

    Returns:
      (generator, model_config, info).

    Raises:
      BundledModelError: the folder is not a bundled model, or its weights
        do not fit its architecture.
    """
    # pylint: disable-next=g-import-not-at-top
    from chromagen_tf import models
    from chromagen_tf.models import color_bins  # pylint: disable=g-import-not-at-top

    info = read_info(path)
    model_config = models.loading.with_decoding(
        configs.model_config_from_dict(info['model']),
        temperature,
        prior_strength,
        hint_correction,
    )
    log_prior = info.get(BIN_PRIOR_KEY)
    if log_prior is not None and len(log_prior) != color_bins.NUM_BINS:
        raise BundledModelError(
            f'{path}: {BIN_PRIOR_KEY} in model.json has {len(log_prior)} '
            f'values, not one per colour bin ({color_bins.NUM_BINS}).'
        )
    generator = models.build_from_config(model_config, log_prior)
    arrays = _read_arrays(path, model_config)
    expected = {variable.path for variable in generator.weights}
    described = (
        f'{path} does not fit {model_config.generator} '
        f'(width {model_config.width})'
    )
    if expected != set(arrays):
        missing = sorted(expected - set(arrays))[:3]
        extra = sorted(set(arrays) - expected)[:3]
        raise BundledModelError(
            f'{described}: missing {missing}, unexpected {extra}.'
        )
    for variable in generator.weights:
        value = arrays[variable.path]
        if tuple(value.shape) != tuple(variable.shape):
            raise BundledModelError(
                f'{described}: {variable.path} has shape {value.shape}, the '
                f'model needs {tuple(variable.shape)}.'
            )
        variable.assign(value.astype(np.float32))
    return generator, model_config, info
