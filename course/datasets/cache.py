"""Where downloaded data sets live, and what a loader does when the full set is unavailable.

Downloads are cached under ``COURSE_DATA_DIR`` (default ``~/.course/data``). A loader that falls
back to bundled data says so with one :class:`BundledDataWarning` per process and cache folder;
a cached file that cannot be read is named in one :class:`DamagedCacheWarning` and then treated
as not cached.
"""

from __future__ import annotations

import os
import socket
import threading
import warnings
from collections.abc import Callable
from pathlib import Path


class BundledDataWarning(UserWarning):
    """The full data set is unavailable; a smaller bundled copy is used instead."""


class DamagedCacheWarning(UserWarning):
    """A cached data file cannot be read; it is ignored until it is downloaded again."""


# (message, cache folder) of each warning shown in this process. A demo calls the loaders several
# times; the warnings module would show the warning again for every calling line.
_WARNINGS_SHOWN: set[tuple[str, str]] = set()


def warn_once(
    message: str, category: type[Warning] = BundledDataWarning, stacklevel: int = 2
) -> None:
    """``warnings.warn``, but once per process and cache folder.

    ``stacklevel`` counts as in ``warnings.warn`` called where this is called: the default 2
    points the warning at the caller of the function that calls this one.
    """
    key = (message, str(data_dir()))
    if key not in _WARNINGS_SHOWN:
        _WARNINGS_SHOWN.add(key)
        warnings.warn(message, category, stacklevel=stacklevel + 1)


def use_bundled(source: str, where: str, message: str) -> bool:
    """Whether a loader takes its bundled data (``where`` is what its ``*_source`` said).

    When that is because ``source="auto"`` found the full set neither cached nor downloadable,
    ``message`` (what is used instead, and how to get the full set) is shown once, pointing at
    the loader's caller.
    """
    if where == "bundled" and source == "auto":
        warn_once(message, stacklevel=3)
    return where == "bundled"


def data_dir() -> Path:
    """The cache folder for downloaded data sets (``COURSE_DATA_DIR``, default ~/.course/data)."""
    path = Path(os.environ.get("COURSE_DATA_DIR", Path.home() / ".course" / "data"))
    return path.expanduser()


def network_available(host: str, timeout: float = 2.0) -> bool:
    """True if a TCP connection to ``host`` opens within ``timeout`` seconds (never hangs)."""
    result = []

    def probe():
        try:
            socket.create_connection((host, 443), timeout=timeout).close()
            result.append(True)
        except OSError:
            result.append(False)

    # A thread, so that a slow name lookup cannot hold the caller past the timeout either.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def readable_cache(path: Path, read: Callable[[Path], object], fetch_command: str) -> bool:
    """Whether the cached file ``path`` exists and ``read(path)`` succeeds.

    A damaged file (an interrupted download, a full disk) is reported once by a warning that
    names it and says how to replace it; the loaders then treat it as not cached.
    """
    if not path.exists():
        return False
    try:
        read(path)
    except Exception as error:  # any reader error means the same thing: the file is damaged
        warn_once(
            f"The cached file {path} is damaged ({type(error).__name__}: {error}) and is "
            f"ignored. Delete it and run `{fetch_command}` to download it again.",
            DamagedCacheWarning,
        )
        return False
    return True


def validate_choice(value: str, choices: tuple[str, ...], what: str) -> None:
    """Raise a ValueError that lists ``choices`` if ``value`` is not one of them."""
    if value not in choices:
        raise ValueError(f"Unknown {what} {value!r}; choose one of {', '.join(choices)}.")
