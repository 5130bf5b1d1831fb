"""invoicegen's exceptions: one base class, an exit code per kind of failure.

The CLI turns any :class:`InvoicegenError` into one line on stderr and its ``exit_code``;
library users catch them like any other exception.
"""

from __future__ import annotations


class InvoicegenError(Exception):
    """Something went wrong; the message says what, in one line.

    The parts of the message are data, so that each front end words them its own way (the
    pytest plugin names its own option, not the command line's): ``problem`` (what is wrong),
    ``option`` (the option or name whose value is at fault, e.g. ``--database-url``), ``source``
    (where that value came from when not the command line, e.g. ``environment
    INVOICEGEN_SEED``), ``database`` (masked: never a password) and ``revision`` (of the schema).
    ``str()`` is the command line's wording: ``source: option: problem``.
    """

    exit_code: int = 1

    def __init__(
        self,
        problem: str,
        *,
        option: str | None = None,
        source: str | None = None,
        database: str | None = None,
        revision: str | None = None,
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.option = option
        self.source = source
        self.database = database
        self.revision = revision

    def __str__(self) -> str:
        return ": ".join(part for part in (self.source, self.option, self.problem) if part)

    def __reduce__(self) -> tuple[object, ...]:
        # Errors cross process boundaries (generating workers): keep the data, not only the text.
        return (_rebuild, (type(self), self.__dict__))


def _rebuild(kind: type[InvoicegenError], data: dict[str, object]) -> InvoicegenError:
    error = kind.__new__(kind)
    Exception.__init__(error, data.get("problem"))
    error.__dict__.update(data)
    return error


class UsageError(InvoicegenError):
    """An option or argument has a value invoicegen cannot use."""

    exit_code = 2


class RefusedError(InvoicegenError):
    """A safety guard refused to act (confirmation missing, data in the way)."""

    exit_code = 3


class ConnectionFailed(InvoicegenError):
    """The database could not be reached, or refused the credentials."""

    exit_code = 4


class MissingDriver(ConnectionFailed):
    """The Python driver for this kind of database is not installed."""


class WriteDenied(ConnectionFailed):
    """The account or the file may be read but not written."""


class DiskFull(InvoicegenError):
    """The disk (or the database's size limit) is full: nothing more could be written."""

    exit_code = 1


class SchemaStateError(InvoicegenError):
    """The database's invoicegen schema is foreign, newer, or not what the migrations made."""

    exit_code = 5


class IncompleteSchema(SchemaStateError):
    """invoicegen's own tables do not match any revision: a migration stopped part-way."""


class LockTimeout(InvoicegenError):
    """Another invoicegen run holds the database's lock."""

    exit_code = 6


class CheckFailed(InvoicegenError):
    """``stats --check`` found data that breaks invoicegen's invariants."""

    exit_code = 7


class Interrupted(InvoicegenError):
    """Ctrl-C or SIGTERM stopped a run; the message says what was committed."""

    exit_code = 130


class WorkerDied(InvoicegenError):
    """A generating worker process died (``kill -9``, the OOM killer); the run stopped."""


class FactoryValueError(InvoicegenError, ValueError):
    """A factory cannot generate a coherent value from what it was given."""
