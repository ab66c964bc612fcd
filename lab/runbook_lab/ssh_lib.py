"""asyncssh, imported without the warnings its import prints.

asyncssh still supports DSA host keys, so importing it touches ``cryptography``'s DSA classes,
which warn (``CryptographyDeprecationWarning: DSA is deprecated``) five times, before every
``--lab`` verdict. The twin never uses DSA. Only that warning, and only during the import, is
silenced here; every module of the twin imports asyncssh from this one.
"""

from __future__ import annotations

import warnings

try:
    from cryptography.utils import CryptographyDeprecationWarning as _DSAWarning
except ImportError:  # an older cryptography: the warning does not exist either
    _DSAWarning = DeprecationWarning

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="DSA is deprecated", category=_DSAWarning)
    import asyncssh  # noqa: E402

__all__ = ["asyncssh"]
