"""tfds builders for upstream data. Importing this package registers them with tfds.

* ``embedded_upstream``: glyphs and emoji rendered from Debian packages (the default).
* ``image_folder_upstream``: a user's image folder (one subfolder per class) plus a
  hierarchy file, read from tfds' manual_dir.

Neither ever downloads.
"""

from experts.data.builders.embedded_upstream import EmbeddedUpstream, EmbeddedUpstreamConfig
from experts.data.builders.image_folder_upstream import (
    ImageFolderUpstream,
    ImageFolderUpstreamConfig,
)

__all__ = [
    "EmbeddedUpstream",
    "EmbeddedUpstreamConfig",
    "ImageFolderUpstream",
    "ImageFolderUpstreamConfig",
]
