r"""Trains the bundled model on the open photos, start to end, on a CPU.

Usage (the command that made the shipped model; the time it took is in
MODEL_CARD.md):

  python -m chromagen_tf.bundled.recipe \
      --photos_dir=open_photos --work_dir=runs/bundled \
      --output_dir=chromagen_tf/bundled

Every stage runs through the project's own tools, with fixed seeds:

  1. the photos are listed, and any near-duplicate of a sample photo
     (chromagen_tf/sample_photos) is left out, so they stay held out;
  2. data_prep.make_tfrecords   Lab shards at --stored_size, 10% val (seeded)
  3. chromagen_tf.train         --stage=pretrain: the colour-bins head
                                (--color_head=bins) on cross-entropy alone,
                                which also writes the training set's prior
                                over the bins;
  4. chromagen_tf.train         --stage=gan (adversarial + lambda_ce *
                                cross-entropy), from the pretrained weights;
  5. --gan_weight of the GAN generator plus the rest of the pretrained one
     (0, as shipped: the pretrained one) is written in the bundled format
     to --output_dir, decoded at --bundle_temperature with
     --bundle_prior_strength of the prior divided out;
  6. chromagen_tf.evaluate      the bundled model, the pretrained and the
                                GAN generators and the gray baseline on the
                                val photos and on sample_photos/, and the
                                bundled model across render sizes and
                                decoding settings; the results go into
                                model.json (`metrics`), with a few
                                per-photo figures the tests check the
                                shipped weights against.

--color_head=regression --gan_weight=0.5 --ema_decay=0 trains the L1 model
shipped before (MODEL_CARD.md has both).

Each stage whose output exists is reused, so re-running the same command
after an interruption goes on where it stopped (training resumes from its
last checkpoint). How to rebuild the open photos from Debian is in
MODEL_CARD.md.
"""

import hashlib
import json
import os
import time

from absl import app
from absl import flags
import numpy as np
from PIL import Image

from chromagen_tf import configs
from chromagen_tf import errors
from chromagen_tf import files
from chromagen_tf import models
from chromagen_tf import sample_photos
from chromagen_tf.data import image_folders
from chromagen_tf.inference import run_tools

_PHOTOS_DIR = flags.DEFINE_string(
    'photos_dir', None, 'Folder of training photos (the open photos set).')
_HELD_OUT_DIR = flags.DEFINE_string(
    'held_out_dir', sample_photos.folder(),
    'Photos that must stay out of training: near-duplicates of them in '
    '--photos_dir are dropped.')
_WORK_DIR = flags.DEFINE_string(
    'work_dir', 'runs/bundled', 'Shards, checkpoints and TensorBoard logs.')
_OUTPUT_DIR = flags.DEFINE_string(
    'output_dir', os.path.dirname(os.path.abspath(__file__)),
    'Where the bundled model (model.json, generator.npz) is written.')
_GENERATOR = flags.DEFINE_string(
    'generator', 'resnet18_unet_lite', 'Generator architecture.')
_STORED_SIZE = flags.DEFINE_integer(
    'stored_size', 256, 'Size the photos are stored at; training takes '
    'random squares of --min_crop_scale to 1 of it, resized to '
    '--image_size.')
_MIN_CROP_SCALE = flags.DEFINE_float(
    'min_crop_scale', 0.4, 'Scale augmentation (chromagen_tf.train '
    '--min_crop_scale): with 446 photos and no augmentation but flips, the '
    'val L1 stopped improving after 1500 of 6500 steps while the train L1 '
    'halved.')
_IMAGE_SIZE = flags.DEFINE_integer('image_size', 128, 'Training crop size.')
_BATCH_SIZE = flags.DEFINE_integer(
    'global_batch_size', 16, 'Global batch size (the tutorial: 16).')
_PRETRAIN_STEPS = flags.DEFINE_integer(
    'pretrain_steps', 3000, 'Steps of L1 pretraining.')
_GAN_STEPS = flags.DEFINE_integer('gan_steps', 2000, 'Steps of GAN training.')
_LR_PRETRAIN = flags.DEFINE_float(
    'lr_pretrain', 2e-4, "Pretraining learning rate: twice the tutorial's "
    '1e-4, whose encoder started from ImageNet weights; ours starts random.')
_LR_DECAY_FRACTION = flags.DEFINE_float(
    'lr_decay_fraction', 0.0, 'chromagen_tf.train --lr_decay_fraction for '
    'both stages: each holds its learning rate, then decays it linearly to '
    'zero over this last fraction of its steps (pix2pix: 0.5; one run '
    'at 0.5 was less accurate here, BENCHMARKS.md).',
    lower_bound=0.0, upper_bound=1.0)
_EMA_DECAY = flags.DEFINE_float(
    'ema_decay', 0.999, 'chromagen_tf.train --ema_decay for both stages: the '
    'bundled weights are then blended from the two stages\' moving '
    'averages of the generator weights (0 keeps none).', lower_bound=0.0,
    upper_bound=0.9999)
_BUNDLE_AVERAGE = flags.DEFINE_bool(
    'bundle_average', True, 'Bundle the moving averages of a run trained '
    'with --ema_decay; --nobundle_average bundles its trained weights '
    'instead, for comparison.')
_DISCRIMINATOR_WIDTH = flags.DEFINE_integer(
    'discriminator_width', 32, 'PatchGAN base width: 32 keeps its 70x70 '
    'receptive field at a quarter of the cost of 64.')
_RENDER_SIZE = flags.DEFINE_integer(
    'render_size', 256, 'Render size recorded in model.json, chosen from '
    'the render-size curve the evaluate stage measures (MODEL_CARD.md).')
_GAN_WEIGHT = flags.DEFINE_float(
    'gan_weight', 0.0, 'The bundled weights: this fraction of the GAN '
    'generator plus the rest of the pretrained one (weight-space '
    'ensembling, WiSE-FT); 1 ships the GAN generator as it is. 0, as '
    'shipped: on the val split no blend of the colour-bins stages beat the '
    'pretrained generator decoded with its prior (MODEL_CARD.md).',
    lower_bound=0.0, upper_bound=1.0)
_LAMBDA_L1 = flags.DEFINE_float(
    'lambda_l1', 100.0, 'chromagen_tf.train --lambda_l1 for the GAN stage: '
    'the weight of L1 beside the adversarial loss (pix2pix: 100; 300 and '
    '1000 measured in BENCHMARKS.md).', lower_bound=0.0)
_COLOR_HEAD = flags.DEFINE_enum(
    'color_head', 'bins', configs.COLOR_HEADS,
    'chromagen_tf.train --color_head: bins (as shipped: a distribution over '
    'a*b* bins trained on cross-entropy, Zhang et al. 2016) or regression '
    '(L1, the model shipped before).')
_TEMPERATURE = flags.DEFINE_float(
    'temperature', 0.38, 'chromagen_tf.train --temperature: the annealed '
    'mean of --color_head=bins that training evaluates and the bundle '
    'records.', lower_bound=0.01)
_BUNDLE_TEMPERATURE = flags.DEFINE_float(
    'bundle_temperature', None, 'The annealed-mean temperature the bundled '
    'model of --color_head=bins decodes at, chosen from the temperature '
    'curve the evaluate stage measures (MODEL_CARD.md). Default: '
    '--temperature.', lower_bound=0.01)
_BUNDLE_PRIOR_STRENGTH = flags.DEFINE_float(
    'bundle_prior_strength', 0.25, 'How much of the training set\'s prior '
    'over the bins the bundled model of --color_head=bins divides out '
    'before decoding (logit adjustment; 0: none), chosen from the decoding '
    'curve.', lower_bound=0.0)
_DECODING_CURVE = flags.DEFINE_list(
    'decoding_curve', ['0.38:0', '1:0', '0.38:0.1', '0.38:0.2', '0.38:0.25',
                       '1:0.25', '0.38:0.5'],
    'TEMPERATURE:PRIOR_STRENGTH pairs at which the evaluate stage measures '
    'the val photos, for --color_head=bins.')
_LAMBDA_CE = flags.DEFINE_float(
    'lambda_ce', 5.0, 'chromagen_tf.train --lambda_ce for the GAN stage of '
    '--color_head=bins.', lower_bound=0.0)
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the split and training.')
_CURVE_SIZES = flags.DEFINE_list(
    'curve_sizes', ['128', '160', '192', '224', '256', '320'],
    'Render sizes at which the evaluate stage measures the val photos.')
_STAGES = flags.DEFINE_list(
    'stages', ['convert', 'pretrain', 'gan', 'bundle', 'evaluate'],
    'Which stages to run, in order.')

flags.mark_flags_as_required(['photos_dir'])

# Two photos count as the same picture when their 32x32 gray thumbnails
# correlate this well; distinct photos of similar scenes in the open photos
# reach 0.93 at most against sample_photos/.
_DUPLICATE_CORRELATION = 0.98


def _thumbnail(path: str) -> np.ndarray:
    with Image.open(path) as image:
        gray = np.asarray(image.convert('L').resize((32, 32)), np.float32)
    return (gray - gray.mean()) / (gray.std() + 1e-6)


def _photos(folder: str) -> list[str]:
    return [name for name, _ in image_folders.find_images(folder, recursive=False)]


def link_training_photos(photos_dir: str, held_out_dir: str,
                         output_dir: str) -> tuple[int, list[str]]:
    """Symlinks the photos that are not near-duplicates of held-out ones.

    Returns:
      (photos linked, names dropped as near-duplicates).
    """
    held_out = [_thumbnail(os.path.join(held_out_dir, name))
                for name in _photos(held_out_dir)]
    os.makedirs(output_dir, exist_ok=True)
    linked, dropped = 0, []
    for name in _photos(photos_dir):
        source = os.path.abspath(os.path.join(photos_dir, name))
        try:
            thumbnail = _thumbnail(source)
        except OSError:
            thumbnail = None  # The converter reports unreadable files.
        if thumbnail is not None and any(
                float((thumbnail * other).mean()) >= _DUPLICATE_CORRELATION
                for other in held_out):
            dropped.append(name)
            continue
        target = os.path.join(output_dir, name)
        if not os.path.lexists(target):
            os.symlink(source, target)
        linked += 1
    return linked, dropped


def _run(*command: str) -> None:
    seconds = run_tools.run(*command)
    print(f'      done in {seconds:.0f} s', flush=True)


def blend_generators(model_dir: str, gan_weight: float, average: bool = True):
    """The GAN generator's weights interpolated towards the L1-only one's.

    Weight-space ensembling of a model and its fine-tuned version (WiSE-FT,
    Wortsman et al. 2022): the GAN stage starts from the pretrained
    generator, so the two lie in one basin and their interpolation trades
    the GAN's colourfulness against the L1 model's accuracy smoothly.
    BatchNorm statistics are interpolated alike. average: use the stages'
    moving averages of the weights where they were kept (--ema_decay).

    Returns:
      (generator, model_config, description of the sources).
    """
    generator, model_config, gan_path = models.restore_generator(
        model_dir, 'gan', average=average)
    if gan_weight >= 1.0:
        return generator, model_config, os.path.basename(gan_path)
    pretrained, _, pretrain_path = models.restore_generator(
        model_dir, 'pretrain', average=average)
    for variable, start in zip(generator.weights, pretrained.weights):
        variable.assign(gan_weight * variable + (1.0 - gan_weight) * start)
    return generator, model_config, (
        f'{gan_weight:g} x gan/{os.path.basename(gan_path)} + '
        f'{1 - gan_weight:g} x pretrain/{os.path.basename(pretrain_path)}')


def _bundle(model_dir: str, output_dir: str, render_size: int,
            info: dict) -> str:
    # pylint: disable-next=g-import-not-at-top
    from chromagen_tf import bundled

    generator, model_config, sources = blend_generators(
        model_dir, _GAN_WEIGHT.value, _BUNDLE_AVERAGE.value)
    if model_config.color_head == 'bins':
        model_config = configs.with_decoding(
            model_config, _BUNDLE_TEMPERATURE.value or _TEMPERATURE.value,
            _BUNDLE_PRIOR_STRENGTH.value)
        info[bundled.BIN_PRIOR_KEY] = models.loading.read_log_prior(model_dir)
        if model_config.prior_strength and not info[bundled.BIN_PRIOR_KEY]:
            raise errors.UsageError(
                f'{model_dir} keeps no bin_prior.json, so the bundle cannot '
                'decode with --bundle_prior_strength > 0.')
    if _EMA_DECAY.value > 0:
        sources += (' (moving averages)' if _BUNDLE_AVERAGE.value else
                    ' (trained weights, not their averages)')
    info = dict(info, checkpoint=sources)
    return bundled.save(generator, model_config, output_dir,
                        render_size=render_size, info=info)


def _link_val_photos(data_dir: str, photos: str, output_dir: str) -> str:
    """Symlinks the val split's photos (record keys are relative paths)."""
    # pylint: disable-next=g-import-not-at-top
    from chromagen_tf.data import input_pipeline

    os.makedirs(output_dir, exist_ok=True)
    for key in input_pipeline.record_keys(data_dir, 'val'):
        target = os.path.join(output_dir, key)
        if not os.path.lexists(target):
            os.symlink(os.path.realpath(os.path.join(photos, key)), target)
    return output_dir


def _evaluate(report: str, image_dir: str, *extra: str) -> dict:
    if not os.path.exists(report):
        _run('chromagen_tf.evaluate', f'--image_dir={image_dir}',
             f'--report={report}', *extra)
    with open(report, encoding='utf-8') as f:
        return json.load(f)


def _summary(report: dict) -> dict:
    return {'num_images': report['num_images'], 'model': report['model'],
            'gray_baseline': report['gray_baseline']}


def _evaluate_stage(work: str, output: str, data_dir: str,
                    photos: str) -> None:
    """Measures the bundled model and records the results in model.json."""
    # pylint: disable=g-import-not-at-top
    from chromagen_tf import bundled

    val_photos = _link_val_photos(data_dir, photos,
                                  os.path.join(work, 'val_photos'))
    info = bundled.read_info(output)
    # Reports are reused by a re-run, so they sit in a folder named after
    # the weights they measured (a re-run with another --gan_weight or
    # longer training measures afresh) and their names carry the render
    # size.
    # The decoding settings and the prior live in model.json, beside the
    # weights: both name what was measured.
    digest = hashlib.sha256(json.dumps(
        [info['model'], info.get(bundled.BIN_PRIOR_KEY)],
        sort_keys=True).encode())
    with open(os.path.join(output, bundled.WEIGHTS_FILE), 'rb') as f:
        digest.update(f.read())
    weights_digest = digest.hexdigest()[:12]
    reports = os.path.join(work, 'reports', weights_digest)
    size = info['render_size']
    render = f'--render_size={size}'
    # The pretrained generator of a colour-bins model is decoded as the
    # bundle is, so that the two compare like for like.
    decoding = []
    if info['model'].get('color_head') == 'bins':
        decoding = [f'--temperature={info["model"]["temperature"]}',
                    f'--prior_strength={info["model"]["prior_strength"]}']
    metrics = {
        'val': _summary(_evaluate(os.path.join(reports, f'val_{size}.json'),
                                  val_photos, f'--model={output}')),
        'sample_photos': _summary(_evaluate(
            os.path.join(reports, f'sample_photos_{size}.json'),
            _HELD_OUT_DIR.value, f'--model={output}')),
        'val_l1_only': _summary(_evaluate(
            os.path.join(reports, f'val_pretrain_{size}.json'), val_photos,
            f'--model={os.path.join(work, "model")}', '--stage=pretrain',
            render, *decoding)),
        'val_gan': _summary(_evaluate(
            os.path.join(reports, f'val_gan_{size}.json'), val_photos,
            f'--model={os.path.join(work, "model")}', '--stage=gan',
            render, *decoding)),
        'render_size_curve': {},
    }
    for size in _CURVE_SIZES.value:
        report = _evaluate(os.path.join(reports, f'val_{size}.json'),
                           val_photos, f'--model={output}',
                           f'--render_size={size}')
        metrics['render_size_curve'][size] = report['model']
    if info['model'].get('color_head') == 'bins':
        metrics['decoding_curve'] = {}
        for setting in _DECODING_CURVE.value:
            temperature, prior_strength = setting.split(':')
            report = _evaluate(
                os.path.join(reports, f'val_{info["render_size"]}_t'
                             f'{temperature}_p{prior_strength}.json'),
                val_photos, f'--model={output}', render,
                f'--temperature={temperature}',
                f'--prior_strength={prior_strength}')
            metrics['decoding_curve'][setting] = report['model']
    info['metrics'] = metrics
    info['check'] = {'photos_dir': 'sample_photos',
                     'render_size': info['render_size'],
                     'per_photo': bundled.check_metrics(output,
                                                   _HELD_OUT_DIR.value)}
    files.write_json_atomically(os.path.join(output, bundled.INFO_FILE),
                                  info)
    print(f'Metrics recorded in {os.path.join(output, bundled.INFO_FILE)}',
          flush=True)


def run_recipe() -> str:
    """Runs the chosen stages; returns the bundled model's folder."""
    work = os.path.abspath(_WORK_DIR.value)
    photos = os.path.join(work, 'photos')
    data_dir = os.path.join(work, 'data')
    model_dir = os.path.join(work, 'model')
    train_flags = [
        f'--data_dir={data_dir}', f'--model_dir={model_dir}',
        f'--generator={_GENERATOR.value}',
        f'--discriminator_width={_DISCRIMINATOR_WIDTH.value}',
        f'--image_size={_IMAGE_SIZE.value}',
        f'--global_batch_size={_BATCH_SIZE.value}', f'--seed={_SEED.value}',
        '--steps_per_loop=50', '--summary_every=50', '--eval_every=500',
        '--checkpoint_every=500', '--max_checkpoints=20',
        '--num_eval_images=8',
        f'--lr_decay_fraction={_LR_DECAY_FRACTION.value}',
        f'--ema_decay={_EMA_DECAY.value}',
        f'--color_head={_COLOR_HEAD.value}',
        f'--temperature={_TEMPERATURE.value}']
    render_size = _RENDER_SIZE.value
    stages = _STAGES.value
    started = time.monotonic()
    if 'convert' in stages:
        linked, dropped = link_training_photos(
            _PHOTOS_DIR.value, _HELD_OUT_DIR.value, photos)
        print(f'{linked} training photos; {len(dropped)} near-duplicates of '
              f'held-out photos left out: {dropped}', flush=True)
        _run('data_prep.make_tfrecords', f'--image_dir={photos}',
             f'--output_dir={data_dir}',
             f'--image_size={_STORED_SIZE.value}', '--val_fraction=0.1',
             f'--seed={_SEED.value}', '--num_shards=4')
    if 'pretrain' in stages:
        _run('chromagen_tf.train', '--stage=pretrain', *train_flags,
             f'--train_steps={_PRETRAIN_STEPS.value}',
             f'--lr_g={_LR_PRETRAIN.value}',
             f'--min_crop_scale={_MIN_CROP_SCALE.value}')
    if 'gan' in stages:
        _run('chromagen_tf.train', '--stage=gan', *train_flags,
             f'--train_steps={_GAN_STEPS.value}',
             f'--lambda_l1={_LAMBDA_L1.value}',
             f'--lambda_ce={_LAMBDA_CE.value}',
             f'--min_crop_scale={_MIN_CROP_SCALE.value}')
    output = _OUTPUT_DIR.value
    if 'bundle' in stages:
        output = _bundle(model_dir, output, render_size, dict(
            training=dict(
                data='open photos (MODEL_CARD.md)',
                stored_size=_STORED_SIZE.value,
                image_size=_IMAGE_SIZE.value,
                global_batch_size=_BATCH_SIZE.value,
                pretrain_steps=_PRETRAIN_STEPS.value,
                gan_steps=_GAN_STEPS.value,
                lr_pretrain=_LR_PRETRAIN.value,
                lr_decay_fraction=_LR_DECAY_FRACTION.value,
                ema_decay=_EMA_DECAY.value,
                lambda_l1=_LAMBDA_L1.value,
                lambda_ce=_LAMBDA_CE.value,
                min_crop_scale=_MIN_CROP_SCALE.value,
                discriminator_width=_DISCRIMINATOR_WIDTH.value,
                gan_weight=_GAN_WEIGHT.value,
                seed=_SEED.value)))
        print(f'Bundled model written to {output}', flush=True)
    if 'evaluate' in stages:
        _evaluate_stage(work, output, data_dir, photos)
    print(f'Recipe stages {",".join(stages)} took '
          f'{(time.monotonic() - started) / 60:.1f} min.', flush=True)
    return output


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    try:
        run_recipe()
    except errors.ChromaGenError as error:
        errors.fail('recipe', error)
    except OSError as error:  # Linking photos, reading model.json.
        errors.fail('recipe', error, errors.RUNTIME_EXIT_CODE)


if __name__ == '__main__':
    app.run(main)
