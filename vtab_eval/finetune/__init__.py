"""Fine-tuning a hub module on a task, in five modules (import them by name):

* ``tuner``: the model and one run (``FineTuner``: the module plus a head, its
  training step, one fine-tuning run from restored weights);
* ``protocol``: the VTAB-1k protocol for one (task, module) around those runs (the
  sweep on train800/val200, the repeats on train800val200, the median test accuracy);
* ``runs``: a transfer run's fine-tuning results, one protocol per (task, module),
  kept in the run directory so a rerun reads them back;
* ``hyperparams``: the rules turning a training-set size into a sweep's candidates;
* ``ensemble``: the greedy ensemble of several modules' runs (members chosen on
  val200, measured on the final runs).
"""
