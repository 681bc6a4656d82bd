"""The models the bundled-model recipe can train, one config each.

`RecipeConfig()` is the default: the automatic colour-bins model that the
shipped model in chromagen_tf/bundled is built on. The other configs are
derived from it and differ only where they say so:

  bins        the automatic colour-bins model (the default), shipped as
              the frozen part of hint_branch;
  regression  the L1 (regression) model shipped before it;
  hints       the bins model fine-tuned into a hint model with hint
              channels (chromagen_tf/hints.py), shipped before hint_branch;
  hint_branch the bins model, frozen, with a hint branch trained over it
              (models/hint_branch.py); what ships now.

`chromagen_tf.bundled.recipe --config=NAME` picks one, and `--override`
changes single fields (`with_overrides`). `RecipePaths` holds where a run
reads and writes (`recipe_paths`, from the command line). The sources of
the values are in MODEL_CARD.md and BENCHMARKS.md.
"""

import dataclasses
import os
import typing
from typing import Optional

from chromagen_tf import configs
from chromagen_tf import errors
from chromagen_tf import sample_photos

STAGES = ('convert', 'pretrain', 'gan', 'bundle', 'evaluate')
# init_from value: start from the model that ships in chromagen_tf/bundled.
SHIPPED_MODEL = 'shipped'


@dataclasses.dataclass(frozen=True)
class RecipeConfig:
    """How one bundled model is trained, bundled and measured."""

    generator: str = 'resnet18_unet_lite'
    color_head: str = 'bins'
    # chromagen_tf.train --hints: 'local' trains a hint model.
    hints: str = 'none'
    # chromagen_tf.train --hint_branch: the hints as a branch over the
    # frozen automatic generator (models/hint_branch.py).
    hint_branch: bool = False
    # What the pretrain stage starts from (chromagen_tf.train --init_from):
    # empty for random weights, SHIPPED_MODEL, or a bundled model folder or
    # checkpoint.
    init_from: str = ''
    # Size the photos are stored at; training takes random squares of
    # min_crop_scale to 1 of it, resized to image_size.
    stored_size: int = 256
    # Scale augmentation: with 446 photos and flips alone, the val L1 of the
    # regression model stopped improving after 1500 of 6500 steps while the
    # train L1 halved (MODEL_CARD.md).
    min_crop_scale: float = 0.4
    image_size: int = 128
    global_batch_size: int = 16  # The pix2pix tutorial's.
    pretrain_steps: int = 3000
    gan_steps: int = 2000
    # Twice the tutorial's 1e-4, whose encoder started from ImageNet
    # weights; ours starts random.
    lr_pretrain: float = 2e-4
    # Both stages hold their learning rate, then decay it linearly to zero
    # over this last fraction of their steps. pix2pix's 0.5 was less
    # accurate in one run here (BENCHMARKS.md, "Learning-rate decay").
    lr_decay_fraction: float = 0.0
    # Moving average of the generator weights, kept by both stages.
    ema_decay: float = 0.999
    # Bundle the moving averages (True) or the trained weights.
    bundle_average: bool = True
    # 32 keeps the PatchGAN's 70x70 receptive field at a quarter of the
    # cost of 64.
    discriminator_width: int = 32
    # Longer side the bundle colorizes at, chosen from the render-size
    # curve the evaluate stage measures (MODEL_CARD.md).
    render_size: int = 256
    # The bundled weights: this fraction of the GAN generator plus the rest
    # of the pretrained one (WiSE-FT). 0: on the val split no blend of the
    # colour-bins stages beat the pretrained generator (MODEL_CARD.md).
    gan_weight: float = 0.0
    lambda_l1: float = 100.0  # pix2pix Sec. 3.3.
    lambda_ce: float = 5.0
    # The annealed-mean temperature training evaluates at.
    temperature: float = 0.38
    # The prior adjustment training decodes with (chromagen_tf.train
    # --prior_strength); a hint branch trains at its bundle's.
    train_prior_strength: float = 0.0
    # Decoding recorded in the bundle, chosen from the decoding curve
    # (MODEL_CARD.md); bundle_temperature None means `temperature`.
    bundle_temperature: Optional[float] = None
    bundle_prior_strength: float = 0.25
    # A hint branch's correction scale recorded in the bundle
    # (ModelConfig.hint_correction; trained at 1).
    bundle_hint_correction: float = 1.0
    # TEMPERATURE:PRIOR_STRENGTH settings and render sizes at which the
    # evaluate stage measures the val photos.
    decoding_curve: tuple[str, ...] = (
        '0.38:0',
        '1:0',
        '0.38:0.1',
        '0.38:0.2',
        '0.38:0.25',
        '1:0.25',
        '0.38:0.5',
    )
    curve_sizes: tuple[int, ...] = (128, 160, 192, 224, 256, 320)
    seed: int = 0
    stages: tuple[str, ...] = STAGES

    def __post_init__(self):
        checks = (
            (
                self.color_head in configs.COLOR_HEADS,
                f'color_head must be one of {configs.COLOR_HEADS}',
            ),
            (
                self.hints in configs.HINT_SAMPLING,
                f'hints must be one of {configs.HINT_SAMPLING}',
            ),
            (
                not self.hint_branch
                or (
                    self.train_prior_strength == self.bundle_prior_strength
                    and self.bundle_temperature in (None, self.temperature)
                ),
                'a hint branch is bundled as it trains: train_prior_strength '
                'must equal bundle_prior_strength, and bundle_temperature '
                'be unset',
            ),
            (
                self.hint_branch or self.bundle_hint_correction == 1.0,
                'bundle_hint_correction needs hint_branch',
            ),
            (
                self.bundle_hint_correction >= 0.0,
                'bundle_hint_correction must be >= 0',
            ),
            (
                0.0 < self.min_crop_scale <= 1.0,
                'min_crop_scale must be in (0, 1]',
            ),
            (
                self.image_size % 32 == 0 and self.image_size > 0,
                'image_size must be a positive multiple of 32',
            ),
            (
                min(
                    self.stored_size,
                    self.global_batch_size,
                    self.pretrain_steps,
                    self.render_size,
                )
                > 0,
                'stored_size, global_batch_size, pretrain_steps and '
                'render_size must be positive',
            ),
            (self.gan_steps >= 0, 'gan_steps must be >= 0'),
            (
                0.0 <= self.lr_decay_fraction <= 1.0,
                'lr_decay_fraction must be in [0, 1]',
            ),
            (
                0.0 <= self.ema_decay <= 0.9999,
                'ema_decay must be in [0, 0.9999]',
            ),
            (0.0 <= self.gan_weight <= 1.0, 'gan_weight must be in [0, 1]'),
            (
                self.gan_steps > 0 or self.gan_weight == 0.0,
                'gan_weight must be 0 without a GAN stage (gan_steps=0)',
            ),
            (
                self.gan_steps > 0 or 'gan' not in self.stages,
                'stages must leave out gan when gan_steps is 0',
            ),
            (set(self.stages) <= set(STAGES), f'stages must be among {STAGES}'),
            (
                self.temperature >= 0.01
                and (
                    self.bundle_temperature is None
                    or self.bundle_temperature >= 0.01
                ),
                'temperature and bundle_temperature must be >= 0.01',
            ),
            (
                self.bundle_prior_strength >= 0.0,
                'bundle_prior_strength must be >= 0',
            ),
            (
                all(
                    len(setting.split(':')) == 2
                    for setting in self.decoding_curve
                ),
                'decoding_curve entries must be TEMPERATURE:PRIOR_STRENGTH',
            ),
        )
        for holds, message in checks:
            if not holds:
                raise errors.UsageError(f'Recipe config: {message}.')


@dataclasses.dataclass(frozen=True)
class RecipePaths:
    """Where a run of the recipe reads and writes."""

    photos_dir: str  # Training photos (the open photos set).
    held_out_dir: str  # Photos kept out of training and measured on.
    work_dir: str  # Shards, checkpoints, reports, TensorBoard logs.
    output_dir: str  # The bundled model.

    @property
    def linked_photos(self) -> str:
        return os.path.join(self.work_dir, 'photos')

    @property
    def data_dir(self) -> str:
        return os.path.join(self.work_dir, 'data')

    @property
    def model_dir(self) -> str:
        return os.path.join(self.work_dir, 'model')


def recipe_paths(
    config_name: str,
    photos_dir: str,
    held_out_dir: Optional[str] = None,
    work_dir: Optional[str] = None,
    output_dir: Optional[str] = None,
) -> RecipePaths:
    """A run's paths, absolute, with the defaults for those not given.

    The work dir defaults to runs/bundled/CONFIG_NAME under the current
    directory, the bundle to WORK_DIR/bundled_model (never into the
    installed package), the held-out photos to the sample photos.
    """
    work_dir = os.path.abspath(
        work_dir or os.path.join('runs', 'bundled', config_name)
    )
    return RecipePaths(
        photos_dir=os.path.abspath(photos_dir),
        held_out_dir=os.path.abspath(held_out_dir or sample_photos.folder()),
        work_dir=work_dir,
        output_dir=os.path.abspath(
            output_dir or os.path.join(work_dir, 'bundled_model')
        ),
    )


def _bins() -> RecipeConfig:
    return RecipeConfig()


def _regression() -> RecipeConfig:
    # The L1 generator blended half way with its GAN generator.
    return dataclasses.replace(
        RecipeConfig(),
        color_head='regression',
        gan_weight=0.5,
        ema_decay=0.0,
        bundle_prior_strength=0.0,
    )


def _hints() -> RecipeConfig:
    # The colour-bins model of --config=bins (run it first), all of it
    # fine-tuned with hint channels that start at zero. No GAN stage.
    # Shipped before the hint branch: its automatic colours drifted (paler,
    # and on sample_photos 0.6 dB below the bins model; docs/experiments.md).
    return dataclasses.replace(
        RecipeConfig(),
        hints='local',
        init_from=os.path.join('runs', 'bundled', 'bins', 'bundled_model'),
        pretrain_steps=3000,
        lr_pretrain=1e-4,
        gan_steps=0,
        render_size=128,
        bundle_prior_strength=0.0,
        stages=('convert', 'pretrain', 'bundle', 'evaluate'),
    )


def _hint_branch() -> RecipeConfig:
    # The colour-bins model of --config=bins (run it first), frozen, with a
    # hint branch trained over it: without hints it is that model exactly
    # (same decoding), with them it starts as a per-cell version of the
    # edge-blind spread of inference/hint_evaluation.py. Trained at the
    # render size and the decoding it ships with, so that the branch
    # corrects the colours users see. No GAN stage.
    return dataclasses.replace(
        RecipeConfig(),
        hints='local',
        hint_branch=True,
        init_from=os.path.join('runs', 'bundled', 'bins', 'bundled_model'),
        image_size=256,
        min_crop_scale=0.6,
        pretrain_steps=4000,
        lr_pretrain=2e-4,
        lr_decay_fraction=0.25,
        gan_steps=0,
        train_prior_strength=0.25,
        # The one-standard-error rule on the val split at 3 and 10 hints:
        # the smallest scale within one standard error of the best
        # (bench/bench_hint_correction.py; BENCHMARKS.md).
        bundle_hint_correction=0.8,
        stages=('convert', 'pretrain', 'bundle', 'evaluate'),
    )


CONFIGS = {
    'bins': _bins,
    'regression': _regression,
    'hints': _hints,
    'hint_branch': _hint_branch,
}


def get_config(name: str) -> RecipeConfig:
    """The named config.

    Raises:
      errors.UsageError: no config has that name.
    """
    if name not in CONFIGS:
        raise errors.UsageError(
            f'No recipe config {name!r}; there are {sorted(CONFIGS)}.'
        )
    return CONFIGS[name]()


def _parse(field: dataclasses.Field, text: str):
    kind = typing.get_type_hints(RecipeConfig)[field.name]
    if kind == Optional[float]:
        return None if text.lower() in ('', 'none') else float(text)
    if kind is bool:
        if text.lower() not in ('true', 'false', '1', '0'):
            raise ValueError(f'{text!r} is not true or false')
        return text.lower() in ('true', '1')
    if typing.get_origin(kind) is tuple:
        (item, _) = typing.get_args(kind)
        return tuple(
            item(part.strip()) for part in text.split(',') if part.strip()
        )
    return kind(text)


def with_overrides(config: RecipeConfig, overrides: list[str]) -> RecipeConfig:
    """The config with FIELD=VALUE overrides applied.

    Tuples take comma-separated values, booleans true or false.

    Raises:
      errors.UsageError: an unknown field, or a value that does not parse
        or is out of range, named in the message.
    """
    fields = {field.name: field for field in dataclasses.fields(config)}
    changes = {}
    for override in overrides:
        name, equals, text = override.partition('=')
        name = name.strip()
        if not equals or name not in fields:
            raise errors.UsageError(
                f'--override {override!r}: expected FIELD=VALUE with FIELD '
                f'one of {sorted(fields)}.'
            )
        try:
            changes[name] = _parse(fields[name], text.strip())
        except ValueError as error:
            raise errors.UsageError(f'--override {name}: {error}.') from None
    return dataclasses.replace(config, **changes)
