"""The one error type of the Open Images file readers.

Every reader in :mod:`hierseg.oid` raises :class:`OidFormatError` for input it cannot use, with a
message of the form ``"{path}:{line}: {what}"`` (``line`` is the 1-based line in the file, the header
being line 1), or ``"{zip}:{entry}: {what}"`` for mask PNGs inside zip shards, so a user can open the
file at the bad place.
"""

from __future__ import annotations


class OidFormatError(ValueError):
    """An Open Images file (CSV, mask zip, PNG, image, encoded mask) that cannot be used."""
