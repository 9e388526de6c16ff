"""The expert pool and its handles, in three modules (import them by name):

* ``hub_loader``: a handle's grammar (local directory, tfhub.dev URL, Kaggle handle), its
  resolution to a local mirror and loading it as a checked ``hub.KerasLayer``; the only
  module that parses handles;
* ``module_program``: which modules hold the same program and differ only in their
  weights (``program_key``), so that one traced fine-tuner serves them all;
* ``expert_pool``: the pool of a run: the modules under hub roots or given as handles,
  with the metadata exported beside them (``Pool``, ``Module``, ``open_pool``).
"""
