"""``python -m invoicegen`` and the ``invoicegen`` script."""

from invoicegen.cli import app


def main() -> None:
    app()


if __name__ == "__main__":
    main()
