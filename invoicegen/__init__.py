"""invoicegen: seed relational databases with coherent users -> clients -> contracts -> invoices."""

from typing import Any


def __getattr__(name: str) -> Any:
    # Looked up when asked for: the command's first moments must be cheap (see __main__.py).
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("invoicegen")
        except PackageNotFoundError:  # running from a source tree that is not installed
            return "0.0.0"
    raise AttributeError(f"module 'invoicegen' has no attribute {name!r}")
