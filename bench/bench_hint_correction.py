r"""Choosing a hint branch's correction scale (`ModelConfig.hint_correction`).

A hint branch outputs automatic_ab + spread + s * correction where there
are hints (`models/hint_branch.py`): its Gaussian spread of each hint
(sigma 0.15 x the diagonal, blind to edges, per 4x4 cell of its grid)
plus the branch's learned correction, scaled by s at decoding. s = 0 is
that spread alone (close to, not the same as, the edge-blind baseline
`bench_hints` measures, which is also printed), s = 1 the branch as
trained. This measures every photo's PSNR gain over no hints at each
scale and hint count (hints simulated from the ground truth as in
`bench_hints`), and picks one for each photo set by the
one-standard-error rule: the smallest scale whose mean gain is within one
standard error of the best scale's at every count, the standard error
taken over the photos' paired differences from the best. The smaller
scale trusts the learned part less; the rule keeps it where the data
cannot tell the two apart.

Usage (the BENCHMARKS.md "Choosing the correction scale" table; choose on
the val photos, then check on sample_photos):

  python -m bench.bench_hint_correction \
      --photo_sets=val:runs/bundled/hints/val_photos --photo_sets=sample_photos

`--model` takes a bundled model or a training directory with a hint
branch (default: the bundled model, whose recorded scale is ignored here);
an export decodes as it was exported, so it cannot be measured here.
"""

import math
import statistics

from absl import app
from absl import flags

from bench import common
from bench import hint_flags

# --help lists the shared flags as this benchmark's own.
flags.adopt_module_key_flags(hint_flags)

_SCALES = flags.DEFINE_list(
    'scales',
    ['0', '0.5', '0.6', '0.7', '0.8', '0.9', '1'],
    'Correction scales to measure.',
)
_COUNTS = flags.DEFINE_list(
    'counts', ['3', '10'], 'Hint counts N (> 0) to measure.'
)


def _mean_and_se(values: list[float]) -> tuple[float, float]:
    """The mean and its standard error (sample standard deviation / sqrt n)."""
    if len(values) < 2:
        return statistics.fmean(values), 0.0
    return (
        statistics.fmean(values),
        statistics.stdev(values) / math.sqrt(len(values)),
    )


def pick_scale(gains: dict[float, dict[int, list[float]]]) -> dict:
    """The one-standard-error choice from per-photo gains.

    Args:
      gains: {scale: {count: [each photo's PSNR gain, same photo order]}}.

    Returns:
      {'best': {count: scale}, 'chosen': scale, 'rows': {scale: {count:
      {'gain', 'below_best', 'se'}}}}: the best scale per count, the
      smallest scale within one standard error of the best at every count,
      and each scale's mean gain, its mean shortfall from the best and that
      shortfall's standard error over the photos.
    """
    scales = sorted(gains)
    counts = sorted(gains[scales[0]])
    best, rows = {}, {scale: {} for scale in scales}
    for count in counts:
        means = {s: statistics.fmean(gains[s][count]) for s in scales}
        best[count] = max(scales, key=lambda s, means=means: means[s])
        for scale in scales:
            below, se = _mean_and_se(
                [
                    b - g
                    for b, g in zip(
                        gains[best[count]][count], gains[scale][count]
                    )
                ]
            )
            rows[scale][count] = {
                'gain': means[scale],
                'below_best': below,
                'se': se,
            }
    chosen = min(
        scale
        for scale in scales
        if all(
            rows[scale][c]['below_best'] <= rows[scale][c]['se'] for c in counts
        )
    )
    return {'best': best, 'chosen': chosen, 'rows': rows}


def _print_table(name, folder, description, choice, spread) -> None:
    """The set's rows as a markdown table, and the choice."""
    counts = sorted(spread)
    print(
        f'\n{name} ({folder}), {description}: PSNR gain over no hints '
        '(shortfall from the best scale, +- its standard error over photos)'
    )
    print('| scale | ' + ' | '.join(f'{c} hints' for c in counts) + ' |')
    print('|---' * (len(counts) + 1) + '|')
    for scale, by_count in choice['rows'].items():
        cells = [
            f'{row["gain"]:+.2f} ({-row["below_best"]:+.3f} +- {row["se"]:.3f})'
            for row in (by_count[c] for c in counts)
        ]
        print(f'| {scale:g} | ' + ' | '.join(cells) + ' |')
    print(
        '| edge-blind spread | '
        + ' | '.join(f'{spread[c]:+.2f}' for c in counts)
        + ' |'
    )
    best = ', '.join(f'{s:g} at {c} hints' for c, s in choice['best'].items())
    print(f'best: {best}; one-standard-error choice: {choice["chosen"]:g}')


def main(argv):
    common.check_no_arguments(argv)
    # pylint: disable=g-import-not-at-top
    from chromagen_tf import errors
    from chromagen_tf.inference import colorize_lib
    from chromagen_tf.inference import evaluate_lib

    scales = sorted(float(value) for value in _SCALES.value)
    counts = sorted(int(value) for value in _COUNTS.value)
    if not counts or counts[0] <= 0:
        raise app.UsageError('--counts takes hint counts above 0.')
    sets = hint_flags.photo_sets()
    # {set: {scale: {count: [gain per photo]}}}, and each set's baseline.
    gains = {name: {} for name, _ in sets}
    spread = {name: {} for name, _ in sets}
    automatic = {}  # {set: {photo: entry}} without hints.
    description = ''
    for scale in scales:
        try:
            colorizer = colorize_lib.load_colorizer(
                hint_flags.MODEL.value or None,
                hint_flags.STAGE.value,
                hint_flags.RENDER_SIZE.value,
                hint_correction=scale,
            )
        except errors.ChromaGenError as error:
            raise app.UsageError(str(error)) from error
        description = colorizer.description
        for name, folder in sets:

            def evaluate(count, folder=folder, colorizer=colorizer):
                result = evaluate_lib.evaluate(
                    colorizer,
                    evaluate_lib.examples_from_images(folder),
                    num_hints=count,
                    hint_seed=hint_flags.HINT_SEED.value,
                )
                return {e['key']: e for e in result['per_image']}

            # Without hints the scale changes nothing: measure that once.
            if name not in automatic:
                automatic[name] = evaluate(0)
            gains[name][scale] = {}
            for count in counts:
                hinted = evaluate(count)
                plain = automatic[name]
                keys = sorted(plain)
                gains[name][scale][count] = [
                    hinted[k]['model']['psnr'] - plain[k]['model']['psnr']
                    for k in keys
                ]
                # The baseline does not depend on the scale.
                spread[name].setdefault(
                    count,
                    statistics.fmean(
                        hinted[k]['hint_spread_baseline']['psnr']
                        - plain[k]['model']['psnr']
                        for k in keys
                    ),
                )
        print(f'scale {scale:g}: measured', flush=True)
    report = {
        'model': description,
        'hint_seed': hint_flags.HINT_SEED.value,
        'sets': {},
    }
    for name, folder in sets:
        choice = pick_scale(gains[name])
        report['sets'][name] = {
            'chosen': choice['chosen'],
            'best': {str(c): s for c, s in choice['best'].items()},
            'spread_gain': {str(c): g for c, g in spread[name].items()},
            'rows': {
                str(s): {str(c): row for c, row in by_count.items()}
                for s, by_count in choice['rows'].items()
            },
        }
        _print_table(name, folder, description, choice, spread[name])
    hint_flags.write_report(report)


if __name__ == '__main__':
    app.run(main)
