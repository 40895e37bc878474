"""The error type every ``ssp`` command reports: one clear message, no traceback.

It lives apart from ``ssp.cli`` so that the stage CLIs, which ``ssp.cli`` imports, can raise it
without importing ``ssp.cli`` back.

>>> str(SspError("table raw_tweet_dataset_3 does not exist"))
'table raw_tweet_dataset_3 does not exist'
"""

from __future__ import annotations

import click

__all__ = ["SspError"]


class SspError(click.ClickException):
    """An error shown to the user as one clear message, without a traceback."""
