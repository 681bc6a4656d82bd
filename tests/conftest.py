"""Shared pytest setup: quiet TF logs, 2 logical CPUs, shared fixtures.

Two logical CPU devices are configured before anything else touches
TensorFlow, so that the multi-replica tests can build a MirroredStrategy
over '/cpu:0' and '/cpu:1'. Single-device code keeps running on '/cpu:0'.
"""

import os
import pathlib

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLE_PHOTOS = REPO_ROOT / 'chromagen_tf' / 'sample_photos'


def _configure_two_logical_cpus():
    cpus = tf.config.list_physical_devices('CPU')
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2
        )
    except RuntimeError:
        pass  # TensorFlow was initialised already; keep what it has.


_configure_two_logical_cpus()


def pytest_collection_modifyitems(config, items):
    """Drops tf.test.TestCase.test_session, a deprecated non-test helper.

    pytest collects it from every tf.test.TestCase and reports it as skipped;
    it tests nothing, so it should not show up as a skip.
    """
    del config  # Unused.
    items[:] = [item for item in items if item.name != 'test_session']
