"""invoicegen: seed relational databases with coherent users -> clients -> contracts -> invoices."""

# The one place the version is written: pyproject.toml reads it from here when building, and
# `invoicegen --version` prints it without loading the package metadata.
__version__ = "0.6.0"
