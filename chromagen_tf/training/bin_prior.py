"""The training set's distribution over colour bins, for rebalanced decoding.

Most pixels of most photos are nearly gray, so a colour-bins model trained
on plain cross-entropy puts much of its probability on the gray bins, and
its annealed mean is pale. Zhang et al. (2016, Sec. 2.2) reweight the loss
by the inverse of a smoothed prior of the bins,

    w  ~  ((1 - lambda) * p + lambda / Q) ** -1,   lambda = 1/2,

which makes rare, saturated colours matter. The same correction can be
applied after training instead, by subtracting tau * log(prior) from the
logits ("logit adjustment", Menon et al. 2021, ICLR): tau = 0 is the
calibrated model, tau = 1 the balanced one, and tau is a setting of the
decoder (`ModelConfig.prior_strength`) chosen on held-out photos, like the
temperature.

The prior is the mean of the soft-encoded targets (`color_bins.soft_encode`,
which is also Zhang's smoothing, sigma 5) over the pixels of up to
`MAX_IMAGES` training records at 1/8 of their stored size, mixed with the
uniform distribution. The trainer writes it once per model_dir as
`MODEL_DIR/bin_prior.json`; the bundled format keeps it in model.json.
"""

from absl import logging
import numpy as np
import tensorflow as tf

from chromagen_tf import color
from chromagen_tf import files
from chromagen_tf.data import input_pipeline
from chromagen_tf.data import records
from chromagen_tf.models import color_bins
from chromagen_tf.models import loading

# Zhang et al. 2016, Sec. 2.2: lambda = 1/2 of the uniform distribution.
UNIFORM_MIX = 0.5
MAX_IMAGES = 2000
_DOWNSAMPLE = 8


def estimate_log_prior(
    data_dir: str,
    split: str = 'train',
    max_images: int = MAX_IMAGES,
    skip_corrupt_records: bool = False,
) -> np.ndarray:
    """log((1 - UNIFORM_MIX) * p + UNIFORM_MIX / Q), [Q] float32.

    skip_corrupt_records: leave out records tf.data cannot read or decode,
    as the training input pipeline does under --skip_corrupt_records.

    Raises:
      errors.NotFoundError: the split has no records.
      tf.errors.DataLossError, tf.errors.InvalidArgumentError: a corrupt
        record, unless skip_corrupt_records.
    """

    def _soft_targets(serialized):
        _, ab = records.decode_record(serialized)
        size = tf.shape(ab)[:2] // _DOWNSAMPLE
        small = tf.image.resize(
            ab / color.AB_SCALE, tf.maximum(size, 1), method='area'
        )
        targets = color_bins.soft_encode(small)
        return (
            tf.reduce_sum(targets, axis=[0, 1]),
            tf.cast(tf.reduce_prod(tf.shape(targets)[:2]), tf.float32),
        )

    pattern = records.shard_pattern(data_dir, split)
    dataset = tf.data.TFRecordDataset(input_pipeline.list_files(pattern))
    if skip_corrupt_records:
        dataset = dataset.ignore_errors(log_warning=True)
    dataset = dataset.take(max_images).map(
        _soft_targets, num_parallel_calls=tf.data.AUTOTUNE
    )
    if skip_corrupt_records:
        dataset = dataset.ignore_errors(log_warning=True)
    totals = np.zeros(color_bins.NUM_BINS, np.float64)
    pixels = 0.0
    for sums, count in dataset.as_numpy_iterator():
        totals += sums
        pixels += count
    distribution = totals / max(pixels, 1.0)
    mixed = (
        1.0 - UNIFORM_MIX
    ) * distribution + UNIFORM_MIX / color_bins.NUM_BINS
    return np.log(mixed).astype(np.float32)


def read_or_estimate(
    model_dir: str,
    data_dir: str,
    write: bool = True,
    skip_corrupt_records: bool = False,
) -> list[float]:
    """MODEL_DIR/bin_prior.json, estimated (and written if `write`) if missing.

    Under multi-worker training every worker estimates the prior from the
    same records and gets the same values, so that no worker has to wait
    for the chief's file; only the chief passes write=True.
    """
    existing = loading.read_log_prior(model_dir)
    if existing is not None:
        return existing
    log_prior = [
        round(float(value), 5)
        for value in estimate_log_prior(
            data_dir, skip_corrupt_records=skip_corrupt_records
        )
    ]
    if not write:
        return log_prior
    files.write_json_atomically(
        loading.prior_path(model_dir),
        {
            'log_prior': log_prior,
            'uniform_mix': UNIFORM_MIX,
            'data_dir': data_dir,
            'max_images': MAX_IMAGES,
        },
    )
    logging.info(
        'Wrote the colour-bin prior to %s', loading.prior_path(model_dir)
    )
    return log_prior
