"""What a transfer run reports, in these modules (import them by name):

* ``tables``: the report of a run from its work directory (the paper's tables, per-task
  picks and accuracies, timings);
* ``stats``: the statistics behind the tables (bootstrap intervals, rank correlation);
* ``tau``: the rank agreement of proxy and fine-tuning per task relation;
* ``ensembles``: ensembles of the top experts against the number combined and the
  single pick's cost;
* ``plots``: the figures, drawn with matplotlib when it is installed;
* ``probes``: the specialisation benchmark (kNN accuracy of every module on every
  expert's probe), its table and its figure.
"""
