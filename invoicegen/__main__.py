"""``python -m invoicegen`` and the ``invoicegen`` script."""

import sys

from invoicegen import interrupts


def main() -> None:
    interrupts.install()  # first: a stop during the imports below is honoured too
    try:
        from invoicegen.cli import app
    except KeyboardInterrupt:
        sys.stderr.write("error: interrupted\n")  # console.py is not imported yet
        sys.exit(130)
    app()


if __name__ == "__main__":
    main()
