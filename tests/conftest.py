"""Shared pytest setup: quiet TensorFlow logs and the bundled photo folder."""

import os
import pathlib

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
SAMPLE_PHOTOS = REPO_ROOT / 'sample_photos'


def pytest_collection_modifyitems(config, items):
    """Drops tf.test.TestCase.test_session, a deprecated non-test helper.

    pytest collects it from every tf.test.TestCase and reports it as skipped;
    it tests nothing, so it should not show up as a skip.
    """
    del config  # Unused.
    items[:] = [item for item in items if item.name != 'test_session']
