"""``python -m invoicegen`` and the ``invoicegen`` script."""

import atexit
import gc
import os
import sys

from invoicegen import interrupts


def main() -> None:
    interrupts.install()  # first: a stop during the imports below is honoured too
    try:
        from invoicegen.cli import app

        app()
    except KeyboardInterrupt:  # before the command could take it: while importing it
        sys.stderr.write("error: interrupted\n")  # console.py is not imported yet
        _exit_now(130)
    except SystemExit as exc:
        if exc.code == 130:
            _exit_now(130)
        # The command is done: the interpreter's teardown runs as usual (exit handlers,
        # threads joined, modules and objects finalized), without its last collections, which
        # walk every object of the loaded libraries (~0.15 s of CPU after a seed).
        gc.freeze()
        raise


def _exit_now(code: int) -> None:
    """End a stopped command now: the exit handlers run (the streams are flushed), but not
    the interpreter's teardown of every module, which takes seconds on a busy machine."""
    interrupts.ignore()  # stopping already: a second stop changes nothing
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
