"""The embedded mini-VTAB suite: tfds builders over local sources, and their tasks."""
