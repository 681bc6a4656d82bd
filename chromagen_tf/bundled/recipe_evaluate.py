"""The recipe's evaluate stage: what the bundled model scores, in model.json.

`evaluate_stage` runs chromagen_tf.evaluate on the bundled model, on the
recipe's pretrained and GAN generators and on the gray baseline, over the
val photos and the held-out sample photos, and the bundled model across
render sizes and decoding settings; it records the results in model.json
(`metrics`), with per-photo figures on CHECK_PHOTOS (`check`) that
tests/bundled_model_test.py pins.
"""

import hashlib
import json
import os

from chromagen_tf import bundled
from chromagen_tf import files
from chromagen_tf.bundled import recipe_configs
from chromagen_tf.data import input_pipeline
from chromagen_tf.inference import colorize_lib
from chromagen_tf.inference import evaluate_lib
from chromagen_tf.inference import run_tools

# The sample photos whose per-photo metrics model.json records.
CHECK_PHOTOS = ('astronaut.jpg', 'chelsea.jpg', 'seeding.jpg')


def check_metrics(model: str, photos_dir: str) -> dict:
    """Per-photo ab MAE and PSNR of a model on CHECK_PHOTOS."""
    colorizer = colorize_lib.load_colorizer(model)
    results = {}
    for name, l_channel, ab_true in evaluate_lib.examples_from_images(
        photos_dir
    ):
        if name not in CHECK_PHOTOS:
            continue
        (ab_pred,) = colorizer.predict_ab([l_channel])
        values = evaluate_lib.image_metrics(l_channel, ab_pred, ab_true)
        results[name] = {
            metric: round(float(values[metric]), 4)
            for metric in ('ab_mae', 'psnr')
        }
    return results


def _link_val_photos(data_dir: str, photos: str, output_dir: str) -> str:
    """Symlinks the val split's photos (record keys are relative paths)."""
    os.makedirs(output_dir, exist_ok=True)
    for key in input_pipeline.record_keys(data_dir, 'val'):
        target = os.path.join(output_dir, key)
        if not os.path.lexists(target):
            os.symlink(os.path.realpath(os.path.join(photos, key)), target)
    return output_dir


def _evaluate(report: str, image_dir: str, *extra: str) -> dict:
    """A report of chromagen_tf.evaluate, reused if it exists."""
    if not os.path.exists(report):
        seconds = run_tools.run(
            'chromagen_tf.evaluate',
            f'--image_dir={image_dir}',
            f'--report={report}',
            *extra,
        )
        print(f'      done in {seconds:.0f} s', flush=True)
    with open(report, encoding='utf-8') as f:
        return json.load(f)


def _summary(report: dict) -> dict:
    return {
        'num_images': report['num_images'],
        'model': report['model'],
        'gray_baseline': report['gray_baseline'],
    }


def _weights_digest(output: str, info: dict) -> str:
    """Names what a report measured: the weights, decoding and prior."""
    digest = hashlib.sha256(
        json.dumps(
            [info['model'], info.get(bundled.BIN_PRIOR_KEY)], sort_keys=True
        ).encode()
    )
    for name in (bundled.WEIGHTS_FILE, bundled.HINT_BRANCH_FILE):
        if os.path.isfile(os.path.join(output, name)):
            with open(os.path.join(output, name), 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()[:12]


def evaluate_stage(
    config: recipe_configs.RecipeConfig, paths: recipe_configs.RecipePaths
) -> None:
    """Measures the bundled model and records the results in model.json."""
    output = paths.output_dir
    val_photos = _link_val_photos(
        paths.data_dir,
        paths.linked_photos,
        os.path.join(paths.work_dir, 'val_photos'),
    )
    info = bundled.read_info(output)
    # Reports are reused by a re-run, so they sit in a folder named after
    # the weights they measured (a re-run with another gan_weight or longer
    # training measures afresh), and their names carry the render size.
    reports = os.path.join(
        paths.work_dir, 'reports', _weights_digest(output, info)
    )
    size = info['render_size']
    render = f'--render_size={size}'
    # The recipe's own generators of a colour-bins model are decoded as
    # the bundle is, so that they compare like for like.
    decoding = []
    if info['model'].get('color_head') == 'bins':
        decoding = [
            f'--temperature={info["model"]["temperature"]}',
            f'--prior_strength={info["model"]["prior_strength"]}',
        ]
    trained = f'--model={paths.model_dir}'
    metrics = {
        'val': _summary(
            _evaluate(
                os.path.join(reports, f'val_{size}.json'),
                val_photos,
                f'--model={output}',
            )
        ),
        'sample_photos': _summary(
            _evaluate(
                os.path.join(reports, f'sample_photos_{size}.json'),
                paths.held_out_dir,
                f'--model={output}',
            )
        ),
        'val_l1_only': _summary(
            _evaluate(
                os.path.join(reports, f'val_pretrain_{size}.json'),
                val_photos,
                trained,
                '--stage=pretrain',
                render,
                *decoding,
            )
        ),
        'render_size_curve': {},
    }
    if config.gan_steps:
        metrics['val_gan'] = _summary(
            _evaluate(
                os.path.join(reports, f'val_gan_{size}.json'),
                val_photos,
                trained,
                '--stage=gan',
                render,
                *decoding,
            )
        )
    for curve_size in config.curve_sizes:
        report = _evaluate(
            os.path.join(reports, f'val_{curve_size}.json'),
            val_photos,
            f'--model={output}',
            f'--render_size={curve_size}',
        )
        metrics['render_size_curve'][str(curve_size)] = report['model']
    if info['model'].get('color_head') == 'bins':
        metrics['decoding_curve'] = {}
        for setting in config.decoding_curve:
            temperature, prior_strength = setting.split(':')
            report = _evaluate(
                os.path.join(
                    reports, f'val_{size}_t{temperature}_p{prior_strength}.json'
                ),
                val_photos,
                f'--model={output}',
                render,
                f'--temperature={temperature}',
                f'--prior_strength={prior_strength}',
            )
            metrics['decoding_curve'][setting] = report['model']
    info['metrics'] = metrics
    info['check'] = {
        'photos_dir': 'sample_photos',
        'render_size': size,
        'per_photo': check_metrics(output, paths.held_out_dir),
    }
    files.write_json_atomically(os.path.join(output, bundled.INFO_FILE), info)
    print(
        f'Metrics recorded in {os.path.join(output, bundled.INFO_FILE)}',
        flush=True,
    )
