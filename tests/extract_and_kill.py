"""``tosc-cache`` that SIGKILLs one process after its N-th stored batch (for the resume tests).

Usage: ``python extract_and_kill.py RANK BATCHES extract ARGS...`` (or under
``torchrun``). The kill is injected from the test side through
:func:`cache_tools.extract.extract`'s ``on_batch`` callback: the process of
rank RANK kills itself right after storing its BATCHES-th batch, a real kill
mid-run. The production code has no test hook.
"""

import os
import signal
import sys

from cache_tools import cli
from cache_tools import extract as extract_module


def run_with_batch_hook(hook, argv: list[str]) -> int:
    """``tosc-cache ARGV`` with ``hook(event)`` as extract's ``on_batch`` callback."""
    real = extract_module.extract

    def extract(options, progress=None, on_batch=None):
        return real(options, progress=progress, on_batch=hook)

    extract_module.extract = extract  # what cli.main imports when it runs
    return cli.main(argv)


def main() -> int:
    victim, batches, argv = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]

    def kill_after(event):
        if event.rank == victim and event.batches == batches:
            os.kill(os.getpid(), signal.SIGKILL)

    return run_with_batch_hook(kill_after, argv)


if __name__ == "__main__":
    sys.exit(main())
