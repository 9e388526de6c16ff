"""Upstream data (paper, sections 4.2 and 6.1): the label hierarchy, tfds builders and
input pipelines.

* ``hierarchy``: the "is-a" DAG, multi-hot targets, image counts, automatic expert choice.
* ``builders``: ``embedded_upstream`` (glyphs and emoji from Debian packages) and
  ``image_folder_upstream`` (a user's folder plus hierarchy file); never downloading.
* ``embedded``: the embedded upstream's sources: its plan, Unicode tables, font
  renderers and specialisation probes.
* ``upstream``: the metadata every builder records and ``load_info`` to read it back.
* ``pipelines``: tf.data for the baseline, full experts, adapter experts and the EPN.
* ``slice_index``: where each label's records lie, so that a slice reads only its own.
* ``reading``: a pipeline's records, through the slice index or streamed and filtered.
* ``streams``: training streams as a function of (seed, start), so that runs resume exactly.
* ``build_upstream``: ``python -m experts.data.build_upstream --config.data_dir=runs/tfds``.
"""
