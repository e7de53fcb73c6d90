"""Pages of the registry and the job list: page sizes, page tokens, version roles.

ListVersions walks a model's versions newest first through the index, a batch at a time,
and answers a token naming the last version it gave; ListJobs pages by job id.
"""

from __future__ import annotations

import base64

from modeld_server.errors import InvalidArgument, quoted
from modeld_server.registry.index import ModelEntry, RegistryIndex
from modeld_server.registry.manifest import VersionSummary

DEFAULT_PAGE = 50
MAX_PAGE = 1000


def version_state(summary: VersionSummary, active: int) -> str:
    """active, rejected or inactive."""
    if summary.version == active:
        return "active"
    return "rejected" if summary.rejected else "inactive"


def version_page(index: RegistryIndex, model: str, entry: ModelEntry, page_size: int,
                 token: str, state: str = "") -> tuple[list[VersionSummary], str]:
    """One page of `model`'s versions, newest first, those in `state` (all when empty),
    and the token of the next page ("" for the last)."""
    size = page_size_of(page_size)
    below = decode_token(token) if token else (entry.versions[-1] + 1 if entry.versions else 1)
    if state == "active":
        hits = [entry.summaries[entry.active]] if entry.active in entry.summaries else []
        return (hits if not token else []), ""
    out: list[VersionSummary] = []
    while len(out) < size:
        batch = index.page(model, below, size)
        if not batch:
            break
        for summary in batch:
            below = summary.version
            if state and version_state(summary, entry.active) != state:
                continue
            out.append(summary)
            if len(out) == size:
                break
    more = bool(out) and out[-1].version > (entry.versions[0] if entry.versions else 0)
    return out, encode_token(out[-1].version) if more else ""


def page_size_of(page_size: int) -> int:
    """The page size asked for, DEFAULT_PAGE for 0.

    Raises:
        InvalidArgument: below 0 or above MAX_PAGE.
    """
    if page_size < 0 or page_size > MAX_PAGE:
        raise InvalidArgument(f"page_size must be between 0 and {MAX_PAGE}, got {page_size}")
    return page_size or DEFAULT_PAGE


def encode_token(version: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{version}".encode()).decode()


def decode_token(token: str) -> int:
    try:
        prefix, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if prefix == "v1" and number.isdigit():
            return int(number)
    except (ValueError, UnicodeError):
        pass
    raise InvalidArgument(f"page_token {quoted(token, 40)} is not a token this server issued")
