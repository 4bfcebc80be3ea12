"""Errors of the traffic data pipeline that a user can act on.

Each carries ``user_facing = True`` and a message that names the file and the
problem, so ``egw`` prints it as one line (see ``egw_cli.main``).
"""
from __future__ import annotations


class DataError(Exception):
    """Bad input to the data pipeline (capture, taxonomy, dataset, preprocess file)."""

    user_facing = True


class PcapError(DataError):
    """A capture file that cannot be read: empty, truncated, not pcap/pcapng."""


class PreprocessError(DataError):
    """A ``preprocess.json`` (or dict) with bad content."""


class DatasetError(DataError):
    """A dataset ``.npz`` that is missing, unreadable or malformed, or a bad build input."""
