"""``tosc-cache`` that pauses after its first stored batch until a file appears (for the
concurrent-extraction tests).

Usage: ``python extract_and_wait.py GO_FILE extract ARGS...``. Through
:func:`cache_tools.extract.extract`'s ``on_batch`` callback, the extraction
waits right after storing its first batch (holding its output, as a long
extraction would) until ``GO_FILE`` exists, then runs to the end. The
production code has no test hook.
"""

import sys
import time
from pathlib import Path

from cache_tools import cli
from cache_tools import extract as extract_module

#: Seconds to wait for GO_FILE before going on anyway (a test that died mid-way).
PATIENCE = 300


def main() -> int:
    go, argv = Path(sys.argv[1]), sys.argv[2:]
    real = extract_module.extract

    def wait_after_first(event):
        if event.batches == 1:
            deadline = time.monotonic() + PATIENCE
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.05)

    def extract(options, progress=None, on_batch=None):
        return real(options, progress=progress, on_batch=wait_after_first)

    extract_module.extract = extract  # what cli.main imports when it runs
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
