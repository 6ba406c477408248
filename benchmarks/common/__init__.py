"""What every benchmark shares, one concept a module, none of them importing TensorFlow or torch:

* :mod:`.cli`: the common command-line flags (``--quick``, ``--seeds``, ``--epochs``, ``--out``)
  and where a run's results file goes (``results_file``);
* :mod:`.timing`: interleaved repeats of several candidates, best, median and spread;
* :mod:`tosc_cache.provenance`: the commit, command, versions, machine and date of a results file;
* :mod:`.results`: writing a results file with its provenance, atomically, under a lock,
  merged with what other processes wrote;
* :mod:`.plotting`: a matplotlib figure saved to a file (Agg backend) and closed.
"""

from tosc_cache.provenance import machine, provenance

from .cli import RESULTS, parser, results_file
from .plotting import figure
from .results import merge_runs, save_merged, write_results
from .timing import interleaved, stats, time_interleaved

__all__ = ["RESULTS", "figure", "interleaved", "machine", "merge_runs", "parser", "provenance",
           "results_file", "save_merged", "stats", "time_interleaved", "write_results"]
