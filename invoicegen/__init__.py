"""invoicegen: seed relational databases with coherent users -> clients -> contracts -> invoices."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("invoicegen")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"
