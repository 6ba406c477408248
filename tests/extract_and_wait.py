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

from extract_and_kill import run_with_batch_hook  # this folder: the scripts' own

#: Seconds to wait for GO_FILE before going on anyway (a test that died mid-way).
PATIENCE = 300


def main() -> int:
    go, argv = Path(sys.argv[1]), sys.argv[2:]

    def wait_after_first(event):
        if event.batches == 1:
            deadline = time.monotonic() + PATIENCE
            while not go.exists() and time.monotonic() < deadline:
                time.sleep(0.05)

    return run_with_batch_hook(wait_after_first, argv)


if __name__ == "__main__":
    sys.exit(main())
