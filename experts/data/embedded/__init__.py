"""The embedded default upstream's sources (import the modules by name); its tfds builder
is ``builders/embedded_upstream.py``.

* ``plan``: the classes, their "is-a" hierarchy and the images to render for each;
* ``unicode_tables``: readers for the Unicode Character Database tables the plan uses;
* ``fonts``: font faces and the renderers of characters and emoji;
* ``probes``: the specialisation probes, from the classes the plan holds out.
"""
