"""Configuration objects for training, and their JSON form in a model_dir.

Two frozen dataclasses carry every hyperparameter:

  * `ModelConfig`, the architecture. It is written once per model_dir as
    `MODEL_DIR/config.json`; every later run in the same model_dir (either
    stage, the export, the colorize tool) reads it to rebuild the networks,
    and a run that asks for a different architecture fails naming the field.
  * `TrainConfig`, one stage's full configuration (it embeds the
    `ModelConfig`). It is written as `MODEL_DIR/<stage>/config.json`; a
    restarted stage must match it, except for the fields in
    `RESUMABLE_FIELDS` (how long to train, how often to log), which a
    resumed job may change.

The dataclasses hold the only defaults: the recipe of the tutorial this
project follows (Shariatnia 2020, after pix2pix): 256x256, batch 16,
pretraining with Adam 1e-4, the GAN stage with Adam 2e-4 and beta1 0.5,
lambda_l1 100. The optimiser settings depend on the stage: left unset they
take `STAGE_DEFAULTS[stage]`, so `TrainConfig(stage='gan')` gets the GAN
recipe however it is built. Named factories derive the variants, after
big_vision's `get_config(runlocal=...)`:

    configs.pretrain(data_dir=..., model_dir=...)
    configs.gan(data_dir=..., model_dir=...)
    configs.tiny('gan', data_dir=..., model_dir=...)  # tests, the demo
"""

import dataclasses
import json
from typing import Any, Optional

from chromagen_tf import errors
from chromagen_tf import files

STAGES = ('pretrain', 'gan')
# How training gives a hint model its hints: 'local' simulates them from
# each example's ground truth (chromagen_tf/hints.py), 'none' gives none.
HINT_SAMPLING = ('none', 'local')
COLOR_HEADS = ('regression', 'bins')
# The generators that can predict ab as colour bins: those whose head works
# at 1/4 resolution (models/unet_lite.py).
BINS_GENERATORS = ('resnet18_unet_lite', 'resnet34_unet_lite')
MODEL_CONFIG_FILE = 'config.json'
STAGE_CONFIG_FILE = 'config.json'

# Per-stage optimiser defaults (tutorial: pretrain Adam lr 1e-4 with Keras'
# default betas; GAN stage Adam lr 2e-4, beta1 0.5, beta2 0.999 as pix2pix).
STAGE_DEFAULTS = {
    'pretrain': dict(lr_g=1e-4, lr_d=2e-4, beta1=0.9, beta2=0.999),
    'gan': dict(lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999),
}


class ConfigMismatchError(errors.UsageError, ValueError):
    """A run's configuration is incompatible with what model_dir holds."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The networks' architecture and a colour-bins model's decoding.

    The decoding settings (temperature, prior_strength, hint_correction)
    change no weight's shape: any checkpoint may be decoded at other ones.
    The GAN stage trains through the first two, though (the discriminator
    sees the decoded a*b*), so a GAN-stage generator is best decoded at the
    settings it was trained at.
    """

    generator: str = 'resnet18_unet'
    width: int = 64
    discriminator_width: int = 64
    spectral_norm: bool = False
    # 'regression' predicts ab; 'bins' (the *_unet_lite generators) a
    # distribution over ab bins, decoded by its annealed mean at
    # `temperature` (Zhang et al. 2016, who chose T = 0.38).
    color_head: str = 'regression'
    temperature: float = 0.38
    # How much of the training set's log prior over the bins the decoder
    # subtracts from the logits (0: none; 1: roughly Zhang's rebalancing,
    # applied after training; training/bin_prior.py).
    prior_strength: float = 0.0
    # Whether the generator takes colour hints beside L: a hint a*b* map
    # and its mask (Zhang et al. 2017; chromagen_tf/hints.py).
    hints: bool = False
    # A hint model built as a hint branch over a frozen automatic generator
    # (*_unet_lite only; models/hint_branch.py): without hints it is the
    # automatic generator exactly, and only the branch trains.
    hint_branch: bool = False
    # How much of a hint branch's learned correction to the edge-blind
    # spread is applied (1: all of it, as trained; 0: the spread alone). A
    # decoding setting: it changes no weight. The bundled model's is chosen
    # on the val split (MODEL_CARD.md, "Colour hints").
    hint_correction: float = 1.0

    def __post_init__(self):
        if self.color_head not in COLOR_HEADS:
            raise errors.UsageError(
                f'color_head must be one of {COLOR_HEADS}, got '
                f'{self.color_head!r}'
            )
        if self.color_head == 'bins' and self.generator not in BINS_GENERATORS:
            raise errors.UsageError(
                'color_head=bins needs a *_unet_lite generator (it predicts '
                f'at 1/4 resolution); {self.generator} predicts a*b* '
                'directly. Pass --generator=resnet18_unet_lite.'
            )
        if self.hint_branch and not (
            self.hints and self.generator in BINS_GENERATORS
        ):
            raise errors.UsageError(
                'hint_branch=True needs hints=True and a *_unet_lite '
                f'generator, got hints={self.hints}, {self.generator}.'
            )
        if self.hint_correction != 1.0 and not self.hint_branch:
            raise errors.UsageError(
                'hint_correction scales a hint branch\'s correction; this '
                'model has no hint branch.'
            )
        if not self.hint_correction >= 0:  # NaN too.
            raise errors.UsageError(
                f'hint_correction must be >= 0, got {self.hint_correction}.'
            )
        if not self.temperature > 0:  # NaN too.
            raise errors.UsageError(
                f'temperature must be positive, got {self.temperature}.'
            )
        if not self.prior_strength >= 0:  # NaN too.
            raise errors.UsageError(
                f'prior_strength must be >= 0, got {self.prior_strength}.'
            )


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one training stage needs. See chromagen_tf/train.py flags."""

    stage: str = 'pretrain'
    data_dir: str = ''
    model_dir: str = ''
    model: ModelConfig = ModelConfig()
    encoder_weights: str = 'none'
    init_from: str = ''
    image_size: int = 256
    global_batch_size: int = 16
    epochs: int = 20  # The tutorial's; train_steps overrides it.
    train_steps: int = 0
    steps_per_loop: int = 50
    # None: the stage's recipe, STAGE_DEFAULTS[stage].
    lr_g: Optional[float] = None
    lr_d: Optional[float] = None
    beta1: Optional[float] = None
    beta2: Optional[float] = None
    # The last fraction of the stage's steps over which both learning rates
    # fall linearly to zero (pix2pix: half); 0 keeps them constant.
    lr_decay_fraction: float = 0.0
    # Decay of an exponential moving average of the generator's weights,
    # kept beside them and used by evaluation and export; 0 keeps none.
    ema_decay: float = 0.0
    lambda_l1: float = 100.0  # pix2pix, Isola et al. 2017, Sec. 4.
    # With color_head='bins' the GAN stage's reconstruction term is the
    # colour-bin cross-entropy with this weight instead of lambda_l1 * L1.
    # 5 puts it at pix2pix's ratio to the adversarial term: after
    # pretraining the cross-entropy is ~2 nats and L1 ~0.08 (x100 = 8).
    lambda_ce: float = 5.0
    gan_loss: str = 'vanilla'
    strategy: str = 'auto'
    tpu: str = ''
    sync_batch_norm: bool = False
    mixed_precision: str = 'auto'
    checkpoint_every: int = 500
    max_checkpoints: int = 5
    summary_every: int = 50
    eval_every: int = 500
    num_eval_images: int = 8
    skip_corrupt_records: bool = False
    seed: int = 0
    shuffle_buffer: int = 1000
    augment: bool = True
    min_crop_scale: float = 1.0
    deterministic_input: bool = False
    hints: str = 'none'

    def __post_init__(self):
        if self.stage not in STAGES:
            raise errors.UsageError(
                f'stage must be one of {STAGES}, got {self.stage!r}'
            )
        if self.hints not in HINT_SAMPLING:
            raise errors.UsageError(
                f'hints must be one of {HINT_SAMPLING}, got {self.hints!r}'
            )
        if self.hints != 'none' and not self.model.hints:
            raise errors.UsageError(
                f'hints={self.hints} trains a hint model: set the model '
                "config's hints=True."
            )
        if not 0.0 <= self.lr_decay_fraction <= 1.0:
            raise errors.UsageError(
                'lr_decay_fraction must be in [0, 1], got '
                f'{self.lr_decay_fraction}'
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise errors.UsageError(
                f'ema_decay must be in [0, 1), got {self.ema_decay}'
            )
        for name, value in STAGE_DEFAULTS[self.stage].items():
            if getattr(self, name) is None:
                object.__setattr__(self, name, value)

    @property
    def stage_dir(self) -> str:
        return stage_dir(self.model_dir, self.stage)


def stage_dir(model_dir: str, stage: str) -> str:
    """MODEL_DIR/<stage>: a stage's config, checkpoints and events."""
    if stage not in STAGES:
        raise errors.UsageError(f'stage must be one of {STAGES}, got {stage!r}')
    return files.join(model_dir, stage)


def pretrain(**overrides) -> TrainConfig:
    """The L1 pretraining stage (Adam 1e-4, beta1 0.9)."""
    return TrainConfig(stage='pretrain', **overrides)


def gan(**overrides) -> TrainConfig:
    """The GAN stage (Adam 2e-4, beta1 0.5, lambda_l1 100)."""
    return TrainConfig(stage='gan', **overrides)


def for_stage(stage: str, **overrides) -> TrainConfig:
    return TrainConfig(stage=stage, **overrides)


# A model and a run small enough for a test or the demo to train in
# seconds on a CPU, through the same code path (big_vision's runlocal).
TINY = dict(
    model=ModelConfig(width=8, discriminator_width=8),
    image_size=32,
    global_batch_size=4,
    train_steps=2,
    steps_per_loop=1,
    summary_every=1,
    eval_every=2,
    checkpoint_every=1,
    num_eval_images=2,
    mixed_precision='float32',
    strategy='one_device',
)


def tiny(stage: str = 'pretrain', **overrides) -> TrainConfig:
    """A tiny run of either stage; overrides replace TINY's values."""
    return TrainConfig(stage=stage, **dict(TINY, **overrides))


# Fields a resumed stage may change without invalidating its checkpoint.
RESUMABLE_FIELDS = frozenset(
    {
        'epochs',
        'train_steps',
        'steps_per_loop',
        'checkpoint_every',
        'max_checkpoints',
        'summary_every',
        'eval_every',
        'num_eval_images',
        'skip_corrupt_records',
        'data_dir',
        'model_dir',
        'strategy',
        'tpu',
        'init_from',
        'encoder_weights',
    }
)


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def model_config_from_dict(values: dict[str, Any]) -> ModelConfig:
    known = {field.name for field in dataclasses.fields(ModelConfig)}
    unknown = set(values) - known
    if unknown:
        raise ConfigMismatchError(
            f'Unknown model config field(s) {sorted(unknown)}; was this '
            'model_dir written by a newer ChromaGen?'
        )
    return ModelConfig(**values)


def train_config_from_dict(values: dict[str, Any]) -> TrainConfig:
    values = dict(values)
    values['model'] = model_config_from_dict(values.get('model', {}))
    return TrainConfig(**values)


def _flatten(values: dict[str, Any], prefix: str = '') -> dict[str, Any]:
    flat = {}
    for name, value in values.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, prefix=f'{prefix}{name}.'))
        else:
            flat[prefix + name] = value
    return flat


def _first_difference(
    saved: dict[str, Any], wanted: dict[str, Any], ignore=frozenset()
) -> Optional[tuple[str, Any, Any]]:
    """The first field, in dotted form, whose value differs, or None."""
    saved, wanted = _flatten(saved), _flatten(wanted)
    for name in sorted(set(saved) | set(wanted)):
        if name in ignore:
            continue
        if saved.get(name) != wanted.get(name):
            return name, saved.get(name), wanted.get(name)
    return None


def model_config_path(model_dir: str) -> str:
    """MODEL_DIR/config.json, the architecture of a training directory."""
    return files.join(model_dir, MODEL_CONFIG_FILE)


def read_model_config(model_dir: str) -> ModelConfig:
    """Reads MODEL_DIR/config.json.

    Raises:
      errors.NotFoundError: model_dir holds no config.json.
    """
    values = files.read_json(model_config_path(model_dir))
    if values is None:
        raise errors.NotFoundError(
            f'{model_dir} has no {MODEL_CONFIG_FILE}: it is not a ChromaGen '
            'training directory (run python -m chromagen_tf.train first).'
        )
    return model_config_from_dict(values)


def trained_image_size(model_dir: str, stage: str) -> int:
    """The crop size a stage of a training directory was trained at.

    A model should colorize at the size it was trained at (a 64 px model
    rendered at 128 px paints blobs); directories without a stage config
    get the TrainConfig default.
    """
    values = files.read_json(
        files.join(stage_dir(model_dir, stage), STAGE_CONFIG_FILE)
    )
    return int((values or {}).get('image_size', TrainConfig.image_size))


def check_and_write_model_config(model_dir: str, model: ModelConfig) -> None:
    """Writes MODEL_DIR/config.json, or checks it matches if present.

    Raises:
      ConfigMismatchError: the saved architecture differs; names the field.
    """
    path = model_config_path(model_dir)
    saved = files.read_json(path)
    if saved is None:
        files.write_json_atomically(path, to_dict(model))
        return
    # A field added after the directory was written reads as its default.
    saved = to_dict(model_config_from_dict(saved))
    difference = _first_difference(saved, to_dict(model))
    if difference:
        name, old, new = difference
        raise ConfigMismatchError(
            f'model_dir {model_dir} holds a model with {name}={old!r}, but '
            f'this run asks for {name}={new!r}. Use the same --{name} or a '
            'new --model_dir.'
        )


def check_and_write_stage_config(config: TrainConfig) -> None:
    """Writes MODEL_DIR/<stage>/config.json, or checks a resumed run matches.

    Raises:
      ConfigMismatchError: a field outside RESUMABLE_FIELDS changed.
    """
    path = files.join(config.stage_dir, STAGE_CONFIG_FILE)
    saved = files.read_json(path)
    wanted = to_dict(config)
    if saved is not None:
        # A field added after the run started reads as its default.
        saved = dict(
            saved, model=to_dict(model_config_from_dict(saved.get('model', {})))
        )
        added = {
            field.name
            for field in dataclasses.fields(TrainConfig)
            if field.name not in saved and wanted[field.name] == field.default
        }
        difference = _first_difference(
            saved,
            json.loads(json.dumps(wanted)),
            ignore=RESUMABLE_FIELDS | added,
        )
        if difference:
            name, old, new = difference
            raise ConfigMismatchError(
                f'Cannot resume {config.stage_dir}: it was started with '
                f'{name}={old!r} but this run has {name}={new!r}. Restore '
                'the original value or train into a new --model_dir.'
            )
    files.write_json_atomically(path, wanted)
