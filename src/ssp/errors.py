"""The error type every ``ssp`` command reports: one clear message, no traceback.

:class:`SspError` is the base of ssp's domain errors (a tweet that does not parse, an unsafe table
name, a model server that does not answer, ...), so a command lets them rise and ``click`` shows each
one as ``Error: <message>`` with exit code 1, whether the command runs under ``ssp`` or on its own.
It lives apart from ``ssp.cli`` so that every module can raise it without importing ``ssp.cli``.

>>> str(SspError("table raw_tweet_dataset_3 does not exist"))
'table raw_tweet_dataset_3 does not exist'

:func:`database_error` is the one rule for turning a database error into such a message:

>>> import psycopg2
>>> str(database_error(psycopg2.errors.UndefinedTable('relation "x" does not exist\\nLINE 1: ...'), "reading x"))
'database error while reading x: relation "x" does not exist\\nLINE 1: ...'
>>> str(database_error(psycopg2.OperationalError("connection refused\\n\\tIs the server running?"), "reading x"))
'cannot reach the database (connection refused) while reading x: start it with `ssp infra up` or point SSP_DATABASE_URL at one'

A command wraps what it runs in :func:`reported`, the one rule for the errors that are not SspErrors
yet (a library's ValueError that names its input, a file that cannot be read, the database):

>>> with reported("reading x", ValueError):
...     raise ValueError("x is empty")
Traceback (most recent call last):
...
ssp.errors.SspError: x is empty
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

__all__ = ["SspError", "database_error", "database_reason", "is_connection_error", "reported"]


class SspError(click.ClickException):
    """An error shown to the user as one clear message, without a traceback."""


def _detail(err: BaseException) -> str:
    # SQLAlchemy wraps the driver's error (``.orig``) in text of its own (the statement, a docs link)
    return str(getattr(err, "orig", None) or err).strip()


def database_reason(err: BaseException) -> str:
    """The first line of what the database (or its driver) said, or the error's type when it said nothing.

    >>> database_reason(RuntimeError("  could not connect\\nIs the server running?"))
    'could not connect'
    >>> database_reason(RuntimeError(""))
    'RuntimeError'
    """
    detail = _detail(err)
    return detail.splitlines()[0] if detail else type(err).__name__


def is_connection_error(err: BaseException) -> bool:
    """Whether ``err`` says the database could not be reached (or the connection was lost)."""
    import psycopg2
    from sqlalchemy.exc import OperationalError

    return isinstance(err, psycopg2.OperationalError | OperationalError)


def database_error(err: BaseException, doing: str) -> SspError:
    """The :class:`SspError` for a psycopg2 or SQLAlchemy error met while ``doing`` (e.g. "reading x").

    A database that cannot be reached gets its reason and what to do about it; any other error gets
    what the database said, in full (its DETAIL and HINT lines name the row or the fix).
    """
    if is_connection_error(err):
        return SspError(f"cannot reach the database ({database_reason(err)}) while {doing}: start it with "
                        "`ssp infra up` or point SSP_DATABASE_URL at one")
    return SspError(f"database error while {doing}: {_detail(err) or type(err).__name__}")


@contextmanager
def reported(doing: str, *plain: type[BaseException]) -> Iterator[None]:
    """Errors of the block as one message each, for a command that runs ``doing`` (e.g. "reading x").

    An :class:`SspError` rises as it is; one of the ``plain`` types (errors whose message already names
    their input, such as a ValueError or an OSError) becomes an SspError with that message; a psycopg2
    or SQLAlchemy error becomes :func:`database_error` of ``doing``. Anything else rises untouched.
    """
    import psycopg2
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SspError:
        raise
    except plain as err:
        raise SspError(str(err)) from err
    except (psycopg2.Error, SQLAlchemyError) as err:
        raise database_error(err, doing) from err
