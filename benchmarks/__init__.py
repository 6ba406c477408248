"""The project's benchmarks, one module each, run from the repository root as
``python -m benchmarks.NAME [--quick] ...``.

What they share (command-line flags, interleaved timing, provenance, the locked merge-save of a
results file, plotting) is :mod:`benchmarks.common`; how the training benchmarks split the data
and train and evaluate students is :mod:`benchmarks.harness`. Results go to
``benchmarks/results/``.
"""
