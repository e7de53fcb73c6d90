"""Domain errors. They know nothing of gRPC: rpc/status.py maps them to codes.

    ModeldError
    ├── InvalidArgument        a request field has a bad value
    ├── NotFound               a model, version, job or file does not exist
    ├── AlreadyExists          a request id was reused for another request
    ├── FailedPrecondition     the system is not in a state that allows it
    ├── PermissionDenied       a path leaves the data root, a role is too low
    ├── Unauthenticated        no token, or an unknown one
    ├── ResourceExhausted      a queue or a limit is full
    ├── Unavailable            try again later (a model still loading)
    ├── DeadlineExceeded       the caller's deadline passed before the work was done
    └── IntegrityError         an artifact does not match its manifest

from_os_error() turns what the disk or its operator causes (full, read-only, not
writable) into these, naming the path, so no RPC or job reports it as a daemon bug.

Messages quote what the caller sent through quoted() and clip(), never whole: a status
message travels in a header, and one over a client's metadata limit (8 KiB by default)
reaches it as RESOURCE_EXHAUSTED instead of the code the daemon chose.
"""

from __future__ import annotations

import errno

SHOWN_CHARS = 80
"""How much of a caller's value an error message quotes."""


def clip(text: str, limit: int = SHOWN_CHARS) -> str:
    """`text` cut to `limit` characters, marked with '...' and the full length when cut.

    Args:
        text: a value the caller sent (a name, a path, an id).
        limit: characters kept.

    Returns:
        The text unchanged when short enough.
    """
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text)} characters)"


def quoted(value: object, limit: int = SHOWN_CHARS) -> str:
    """The repr of a caller's value for an error message, at most about `limit` characters.

    Short values read exactly as `{value!r}` would. Strings are cut before quoting, so the
    marker stays outside the quotes: 'jjjj'... (20000 characters).
    """
    if isinstance(value, str):
        if len(value) <= limit:
            return repr(value)
        return f"{value[:limit]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


class ModeldError(Exception):
    """Base of every error the daemon reports on purpose."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else self.__class__.__name__


class InvalidArgument(ModeldError):
    """A request field has a value the daemon cannot accept."""


class NotFound(ModeldError):
    """A model, version, job or file does not exist."""


class AlreadyExists(ModeldError):
    """Something with this identity exists already."""


class FailedPrecondition(ModeldError):
    """The request is valid but the current state does not allow it."""


def training_off(rpc: str) -> FailedPrecondition:
    """The refusal of a serve-only daemon (--no-training) for an RPC that would train."""
    return FailedPrecondition(f"training is off on this daemon (--no-training); send {rpc} to "
                              "a daemon that trains")


class PermissionDenied(ModeldError):
    """The caller may not do this (a path outside the data root, a low role)."""


class Unauthenticated(ModeldError):
    """The caller presented no valid credentials."""


class ResourceExhausted(ModeldError):
    """A queue or a configured limit is full."""


class Unavailable(ModeldError):
    """Transient: the same request may succeed later."""


class DeadlineExceeded(ModeldError):
    """The caller's deadline passed before the work was done (so none of it was)."""


class IntegrityError(FailedPrecondition):
    """A stored artifact does not match the checksum or size in its manifest."""


_SPACE = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}
_REFUSED = {errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
            errno.EPERM: "operation not permitted"}


def known_error(exc: BaseException) -> ModeldError | None:
    """`exc` as a domain error: itself, an OSError the disk caused (from_os_error), or None
    for anything else (a bug)."""
    if isinstance(exc, ModeldError):
        return exc
    if isinstance(exc, OSError):
        return from_os_error(exc)
    return None


def job_error(exc: BaseException) -> str:
    """A failed job's error line: the domain error's class name and message, as the worker
    reports them ('ResourceExhausted: ...'), or 'Internal: ...' for a bug."""
    known = known_error(exc)
    if known is None:
        return f"Internal: {exc}"
    return f"{type(known).__name__}: {known.message}"


def from_os_error(exc: OSError, fallback: object = None) -> ModeldError | None:
    """The domain error for a file system failure the disk or its operator caused, or None
    for any other OSError (a daemon bug: INTERNAL).

    One mapping for every RPC and job:
        ENOSPC, EDQUOT        -> ResourceExhausted ("no space left on device writing PATH")
        EROFS, EACCES, EPERM  -> FailedPrecondition ("read-only file system: cannot write
                                 PATH"): the daemon's storage refuses whoever calls, so not
                                 PermissionDenied, which is about the caller.

    Args:
        exc: what a file operation raised; its filename names the path (fsio sets it
            where os.write and os.fsync leave it out).
        fallback: the path to name when `exc` names none (the folder being written).
    """
    named = exc.filename if exc.filename is not None else fallback
    where = quoted(str(named), 200) if named is not None else "a file"
    if exc.errno in _SPACE:
        return ResourceExhausted(f"{_SPACE[exc.errno]} writing {where}")
    if exc.errno == errno.EROFS:
        return FailedPrecondition(f"read-only file system: cannot write {where}")
    if exc.errno in _REFUSED:
        return FailedPrecondition(f"{_REFUSED[exc.errno]}: the daemon may not write {where}")
    return None
