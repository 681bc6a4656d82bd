"""Every entry point answers --help, and the help documents every flag."""

import re
import subprocess
import sys

import pytest

from tests import conftest

ENTRY_POINTS = [
    'data_prep.make_tfrecords',
    'chromagen_tf.train',
    'chromagen_tf.export',
    'chromagen_tf.colorize',
    'chromagen_tf.colorize_video',
    'chromagen_tf.evaluate',
    'chromagen_tf.serving_client',
    'chromagen_tf.demo',
    'chromagen_tf.tools.import_torchvision_resnet',
    'chromagen_tf.bundled.recipe',
    'data_prep.open_photos',
]
# Modules whose flags a tool adopts as its own (flags.adopt_module_key_flags).
_SHARED_FLAG_MODULES = ('chromagen_tf.inference.model_flags',)


def _defined_flags(module):
    path = conftest.REPO_ROOT.joinpath(*module.split('.')).with_suffix('.py')
    source = path.read_text()
    names = re.findall(r"flags\.DEFINE_\w+\(\s*'(\w+)'", source)
    for shared in _SHARED_FLAG_MODULES:
        package, name = shared.rsplit('.', 1)
        if f'from {package} import {name}' in source:
            names += _defined_flags(shared)
    return names


@pytest.mark.parametrize('module', ENTRY_POINTS)
def test_help_documents_every_flag(module):
    completed = subprocess.run(
        [sys.executable, '-m', module, '--help'], capture_output=True,
        text=True, timeout=120, cwd=conftest.REPO_ROOT)
    # absl's --help exits with status 1 by design; a crash would not print
    # the flags below.
    assert completed.returncode in (0, 1), completed.stderr[-3000:]
    text = completed.stdout + completed.stderr
    assert 'Traceback' not in text, text[-3000:]
    assert 'Usage' in text or 'usage' in text, text[:500]
    names = _defined_flags(module)
    assert names, f'{module} defines no absl flags'
    for name in names:
        # absl prints "  --name: help text" (or "--[no]name:" for booleans).
        match = re.search(rf'--(\[no\])?{name}: *(.+)', text)
        assert match, f'{module} --help does not list --{name}'
        assert len(match.group(2).strip()) > 10, f'--{name} is undocumented'
