"""Finding the corrupt records of a train split, which tf.data cannot name.

tf.data reports a damaged TFRecord as a bare DataLossError; these read the
files once more, record by record, to say which file and record is bad.
"""

from absl import logging
import tensorflow as tf

from chromagen_tf import configs
from chromagen_tf.data import input_pipeline
from chromagen_tf.data import records


def _train_split_problems(config: configs.TrainConfig) -> list:
    """(path, record index, message) of every bad record of the train split."""
    files = input_pipeline.list_files(
        records.shard_pattern(config.data_dir, 'train')
    )
    return records.find_corrupt_records(files)


def report_skipped(config: configs.TrainConfig) -> list:
    """Counts what --skip_corrupt_records will drop: one pass over the data."""
    problems = _train_split_problems(config)
    for path, index, message in problems:
        logging.warning(
            'Skipping corrupt record %d of %s: %s', index, path, message
        )
    logging.warning(
        '--skip_corrupt_records: %d corrupt record(s) in %d '
        'train file(s) will be skipped.',
        len(problems),
        len({path for path, _, _ in problems}),
    )
    return problems


def raise_if_corrupt(config: configs.TrainConfig, error: tf.errors.OpError):
    """Names the damaged file after tf.data failed, which tf.data does not."""
    logging.error(
        'Input pipeline failed (%s); looking for the bad record.', error.message
    )
    problems = _train_split_problems(config)
    if problems:
        lines = '\n'.join(
            f'  {path}: record {index}: {message}'
            for path, index, message in problems[:10]
        )
        raise records.CorruptRecordError(
            f'{len(problems)} corrupt record(s) in the train split:\n{lines}'
            '\nRe-create these shards with make_tfrecords, or pass '
            '--skip_corrupt_records to train on the rest.'
        ) from error
