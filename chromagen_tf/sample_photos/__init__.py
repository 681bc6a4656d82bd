"""The sample photos: 14 colour photos that no bundled model trained on.

The demo colorizes them, the bundled-model recipe keeps their near-duplicates
out of training and measures on them, and the tests and benchmarks use them
as inputs. They ship inside the package (with ATTRIBUTION.md, their sources
and licences), so a checkout and an installed wheel find them alike.
"""

import importlib.resources


def folder() -> str:
    """The folder that holds the sample photos.

    pip unpacks a wheel, so this is a folder on disk wherever ChromaGen is
    installed.
    """
    return str(importlib.resources.files(__name__))
