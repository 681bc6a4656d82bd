r"""Trains the colorizer: L1 pretraining, then the conditional GAN.

Usage (the tutorial's recipe on shards from data_prep.make_tfrecords):

  python -m chromagen_tf.train --stage=pretrain \
      --data_dir=data/coco10k --model_dir=runs/coco10k --epochs=20
  python -m chromagen_tf.train --stage=gan \
      --data_dir=data/coco10k --model_dir=runs/coco10k --epochs=20
  tensorboard --logdir=runs/coco10k

The GAN stage starts from the latest pretrain checkpoint in the same
--model_dir (or --init_from=CKPT); --init_from=none trains the pix2pix
baseline from scratch. Re-running the same command resumes. The full
configuration is saved in MODEL_DIR/<stage>/config.json.
"""

from chromagen_tf import cli_logging  # noqa: F401, I001 (before TensorFlow)
import dataclasses
import json

from absl import app
from absl import flags
from absl import logging

from chromagen_tf import configs
from chromagen_tf import errors
from chromagen_tf import models
from chromagen_tf.training import distribute

# The dataclasses hold the defaults; the flags show them and pass on only
# what the user gave.
_DEFAULT = configs.TrainConfig()
_MODEL_DEFAULT = configs.ModelConfig()

_STAGE = flags.DEFINE_enum(
    'stage',
    'pretrain',
    configs.STAGES,
    'pretrain: generator with L1 only. gan: adversarial loss + lambda*L1, '
    'starting from the pretrained generator.',
)
_DATA_DIR = flags.DEFINE_string(
    'data_dir',
    None,
    'Folder with train-*.tfrecord and val-*.tfrecord from make_tfrecords.',
)
_MODEL_DIR = flags.DEFINE_string(
    'model_dir',
    None,
    'Run folder: checkpoints, summaries and configs go under '
    'MODEL_DIR/<stage>/. Shared by both stages.',
)
_GENERATOR = flags.DEFINE_enum(
    'generator',
    _MODEL_DEFAULT.generator,
    models.GENERATOR_NAMES,
    'Generator architecture. Default resnet18_unet; pix2pix_unet when '
    '--init_from=none. resnet18_unet_lite predicts ab at 1/4 resolution '
    'at about a seventh of the cost (the bundled model).',
)
_ENCODER_WEIGHTS = flags.DEFINE_string(
    'encoder_weights',
    _DEFAULT.encoder_weights,
    "Pretrained ResNet encoder for the pretrain stage: 'none' (random), "
    "'imagenet' (download torchvision's weights), or a .weights.h5 file "
    'from chromagen_tf.tools.import_torchvision_resnet.',
)
_INIT_FROM = flags.DEFINE_string(
    'init_from',
    _DEFAULT.init_from,
    'Where a new stage copies its generator from: a checkpoint, a folder of '
    'checkpoints or a bundled model folder (e.g. chromagen_tf/bundled); the '
    'moving average, if the checkpoint kept one (--ema_decay). A model '
    'without hints can start a hint model (--hints=local): its hint '
    "convolution, or a hint branch's last layer, starts at zero. Empty: the "
    "GAN stage's latest MODEL_DIR/pretrain checkpoint, the pretrain stage's "
    "--encoder_weights. 'none': the GAN stage from scratch.",
)
_HINTS = flags.DEFINE_enum(
    'hints',
    _DEFAULT.hints,
    configs.HINT_SAMPLING,
    'local: train a model that takes colour hints, with hints simulated '
    'from each training photo (chromagen_tf/hints.py: none for 30% of the '
    'examples, 0% with --hint_branch, else a geometric count, p=1/8, of '
    "1-9 px patches of the true a*b*). none: an automatic model.",
)
flags.DEFINE_bool(
    'hint_branch',
    _MODEL_DEFAULT.hint_branch,
    'With --hints=local: build the hints as a branch over the frozen '
    'automatic generator (*_unet_lite; chromagen_tf/models/hint_branch.py) '
    'and train only the branch, on L1. Without hints the model is then the '
    'automatic one exactly. Needs --init_from an automatic model, trained '
    'and decoded (--temperature, --prior_strength) as that model is.',
)
_IMAGE_SIZE = flags.DEFINE_integer(
    'image_size',
    _DEFAULT.image_size,
    'Training crop size, a multiple of 32 (256 for pix2pix_unet).',
)
_WIDTH = flags.DEFINE_integer(
    'width',
    _MODEL_DEFAULT.width,
    'Base channel width of the generator (64 is the real '
    'ResNet/pix2pix; small values make tiny test models).',
)
_DISCRIMINATOR_WIDTH = flags.DEFINE_integer(
    'discriminator_width',
    None,
    'Base channel width of the PatchGAN. Default: same as --width.',
)
_SPECTRAL_NORM = flags.DEFINE_bool(
    'spectral_norm',
    _MODEL_DEFAULT.spectral_norm,
    'Spectral normalisation in the discriminator.',
)
_COLOR_HEAD = flags.DEFINE_enum(
    'color_head',
    _MODEL_DEFAULT.color_head,
    configs.COLOR_HEADS,
    'regression: the generator predicts a*b* and trains on L1. bins '
    '(*_unet_lite generators): it predicts a distribution over 529 a*b* '
    'bins, trains on their cross-entropy and outputs the annealed mean '
    '(Zhang et al. 2016).',
)
_TEMPERATURE = flags.DEFINE_float(
    'temperature',
    _MODEL_DEFAULT.temperature,
    'Annealed-mean temperature of --color_head=bins: 1 decodes the mean of '
    'the predicted bin distribution, towards 0 its most likely bin (vivid '
    'where that bin is a colour, gray where it is gray); Zhang et al.: '
    '0.38.',
    lower_bound=0.01,
)
_PRIOR_STRENGTH = flags.DEFINE_float(
    'prior_strength',
    _MODEL_DEFAULT.prior_strength,
    'With --color_head=bins: how much of the training set\'s prior over '
    'the bins (MODEL_DIR/bin_prior.json, written at the start of training) '
    'the decoder divides out, 0 (none) to 1 (roughly Zhang et al.\'s '
    'rebalancing); a decoding setting that colorize and evaluate can also '
    'change.',
    lower_bound=0.0,
)
_GLOBAL_BATCH_SIZE = flags.DEFINE_integer(
    'global_batch_size',
    _DEFAULT.global_batch_size,
    'Batch size summed over all replicas.',
)
_EPOCHS = flags.DEFINE_integer(
    'epochs',
    _DEFAULT.epochs,
    'Epochs over the train split (ignored if --train_steps).',
)
_TRAIN_STEPS = flags.DEFINE_integer(
    'train_steps',
    _DEFAULT.train_steps,
    'Total steps for this stage; overrides --epochs.',
)
_STEPS_PER_LOOP = flags.DEFINE_integer(
    'steps_per_loop', _DEFAULT.steps_per_loop, 'Steps run per tf.function call.'
)
_LR_G = flags.DEFINE_float(
    'lr_g',
    None,
    'Generator learning rate. Default: '
    f"{configs.STAGE_DEFAULTS['pretrain']['lr_g']} (pretrain), "
    f"{configs.STAGE_DEFAULTS['gan']['lr_g']} (gan).",
)
_LR_D = flags.DEFINE_float(
    'lr_d',
    None,
    'Discriminator learning rate. Default: '
    f"{configs.STAGE_DEFAULTS['gan']['lr_d']}.",
)
_BETA1 = flags.DEFINE_float(
    'beta1',
    None,
    'Adam beta1. Default: '
    f"{configs.STAGE_DEFAULTS['pretrain']['beta1']} (pretrain), "
    f"{configs.STAGE_DEFAULTS['gan']['beta1']} (gan).",
)
_BETA2 = flags.DEFINE_float(
    'beta2',
    None,
    f"Adam beta2. Default: {configs.STAGE_DEFAULTS['gan']['beta2']}.",
)
_LR_DECAY_FRACTION = flags.DEFINE_float(
    'lr_decay_fraction',
    _DEFAULT.lr_decay_fraction,
    "Over this last fraction of the stage's steps both learning rates "
    'fall linearly to zero, as in pix2pix (0.5 there); 0 keeps them '
    'constant.',
    lower_bound=0.0,
    upper_bound=1.0,
)
_EMA_DECAY = flags.DEFINE_float(
    'ema_decay',
    _DEFAULT.ema_decay,
    "Keep an exponential moving average of the generator's weights with "
    'this decay (e.g. 0.999, a window of about 1000 steps; the first steps '
    'use min(decay, (1 + step) / (10 + step))); evaluation, export and the '
    'next stage then use the average. 0 keeps none.',
    lower_bound=0.0,
    upper_bound=0.9999,
)
_LAMBDA_L1 = flags.DEFINE_float(
    'lambda_l1',
    _DEFAULT.lambda_l1,
    'Weight of L1 in the generator loss (pix2pix: 100).',
)
_LAMBDA_CE = flags.DEFINE_float(
    'lambda_ce',
    _DEFAULT.lambda_ce,
    'With --color_head=bins, weight of the colour-bin cross-entropy in the '
    "GAN stage's generator loss, in place of --lambda_l1 * L1.",
    lower_bound=0.0,
)
_GAN_LOSS = flags.DEFINE_enum(
    'gan_loss',
    _DEFAULT.gan_loss,
    ('vanilla', 'lsgan'),
    'vanilla: BCE on logits (pix2pix). lsgan: least squares.',
)
_STRATEGY = flags.DEFINE_enum(
    'strategy',
    _DEFAULT.strategy,
    distribute.STRATEGIES,
    'auto: TPU if --tpu, MirroredStrategy if >1 GPU, else one device. '
    'multi_worker reads TF_CONFIG.',
)
_TPU = flags.DEFINE_string('tpu', _DEFAULT.tpu, 'TPU name or grpc:// address.')
_SYNC_BATCH_NORM = flags.DEFINE_bool(
    'sync_batch_norm',
    _DEFAULT.sync_batch_norm,
    'Synchronise BatchNorm statistics across replicas, so that N replicas '
    'normalise like one device with the global batch.',
)
_MIXED_PRECISION = flags.DEFINE_enum(
    'mixed_precision',
    _DEFAULT.mixed_precision,
    distribute.PRECISIONS,
    'auto: float16 on GPU, bfloat16 on TPU and on CPUs with native '
    'bfloat16 (AVX512_BF16 or AMX), float32 on other CPUs.',
)
_CHECKPOINT_EVERY = flags.DEFINE_integer(
    'checkpoint_every', _DEFAULT.checkpoint_every, 'Steps between checkpoints.'
)
_MAX_CHECKPOINTS = flags.DEFINE_integer(
    'max_checkpoints',
    _DEFAULT.max_checkpoints,
    'Checkpoints kept per stage (the newest ones).',
    lower_bound=1,
)
_SUMMARY_EVERY = flags.DEFINE_integer(
    'summary_every',
    _DEFAULT.summary_every,
    'Steps between TensorBoard scalar summaries.',
)
_EVAL_EVERY = flags.DEFINE_integer(
    'eval_every',
    _DEFAULT.eval_every,
    'Steps between evaluations on the val split.',
)
_NUM_EVAL_IMAGES = flags.DEFINE_integer(
    'num_eval_images',
    _DEFAULT.num_eval_images,
    'Val photos shown in TensorBoard at each eval.',
)
_SKIP_CORRUPT_RECORDS = flags.DEFINE_bool(
    'skip_corrupt_records',
    _DEFAULT.skip_corrupt_records,
    'Skip unreadable records (with a warning each) instead of failing.',
)
_AUGMENT = flags.DEFINE_bool(
    'augment',
    _DEFAULT.augment,
    'Random crop and horizontal flip while training.',
)
_MIN_CROP_SCALE = flags.DEFINE_float(
    'min_crop_scale',
    _DEFAULT.min_crop_scale,
    'Below 1: train on random squares of a random fraction in '
    '[min_crop_scale, 1] of each stored photo\'s shorter side, resized to '
    '--image_size (scale augmentation, for small photo sets). 1: crops of '
    '--image_size pixels.',
    lower_bound=0.05,
    upper_bound=1.0,
)
_DETERMINISTIC_INPUT = flags.DEFINE_bool(
    'deterministic_input',
    _DEFAULT.deterministic_input,
    'Read records in a reproducible order (interleave deterministic=True), '
    'at some cost in input throughput when files are slow to read.',
)
_SHUFFLE_BUFFER = flags.DEFINE_integer(
    'shuffle_buffer',
    _DEFAULT.shuffle_buffer,
    'Records held by the shuffle buffer (1: read in file order).',
)
_SEED = flags.DEFINE_integer(
    'seed', _DEFAULT.seed, 'Seed for data order and crops.'
)

flags.mark_flags_as_required(['data_dir', 'model_dir'])
for _name in (
    'image_size',
    'width',
    'global_batch_size',
    'steps_per_loop',
    'checkpoint_every',
    'summary_every',
    'eval_every',
    'num_eval_images',
    'shuffle_buffer',
):
    flags.register_validator(
        _name, lambda value: value > 0, message=f'--{_name} must be positive.'
    )
flags.register_validator(
    'image_size',
    lambda value: value % 32 == 0,
    message='--image_size must be a multiple of 32.',
)

# Flags that set a TrainConfig field of the same name (the model's apart).
# `hints` comes from --hints; `hint_correction` is a decoding setting chosen
# after training (export, colorize and evaluate take it), so a branch always
# trains with all of its correction.
_TRAIN_FIELDS = tuple(
    field.name
    for field in dataclasses.fields(configs.TrainConfig)
    if field.name not in ('stage', 'model')
)
_MODEL_FIELDS = tuple(
    field.name
    for field in dataclasses.fields(configs.ModelConfig)
    if field.name not in ('hints', 'hint_correction')
)


def config_from_flags() -> configs.TrainConfig:
    """The stage's TrainConfig: its defaults, and the flags the user gave."""
    stage = _STAGE.value
    passed = {
        name: flags.FLAGS[name].value
        for name in _MODEL_FIELDS
        if flags.FLAGS[name].present
    }
    if (
        stage == 'gan'
        and _INIT_FROM.value.lower() == 'none'
        and 'generator' not in passed
    ):
        passed['generator'] = models.BASELINE_GENERATOR
    passed.setdefault(
        'discriminator_width', passed.get('width', _MODEL_DEFAULT.width)
    )
    passed['hints'] = _HINTS.value != 'none'
    overrides = {
        name: flags.FLAGS[name].value
        for name in _TRAIN_FIELDS
        if flags.FLAGS[name].present
    }
    return configs.for_stage(
        stage, model=configs.ModelConfig(**passed), **overrides
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    # pylint: disable=g-import-not-at-top
    from chromagen_tf.training import trainer

    try:
        config = config_from_flags()
        result = trainer.train(config)
    except errors.ChromaGenError as error:
        logging.error('%s', error)
        errors.fail('train', error)
    print(
        f'{config.stage}: stopped at step {result["step"]} '
        f'({result["stopped"]}); checkpoint {result.get("checkpoint")}'
    )
    print(f'final losses: {json.dumps(result["losses"], sort_keys=True)}')


if __name__ == '__main__':
    app.run(main)
