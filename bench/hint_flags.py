"""The flags and the report the colour-hint benchmarks share.

`bench_hints` (the curve) and `bench_hint_correction` (choosing the
correction scale) measure a model on the same photo sets with the same
simulated hints, and `bench_sidecar_hints` on the hints of the photos'
sidecars; importing these keeps their flags the same (and defined once,
when one process imports several of them).
"""

import json
import os

from absl import flags

from bench import common

MODEL = flags.DEFINE_string('model', '', 'Model; default: the bundled one.')
STAGE = flags.DEFINE_string(
    'stage', 'pretrain', 'Stage of a training directory --model.'
)
PHOTO_SETS = flags.DEFINE_multi_string(
    'photo_sets',
    ['sample_photos'],
    'NAME:FOLDER of photos to measure; "sample_photos" alone is the '
    'packaged held-out photos.',
)
HINT_SEED = flags.DEFINE_integer('hint_seed', 0, 'Seed of the hints.')
RENDER_SIZE = flags.DEFINE_integer(
    'render_size', None, "Working size; default: the model's."
)
REPORT = flags.DEFINE_string('report', None, 'JSON report to write.')


def photo_sets() -> list[tuple[str, str]]:
    """(name, folder) of each --photo_sets entry."""
    return [common.photo_set(spec) for spec in PHOTO_SETS.value]


def write_report(report: dict) -> None:
    """Writes the report to --report, if given."""
    if not REPORT.value:
        return
    os.makedirs(os.path.dirname(os.path.abspath(REPORT.value)), exist_ok=True)
    with open(REPORT.value, 'w') as f:
        json.dump(report, f, indent=1, sort_keys=True)
        f.write('\n')
