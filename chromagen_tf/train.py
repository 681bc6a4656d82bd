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

import json

from absl import app
from absl import flags
from absl import logging

from chromagen_tf import configs
from chromagen_tf import distribute
from chromagen_tf import errors
from chromagen_tf import models

_STAGE = flags.DEFINE_enum(
    'stage', 'pretrain', configs.STAGES,
    'pretrain: generator with L1 only. gan: adversarial loss + lambda*L1, '
    'starting from the pretrained generator.')
_DATA_DIR = flags.DEFINE_string(
    'data_dir', None,
    'Folder with train-*.tfrecord and val-*.tfrecord from make_tfrecords.')
_MODEL_DIR = flags.DEFINE_string(
    'model_dir', None,
    'Run folder: checkpoints, summaries and configs go under '
    'MODEL_DIR/<stage>/. Shared by both stages.')
_GENERATOR = flags.DEFINE_enum(
    'generator', 'resnet18_unet', models.GENERATOR_NAMES,
    'Generator architecture. Default resnet18_unet; pix2pix_unet when '
    '--init_from=none. resnet18_unet_lite predicts ab at 1/4 resolution '
    'at about a seventh of the cost (the bundled model).')
_ENCODER_WEIGHTS = flags.DEFINE_string(
    'encoder_weights', 'none',
    "Pretrained ResNet encoder for the pretrain stage: 'none' (random), "
    "'imagenet' (download torchvision's weights), or a .weights.h5 file "
    'from chromagen_tf.tools.import_torchvision_resnet.')
_INIT_FROM = flags.DEFINE_string(
    'init_from', '',
    'GAN stage only: checkpoint (or folder) to copy the generator from. '
    "Empty: the latest MODEL_DIR/pretrain checkpoint. 'none': from scratch.")
_IMAGE_SIZE = flags.DEFINE_integer(
    'image_size', 256, 'Training crop size, a multiple of 32 (256 for '
    'pix2pix_unet).')
_WIDTH = flags.DEFINE_integer(
    'width', 64, 'Base channel width of the generator (64 is the real '
    'ResNet/pix2pix; small values make tiny test models).')
_DISCRIMINATOR_WIDTH = flags.DEFINE_integer(
    'discriminator_width', None,
    'Base channel width of the PatchGAN. Default: same as --width.')
_SPECTRAL_NORM = flags.DEFINE_bool(
    'spectral_norm', False, 'Spectral normalisation in the discriminator.')
_GLOBAL_BATCH_SIZE = flags.DEFINE_integer(
    'global_batch_size', 16, 'Batch size summed over all replicas.')
_EPOCHS = flags.DEFINE_integer(
    'epochs', 20, 'Epochs over the train split (ignored if --train_steps).')
_TRAIN_STEPS = flags.DEFINE_integer(
    'train_steps', 0, 'Total steps for this stage; overrides --epochs.')
_STEPS_PER_LOOP = flags.DEFINE_integer(
    'steps_per_loop', 50, 'Steps run per tf.function call.')
_LR_G = flags.DEFINE_float(
    'lr_g', None, 'Generator learning rate. Default: 1e-4 (pretrain), '
    '2e-4 (gan).')
_LR_D = flags.DEFINE_float(
    'lr_d', None, 'Discriminator learning rate. Default 2e-4.')
_BETA1 = flags.DEFINE_float(
    'beta1', None, 'Adam beta1. Default: 0.9 (pretrain), 0.5 (gan).')
_BETA2 = flags.DEFINE_float('beta2', None, 'Adam beta2. Default 0.999.')
_LAMBDA_L1 = flags.DEFINE_float(
    'lambda_l1', 100.0, 'Weight of L1 in the generator loss (pix2pix: 100).')
_GAN_LOSS = flags.DEFINE_enum(
    'gan_loss', 'vanilla', ('vanilla', 'lsgan'),
    'vanilla: BCE on logits (pix2pix). lsgan: least squares.')
_STRATEGY = flags.DEFINE_enum(
    'strategy', 'auto', distribute.STRATEGIES,
    'auto: TPU if --tpu, MirroredStrategy if >1 GPU, else one device. '
    'multi_worker reads TF_CONFIG.')
_TPU = flags.DEFINE_string('tpu', '', 'TPU name or grpc:// address.')
_SYNC_BATCH_NORM = flags.DEFINE_bool(
    'sync_batch_norm', False,
    'Synchronise BatchNorm statistics across replicas, so that N replicas '
    'normalise like one device with the global batch.')
_MIXED_PRECISION = flags.DEFINE_enum(
    'mixed_precision', 'auto', distribute.PRECISIONS,
    'auto: float16 on GPU, bfloat16 on TPU and on CPUs with native '
    'bfloat16 (AVX512_BF16 or AMX), float32 on other CPUs.')
_CHECKPOINT_EVERY = flags.DEFINE_integer(
    'checkpoint_every', 500, 'Steps between checkpoints.')
_MAX_CHECKPOINTS = flags.DEFINE_integer(
    'max_checkpoints', 5, 'Checkpoints kept per stage (the newest ones).',
    lower_bound=1)
_SUMMARY_EVERY = flags.DEFINE_integer(
    'summary_every', 50, 'Steps between TensorBoard scalar summaries.')
_EVAL_EVERY = flags.DEFINE_integer(
    'eval_every', 500, 'Steps between evaluations on the val split.')
_NUM_EVAL_IMAGES = flags.DEFINE_integer(
    'num_eval_images', 8, 'Val photos shown in TensorBoard at each eval.')
_SKIP_CORRUPT_RECORDS = flags.DEFINE_bool(
    'skip_corrupt_records', False,
    'Skip unreadable records (with a warning each) instead of failing.')
_AUGMENT = flags.DEFINE_bool(
    'augment', True, 'Random crop and horizontal flip while training.')
_MIN_CROP_SCALE = flags.DEFINE_float(
    'min_crop_scale', 1.0,
    'Below 1: train on random squares of a random fraction in '
    '[min_crop_scale, 1] of each stored photo\'s shorter side, resized to '
    '--image_size (scale augmentation, for small photo sets). 1: crops of '
    '--image_size pixels.', lower_bound=0.05, upper_bound=1.0)
_DETERMINISTIC_INPUT = flags.DEFINE_bool(
    'deterministic_input', False,
    'Read records in a reproducible order (interleave deterministic=True), '
    'at some cost in input throughput when files are slow to read.')
_SHUFFLE_BUFFER = flags.DEFINE_integer(
    'shuffle_buffer', 1000,
    'Records held by the shuffle buffer (1: read in file order).')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed for data order and crops.')

flags.mark_flags_as_required(['data_dir', 'model_dir'])
for _name in ('image_size', 'width', 'global_batch_size', 'steps_per_loop',
              'checkpoint_every', 'summary_every', 'eval_every',
              'num_eval_images', 'shuffle_buffer'):
    flags.register_validator(_name, lambda value: value > 0,
                             message=f'--{_name} must be positive.')
flags.register_validator('image_size', lambda value: value % 32 == 0,
                         message='--image_size must be a multiple of 32.')


def config_from_flags() -> configs.TrainConfig:
    """Turns the flags into the stage's frozen TrainConfig."""
    stage = _STAGE.value
    defaults = configs.STAGE_DEFAULTS[stage]
    generator = _GENERATOR.value
    if (stage == 'gan' and _INIT_FROM.value.lower() == 'none'
            and not _GENERATOR.present):
        generator = 'pix2pix_unet'
    model = configs.ModelConfig(
        generator=generator,
        width=_WIDTH.value,
        discriminator_width=_DISCRIMINATOR_WIDTH.value or _WIDTH.value,
        spectral_norm=_SPECTRAL_NORM.value,
    )

    def _pick(flag, name):
        return flag.value if flag.value is not None else defaults[name]

    return configs.TrainConfig(
        stage=stage,
        data_dir=_DATA_DIR.value,
        model_dir=_MODEL_DIR.value,
        model=model,
        encoder_weights=_ENCODER_WEIGHTS.value,
        init_from=_INIT_FROM.value,
        image_size=_IMAGE_SIZE.value,
        global_batch_size=_GLOBAL_BATCH_SIZE.value,
        epochs=_EPOCHS.value,
        train_steps=_TRAIN_STEPS.value,
        steps_per_loop=_STEPS_PER_LOOP.value,
        lr_g=_pick(_LR_G, 'lr_g'),
        lr_d=_pick(_LR_D, 'lr_d'),
        beta1=_pick(_BETA1, 'beta1'),
        beta2=_pick(_BETA2, 'beta2'),
        lambda_l1=_LAMBDA_L1.value,
        gan_loss=_GAN_LOSS.value,
        strategy=_STRATEGY.value,
        tpu=_TPU.value,
        sync_batch_norm=_SYNC_BATCH_NORM.value,
        mixed_precision=_MIXED_PRECISION.value,
        checkpoint_every=_CHECKPOINT_EVERY.value,
        max_checkpoints=_MAX_CHECKPOINTS.value,
        summary_every=_SUMMARY_EVERY.value,
        eval_every=_EVAL_EVERY.value,
        num_eval_images=_NUM_EVAL_IMAGES.value,
        skip_corrupt_records=_SKIP_CORRUPT_RECORDS.value,
        augment=_AUGMENT.value,
        min_crop_scale=_MIN_CROP_SCALE.value,
        shuffle_buffer=_SHUFFLE_BUFFER.value,
        deterministic_input=_DETERMINISTIC_INPUT.value,
        seed=_SEED.value,
    )


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
    # pylint: disable=g-import-not-at-top
    from chromagen_tf import trainer

    config = config_from_flags()
    try:
        result = trainer.train(config)
    except errors.ChromaGenError as error:
        logging.error('%s', error)
        errors.fail('train', error)
    print(f'{config.stage}: stopped at step {result["step"]} '
          f'({result["stopped"]}); checkpoint {result.get("checkpoint")}')
    print(f'final losses: {json.dumps(result["losses"], sort_keys=True)}')


if __name__ == '__main__':
    app.run(main)
