r"""How near the picked colours a colorized photo comes at its hint points.

For every photo of --photo_sets that has a hint sidecar
(`<photo>.hints.json`, docs/hints.md), the photo is colorized at full
resolution with its hints and without, as `colorize --hints=sidecar` does,
at each --hint_corrections scale, and with its colour hints alone (the
neutral, gray ones left out) to show what the neutral ones hold back. At
each hint point the result's a*b* (the mean of the 3x3 pixels around it)
is compared with the picked colour's a*b*; the photo keeps its own
lightness, so this is the distance the user sees in colour alone. The
simulated hints of `bench_hints` are patch means of the true colours;
these are single points a person picked.

Usage (the BENCHMARKS.md "Hand-picked hints" table: the demo's sidecars):

  python -m bench.bench_sidecar_hints --hint_corrections=0,0.8,1

`--model` takes what colorize takes (default: the bundled model).
"""

import os

from absl import app
from absl import flags
import numpy as np

from bench import common
from bench import hint_flags

# The colour-hint benchmarks' shared flags, listed by --help as this one's
# (--hint_seed draws simulated hints, which this benchmark has none of).
for _name in ('model', 'stage', 'render_size', 'photo_sets', 'report'):
    flags.declare_key_flag(_name)

_HINT_CORRECTIONS = flags.DEFINE_list(
    'hint_corrections',
    [],
    "A hint branch's correction scales to measure; default: the model's own.",
)

# A picked colour with less a*b* chroma than this is a neutral (gray) hint.
NEUTRAL_CHROMA = 5.0


def ab_at_points(rgb: np.ndarray, points) -> np.ndarray:
    """a*b* [N, 2] of uint8 RGB [H, W, 3], the 3x3 mean at each (x, y)."""
    # pylint: disable=g-import-not-at-top
    import tensorflow as tf

    from chromagen_tf import color

    height, width = rgb.shape[:2]
    lab = color.rgb_to_lab(tf.constant(rgb, tf.float32) / 255.0).numpy()
    values = []
    for x, y in points:
        row = min(max(int(y), 0), height - 1)
        column = min(max(int(x), 0), width - 1)
        window = lab[
            max(row - 1, 0) : row + 2, max(column - 1, 0) : column + 2, 1:
        ]
        values.append(window.reshape(-1, 2).mean(0))
    return np.array(values)


def load_photo(path: str):
    """(uint8 RGB [H, W, 3], its sidecar's hints), checked as colorize does."""
    # pylint: disable=g-import-not-at-top
    from chromagen_tf import hint_format
    from chromagen_tf.data import imaging

    image = np.asarray(imaging.load_rgb(path).image)
    hints = hint_format.read_file(hint_format.sidecar_path(path))
    hint_format.check_inside(hints, image.shape[1], image.shape[0], path)
    return image, hints


def hint_distances(colorizer, image, hints, automatic=None) -> dict:
    """|delta a*b*| at each hint point to its picked colour.

    Args:
      colorizer: The model, at the correction scale to measure.
      image, hints: A photo and its hints (`load_photo`).
      automatic: The distances without hints, if already measured: they do
        not depend on the correction scale.

    Returns:
      {'hints': with all the hints, 'automatic': without any,
       'colours_only': with only the hints that are not neutral (chroma at
       least NEUTRAL_CHROMA), 'neutral': whether each hint is neutral}.
    """
    # pylint: disable=g-import-not-at-top
    import tensorflow as tf

    from chromagen_tf import color

    picked = color.rgb_to_lab(
        tf.constant([[h.rgb for h in hints]], tf.float32) / 255.0
    ).numpy()[0, :, 1:]
    neutral = np.linalg.norm(picked, axis=-1) < NEUTRAL_CHROMA
    points = [(h.x, h.y) for h in hints]
    hint_lists = {
        'hints': hints,
        'colours_only': [h for h, n in zip(hints, neutral) if not n],
    }
    if automatic is None:
        hint_lists['automatic'] = None
    distances = {
        name: np.linalg.norm(
            ab_at_points(colorizer.colorize([image], [hint_list])[0], points)
            - picked,
            axis=-1,
        ).tolist()
        for name, hint_list in hint_lists.items()
    }
    if automatic is not None:
        distances['automatic'] = automatic
    distances['neutral'] = neutral.tolist()
    return distances


def _median_and_mean(values: np.ndarray) -> str:
    if not values.size:
        return f'{"-":>13}'
    return f'{np.median(values):6.1f} ({np.mean(values):4.1f})'


def main(argv):
    common.check_no_arguments(argv)
    # pylint: disable=g-import-not-at-top
    from chromagen_tf import hint_format
    from chromagen_tf.inference import colorize_lib

    photos = []
    for _, folder in hint_flags.photo_sets():
        if not os.path.isdir(folder):
            raise app.UsageError(f'--photo_sets: {folder} is not a folder.')
        photos += sorted(
            os.path.join(folder, name)
            for name in os.listdir(folder)
            if os.path.isfile(
                hint_format.sidecar_path(os.path.join(folder, name))
            )
        )
    if not photos:
        raise app.UsageError('No photo of --photo_sets has a hint sidecar.')
    scales = [float(value) for value in _HINT_CORRECTIONS.value] or [None]
    print(
        'median (mean) |delta a*b*| at the hint points; at the neutral '
        'points also with the colour hints alone'
    )
    print(
        f'{"photo":<16} {"hints":>5} {"correction":>10} '
        f'{"all hints":>13} {"no hints":>13} '
        f'{"neutral: all":>13} {"colours only":>13}'
    )
    colorizers = {
        scale: colorize_lib.load_colorizer(
            hint_flags.MODEL.value or None,
            hint_flags.STAGE.value,
            hint_flags.RENDER_SIZE.value,
            hint_correction=scale,
        )
        for scale in scales
    }
    report = {
        'photos': photos,
        'scales': {
            str(scale): {'model': colorizer.description, 'photos': {}}
            for scale, colorizer in colorizers.items()
        },
    }
    for path in photos:
        image, hints = load_photo(path)
        name = os.path.basename(path)
        automatic = None
        for scale, colorizer in colorizers.items():
            distances = hint_distances(colorizer, image, hints, automatic)
            automatic = distances['automatic']
            report['scales'][str(scale)]['photos'][name] = distances
            neutral = np.array(distances['neutral'])
            columns = [
                np.array(distances['hints']),
                np.array(distances['automatic']),
                np.array(distances['hints'])[neutral],
                np.array(distances['colours_only'])[neutral],
            ]
            print(
                f'{name:<16} {len(hints):5d} '
                f'{"own" if scale is None else scale:>10} '
                + ' '.join(_median_and_mean(values) for values in columns)
            )
    hint_flags.write_report(report)


if __name__ == '__main__':
    app.run(main)
