"""What every benchmark shares, one concept a module, none of them importing TensorFlow or torch
(but :mod:`.backend`, imported on its own: what the benchmarks do differently on each Sionna line):

* :mod:`.cli`: the common command-line flags (``--quick``, ``--seeds``, ``--epochs``, ``--out``)
  and where a run's results file goes (``results_file``);
* :mod:`.timing`: interleaved repeats of several candidates, best, median and spread;
* :mod:`tosc_cache.provenance`: the commit, command, versions, machine and date of a results file
  (``run_provenance`` adds the Sionna line that measured: Keras' backend, Sionna's version);
* :mod:`.results`: writing a results file with its provenance, atomically, under a lock,
  merged with what other processes wrote;
* :mod:`.plotting`: a matplotlib figure saved to a file (Agg backend) and closed.
"""

from tosc_cache.provenance import machine, provenance

from .cli import RESULTS, parser, results_file
from .plotting import figure
from .results import merge_runs, run_provenance, save_merged, sionna_line, write_results
from .timing import interleaved, stats, time_interleaved

__all__ = ["RESULTS", "figure", "interleaved", "machine", "merge_runs", "parser", "provenance",
           "results_file", "run_provenance", "save_merged", "sionna_line", "stats",
           "time_interleaved", "write_results"]
