"""Every entry point documents its flags, and one answers --help for real.

absl prints --help the same way for every tool, so a single subprocess
checks that path. The other tools' flag definitions are read from absl's
flag registry after importing each entry module: every flag it defines or
adopts must have help text. The modules define flags with the same names
(--model_dir, --stage, ...), which absl refuses in one process, so the
registry is read in one child process.
"""

import json
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

# Run in a child process: prints {module: {flag: help}} for the flags each
# entry module defines or adopts (absl's key flags of that module). Before
# the next import, which may reuse the names, it forgets the module's
# flags and unloads the shared flag modules, so that they define theirs
# again for the next tool that adopts them.
_READ_FLAG_HELP = '''
import importlib, json, sys
from absl import flags
found = {{}}
for module in {modules!r}:
    importlib.import_module(module)
    found[module] = {{flag.name: flag.help or ''
                     for flag in flags.FLAGS.get_key_flags_for_module(module)}}
    for name in [module, *{shared!r}]:
        for flag in flags.FLAGS.get_flags_for_module(name):
            delattr(flags.FLAGS, flag.name)
    for name in {shared!r}:
        if sys.modules.pop(name, None):
            package, _, attribute = name.rpartition('.')
            delattr(sys.modules[package], attribute)
print(json.dumps(found))
'''


def _is_documented(help_text: str) -> bool:
    # absl starts an enum flag's help with its values, '<a|b>: ', and
    # replaces an empty help with '(no help available)'.
    text = re.sub(r'^<[^>]*>: ?', '', help_text.strip()).strip()
    return len(text) > 10 and text != '(no help available)'


def _defined_flags(module):
    """Flag names a module's source defines, or adopts from a shared one."""
    path = conftest.REPO_ROOT.joinpath(*module.split('.')).with_suffix('.py')
    source = path.read_text()
    names = re.findall(r"flags\.DEFINE_\w+\(\s*'(\w+)'", source)
    for shared in _SHARED_FLAG_MODULES:
        package, name = shared.rsplit('.', 1)
        if f'from {package} import {name}' in source:
            names += _defined_flags(shared)
    return names


@pytest.fixture(scope='module')
def flag_help():
    completed = subprocess.run(
        [
            sys.executable,
            '-c',
            _READ_FLAG_HELP.format(
                modules=ENTRY_POINTS, shared=list(_SHARED_FLAG_MODULES)
            ),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=conftest.REPO_ROOT,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.slow  # A process that imports every tool.
@pytest.mark.parametrize('module', ENTRY_POINTS)
def test_every_flag_has_help(flag_help, module):
    names = _defined_flags(module)
    assert names, f'{module} defines no absl flags'
    # Every flag in the source is one of the module's own or adopted flags.
    assert set(names) <= set(flag_help[module]), (
        f'{module}: {sorted(set(names) - set(flag_help[module]))}'
    )
    for name, text in flag_help[module].items():
        assert _is_documented(text), f'{module}: --{name} is undocumented'


@pytest.mark.slow  # A tool's process.
def test_help_prints_every_flag():
    module = 'chromagen_tf.tools.import_torchvision_resnet'
    completed = subprocess.run(
        [sys.executable, '-m', module, '--help'],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=conftest.REPO_ROOT,
    )
    # absl's --help exits with status 1 by design; a crash would not print
    # the flags below.
    assert completed.returncode in (0, 1), completed.stderr[-3000:]
    text = completed.stdout + completed.stderr
    assert 'Traceback' not in text, text[-3000:]
    assert 'Usage' in text or 'usage' in text, text[:500]
    for name in _defined_flags(module):
        # absl prints "  --name: help text" (or "--[no]name:" for booleans).
        match = re.search(rf'--(\[no\])?{name}: *(.+)', text)
        assert match, f'{module} --help does not list --{name}'
        assert _is_documented(match.group(2)), f'--{name} is undocumented'
