"""Object keys: the rules every object store holds its keys and key prefixes to."""

from __future__ import annotations

import re

from engine.errors import ObjectStoreError

MAX_KEY_BYTES = 1024  # S3's limit on a key's UTF-8 length
MAX_SEGMENT_BYTES = 255  # NAME_MAX of common filesystems, so any key fits a local store too
TEMP_PREFIX = ".tmp-"  # reserved: half-written local files carry it and are never listed

_KEY_EXAMPLE = "videos/syn_000001/frames/00000.jpg"
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid object key, else raise ObjectStoreError.

    One rule set for every store, so a dataset written locally can move to S3 (and back)
    without a key becoming unusable or escaping its root.
    """
    reason = key_problem(key)
    if reason is not None:
        raise ObjectStoreError(
            f"invalid object key {key!r}: {reason}; keys are relative '/'-separated paths "
            f"such as {_KEY_EXAMPLE!r}"
        )
    return key


def key_problem(key: object) -> str | None:
    """Why ``key`` is not a valid object key, or None if it is."""
    problem = _characters_problem(key)
    if problem is not None:
        return problem
    for segment in str(key).split("/"):
        problem = _segment_problem(segment)
        if problem is not None:
            return problem
    return None


def _characters_problem(text: object) -> str | None:
    if not isinstance(text, str):
        return f"it is a {type(text).__name__}, not a string"
    if not text:
        return "it is empty"
    if len(text.encode("utf-8")) > MAX_KEY_BYTES:
        return f"it is longer than {MAX_KEY_BYTES} bytes"
    if "\\" in text:
        return "it contains a backslash (use '/' between segments)"
    if _CONTROL_CHARS.search(text):
        return "it contains a NUL or control character"
    if text.startswith("/"):
        return "it starts with '/' (keys are relative)"
    return None


def _segment_problem(segment: str) -> str | None:
    if not segment:
        return "it has an empty segment ('//' or a trailing '/')"
    if segment in (".", ".."):
        return f"it has a {segment!r} segment"
    if segment.startswith(TEMP_PREFIX):
        return f"segments starting with {TEMP_PREFIX!r} are reserved for temporary files"
    if len(segment.encode("utf-8")) > MAX_SEGMENT_BYTES:
        return f"a segment is longer than {MAX_SEGMENT_BYTES} bytes"
    return None


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if some valid key could start with it, else raise ObjectStoreError.

    Unlike a key, a prefix may be empty, end with '/', or stop inside a segment
    (``videos/syn_0``); only its complete segments are held to the key rules.
    """
    if prefix == "":
        return prefix
    complete, _, _ = prefix.rpartition("/")
    problem = _characters_problem(prefix)
    if problem is None and complete:
        problem = key_problem(complete)
    if problem is not None:
        raise ObjectStoreError(f"invalid key prefix {prefix!r}: {problem}")
    return prefix
