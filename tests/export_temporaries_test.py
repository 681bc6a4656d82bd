"""Tests for removing the temporary folders of killed exports."""

import os
import subprocess
import sys
import textwrap

import tensorflow as tf

from chromagen_tf.serving import export_lib
from chromagen_tf.serving import temporaries
from tests.conftest import REPO_ROOT

# Another exporter, stopped mid-write: it holds the export base's lock
# and has its temporary folder, as export_lib's exports do.
_WRITER_SCRIPT = textwrap.dedent('''
    import os
    import sys
    from chromagen_tf.serving import temporaries
    export_base, name = sys.argv[1:]
    with temporaries.writing(export_base):
        os.makedirs(os.path.join(export_base, name))
        print('writing', flush=True)
        sys.stdin.read()  # Until killed.
''')


def _export_stand_in(export_base: str) -> str:
    """Exports the next version through export_lib, with a one-file model."""

    def write(path):
        os.makedirs(path)
        with open(os.path.join(path, 'saved_model.pb'), 'wb') as f:
            f.write(b'a stand-in for a SavedModel')

    return export_lib._write_atomically(export_base, None, write)  # pylint: disable=protected-access


class TemporaryFoldersTest(tf.test.TestCase):

    def test_keeps_a_running_exports_folder_until_that_export_dies(self):
        export_base = os.path.join(self.get_temp_dir(), 'shared')
        # Hidden folders that are not the exporter's own are never touched.
        others = ['.tmp-notes', '.tmp-8-' + 'z' * 32]
        for name in others:
            os.makedirs(os.path.join(export_base, name))
        running = temporaries.temporary_name(7)
        writer = subprocess.Popen(
            [sys.executable, '-c', _WRITER_SCRIPT, export_base, running],
            cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        try:
            self.assertEqual(writer.stdout.readline().strip(), 'writing')
            _export_stand_in(export_base)
            self.assertTrue(os.path.isdir(os.path.join(export_base, running)))
        finally:
            writer.kill()  # SIGKILL: the writer cannot clean up after itself.
            writer.communicate()
        self.assertTrue(os.path.isdir(os.path.join(export_base, running)))
        _export_stand_in(export_base)
        self.assertCountEqual(os.listdir(export_base), ['1', '2'] + others)


if __name__ == '__main__':
    tf.test.main()
