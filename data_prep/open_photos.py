r"""Rebuilds the open photos, the bundled model's training set, from Debian.

The 497 photos come from 38 Debian 12 (bookworm) packages; which file of
which package version, and under which licence, is listed in
`data_prep/open_photos_sources.json`.

Usage, on a Debian machine with bookworm in its apt sources:

  python -m data_prep.open_photos --output_dir=open_photos

downloads each package at its listed version (`apt-get download`, which
needs no root and installs nothing), unpacks it (`dpkg-deb -x`) and copies
the listed files out, named PACKAGE__NAME as in the manifest. A path of the
form FILE#MEMBER names a member of a container file: jigzo's .pzl puzzles
hold their photos that way. Packages
already downloaded can be given with --debs_dir instead. Photos already in
--output_dir are kept, so an interrupted run finishes when run again.
"""

from chromagen_tf import cli_logging  # noqa: F401, I001 (before TensorFlow)
from absl import app
from absl import flags

from chromagen_tf import errors
from data_prep import open_photos_lib

_OUTPUT_DIR = flags.DEFINE_string(
    'output_dir', None, 'Folder the photos are copied into.'
)
_SOURCES = flags.DEFINE_string(
    'sources',
    open_photos_lib.SOURCES,
    'The manifest: package, version and path per photo.',
)
_DEBS_DIR = flags.DEFINE_string(
    'debs_dir',
    None,
    'Folder of already downloaded .deb files; default: '
    'download them with apt-get download.',
)


def main(argv):
    try:
        if len(argv) > 1:
            raise errors.UsageError(f'unexpected arguments: {argv[1:]}')
        if not _OUTPUT_DIR.value:
            raise errors.UsageError('--output_dir is required.')
        photos = open_photos_lib.read_sources(_SOURCES.value)
        written = open_photos_lib.fetch(
            photos, _OUTPUT_DIR.value, _DEBS_DIR.value
        )
    except errors.ChromaGenError as error:
        errors.fail('open_photos', error)
    print(
        f'{written} photos written, {len(photos) - written} were there '
        f'already: {_OUTPUT_DIR.value}'
    )


if __name__ == '__main__':
    app.run(main)
