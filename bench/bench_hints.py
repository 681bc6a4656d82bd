r"""The colour-hints curve: PSNR against the number of hints, and a baseline.

For each photo set and each hint count N, every photo gets N hints
simulated from its ground truth with the training sampler
(`inference/hint_evaluation.py`, seed --hint_seed + photo index), and three
results are measured against the truth: the model given the hints, the
model without hints (N = 0), and the baseline that learns nothing (the
automatic result plus each hint's a*b* difference spread by a Gaussian of
sigma 0.15 x the diagonal, blind to edges). It also reports the median
|delta a*b*| between the model's output and the hints, at the hints.
With --per_photo_seeds, it compares the model's gain with the baseline's
photo by photo at the largest N, averaged over those hint seeds.

Usage (the BENCHMARKS.md "Colour hints" table):

  python -m bench.bench_hints --photo_sets=val:runs/bundled/hints/val_photos \
      --photo_sets=sample_photos --report=runs/bench_hints.json

Photo by photo (the "Where the model and the baseline differ" table):

  python -m bench.bench_hints --photo_sets=sample_photos --counts=0,10 \
      --per_photo_seeds=0,1,2

`--model` takes what colorize takes (default: the bundled model).
"""

import os

from absl import app
from absl import flags

from bench import common
from bench import hint_flags

# --help lists the shared flags as this benchmark's own.
flags.adopt_module_key_flags(hint_flags)

_COUNTS = flags.DEFINE_list(
    'counts', ['0', '1', '3', '10', '30'], 'Hint counts N to measure.'
)
_PER_PHOTO_SEEDS = flags.DEFINE_list(
    'per_photo_seeds',
    [],
    'If set (e.g. 0,1,2): also measure every photo at the largest of '
    '--counts with these hint seeds, and print (and report) its PSNR gain '
    "over no hints, the model's and the baseline's, averaged over them.",
)
_PRIOR_STRENGTH = flags.DEFINE_float(
    'prior_strength', None, "Decoding prior strength; default: the model's."
)
_HINT_CORRECTION = flags.DEFINE_float(
    'hint_correction',
    None,
    "A hint branch's correction scale (ModelConfig.hint_correction); "
    "default: the model's.",
    lower_bound=0.0,
)
_FIGURE = flags.DEFINE_string(
    'figure',
    None,
    'Also write a picture of --figure_photo at each of '
    '--figure_counts hints (the hints drawn as dots) to this path.',
)
_FIGURE_PHOTO = flags.DEFINE_string(
    'figure_photo', 'brushes.jpg', 'A photo of the sample photos.'
)
_FIGURE_COUNTS = flags.DEFINE_list(
    'figure_counts', ['0', '3', '10'], 'Hint counts of the picture.'
)


def _figure(colorizer, path: str) -> None:
    """The photo at several hint counts, hints drawn where they were."""
    # pylint: disable=g-import-not-at-top
    import numpy as np
    from PIL import Image

    from chromagen_tf import color
    from chromagen_tf import hint_format
    from chromagen_tf.inference import contact_sheet
    from chromagen_tf.inference import evaluate_lib
    from chromagen_tf.inference import hint_evaluation

    photo = os.path.join(common.SAMPLE_PHOTOS, _FIGURE_PHOTO.value)
    ((_, l_channel, ab_true),) = [
        example
        for example in evaluate_lib.examples_from_images(common.SAMPLE_PHOTOS)
        if example[0] == _FIGURE_PHOTO.value
    ]
    height, width = l_channel.shape[1:3]
    working = colorizer.working_size(l_channel)
    panels, titles = [], []
    with Image.open(photo) as image:
        original = image.convert('RGB')
    gray = Image.fromarray(colorizer.gray(np.asarray(original)))
    for count in (int(value) for value in _FIGURE_COUNTS.value):
        simulated = hint_evaluation.simulate(
            ab_true, working, count, hint_flags.HINT_SEED.value
        )
        (ab,) = colorizer.predict_ab([l_channel], [simulated.maps])
        rgb = colorizer.to_uint8(l_channel, ab)
        dots = []
        for (row, column), value in zip(simulated.centres, simulated.values):
            y = min(int((row + 0.5) * height / working[0]), height - 1)
            x = min(int((column + 0.5) * width / working[1]), width - 1)
            # The hint's own colour, at the photo's lightness there.
            colour = colorizer.to_uint8(
                l_channel[:, y : y + 1, x : x + 1],
                np.reshape(value * color.AB_SCALE, [1, 1, 1, 2]),
            )[0, 0]
            dots.append(hint_format.Hint(x, y, tuple(int(v) for v in colour)))
        panels.append(contact_sheet.with_hints(Image.fromarray(rgb), dots))
        titles.append(f'{count} hints' if count else 'no hints')
    contact_sheet.rows(
        [[gray, *panels, original]],
        ['gray input', *titles, 'original'],
        path,
        panel_height=240,
    )
    print(f'Picture written to {path}')


def _per_photo(evaluate, automatic_result, count: int, seeds) -> dict:
    """{photo: {'model_gain', 'spread_gain'}}: mean PSNR gains over N = 0."""
    automatic = {
        entry['key']: entry['model']['psnr']
        for entry in automatic_result['per_image']
    }
    gains = {key: ([], []) for key in automatic}
    for seed in seeds:
        for entry in evaluate(count, seed)['per_image']:
            model, spread = gains[entry['key']]
            model.append(entry['model']['psnr'] - automatic[entry['key']])
            spread.append(
                entry['hint_spread_baseline']['psnr'] - automatic[entry['key']]
            )
    return {
        key: {
            'model_gain': sum(model) / len(model),
            'spread_gain': sum(spread) / len(spread),
        }
        for key, (model, spread) in gains.items()
    }


def _print_per_photo(name: str, count: int, seeds, per_photo: dict) -> None:
    print(
        f'\n{name} at {count} hints, photo by photo (PSNR gain over no '
        f'hints, mean over hint seeds {",".join(map(str, seeds))})'
    )
    print(f'{"photo":<28} {"model":>6} {"spread":>6} {"model - spread":>14}')
    ordered = sorted(
        per_photo.items(),
        key=lambda item: item[1]['model_gain'] - item[1]['spread_gain'],
    )
    for key, gains in ordered:
        model, spread = gains['model_gain'], gains['spread_gain']
        print(f'{key:<28} {model:+6.2f} {spread:+6.2f} {model - spread:+14.2f}')
    ahead = sum(g['model_gain'] > g['spread_gain'] for g in per_photo.values())
    print(f'the model ahead on {ahead} of {len(per_photo)} photos')


def main(argv):
    common.check_no_arguments(argv)
    # pylint: disable=g-import-not-at-top
    from chromagen_tf.inference import colorize_lib
    from chromagen_tf.inference import evaluate_lib

    colorizer = colorize_lib.load_colorizer(
        hint_flags.MODEL.value or None,
        hint_flags.STAGE.value,
        hint_flags.RENDER_SIZE.value,
        prior_strength=_PRIOR_STRENGTH.value,
        hint_correction=_HINT_CORRECTION.value,
    )
    report = {
        'model': colorizer.description,
        'render_size': colorizer.render_size,
        'sets': {},
    }
    for name, folder in hint_flags.photo_sets():
        rows = {}

        results = {}

        def evaluate(count, seed, folder=folder, results=results):
            if (count, seed) not in results:
                results[count, seed] = evaluate_lib.evaluate(
                    colorizer,
                    evaluate_lib.examples_from_images(folder),
                    num_hints=count,
                    hint_seed=seed,
                )
            return results[count, seed]

        counts = sorted(int(value) for value in _COUNTS.value)
        seeds = [int(value) for value in _PER_PHOTO_SEEDS.value]
        if seeds and (counts[0] != 0 or counts[-1] == 0):
            raise app.UsageError(
                '--per_photo_seeds needs 0 and a larger count in --counts.'
            )
        automatic_result = None
        for count in counts:
            result = evaluate(count, hint_flags.HINT_SEED.value)
            if count == 0:
                automatic_result = result
            row = {
                'model': result['model'],
                'gray_baseline': result['gray_baseline'],
                'num_images': result['num_images'],
            }
            if count:
                row['hint_spread_baseline'] = result['hint_spread_baseline']
                row['hint_ab_error_median'] = result['hint_ab_error_median']
            rows[count] = row
        report['sets'][name] = rows
        automatic = rows[min(rows)]['model']
        print(
            f'\n{name}: {rows[min(rows)]["num_images"]} photos '
            f'({folder}), {colorizer.description}'
        )
        print(
            f'{"N":>3} {"model PSNR":>10} {"gain":>6} {"spread PSNR":>11} '
            f'{"gain":>6} {"model AuC":>9} {"spread AuC":>10} '
            f'{"|dab| at hints":>14}'
        )
        for count, row in rows.items():
            spread = row.get('hint_spread_baseline', row['model'])
            print(
                f'{count:3d} {row["model"]["psnr"]:10.2f} '
                f'{row["model"]["psnr"] - automatic["psnr"]:+6.2f} '
                f'{spread["psnr"]:11.2f} '
                f'{spread["psnr"] - automatic["psnr"]:+6.2f} '
                f'{row["model"]["auc"]:9.4f} {spread["auc"]:10.4f} '
                f'{row.get("hint_ab_error_median", float("nan")):14.2f}'
            )
        if seeds:
            per_photo = _per_photo(
                evaluate, automatic_result, counts[-1], seeds
            )
            report['sets'][name + '_per_photo'] = {
                'num_hints': counts[-1],
                'seeds': seeds,
                'photos': per_photo,
            }
            _print_per_photo(name, counts[-1], seeds, per_photo)
    if _FIGURE.value:
        _figure(colorizer, _FIGURE.value)
    hint_flags.write_report(report)


if __name__ == '__main__':
    app.run(main)
