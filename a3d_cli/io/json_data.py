"""Parse JSON that a3d did not write itself (a run folder's manifest, normalization and cameras files) so that
every way it can be malformed is one `ValueError`.

Why: `json.loads` fails in several ways a caller would each have to know: `JSONDecodeError` for bad syntax,
`UnicodeDecodeError` for bytes that are not UTF-8, `ValueError` for an integer past Python's digit limit,
`RecursionError` for nesting past the parser. JSON nested just within the parser, or integers of hundreds of
digits, parse but break later code (a recursive copy, `float(n)` in a format string). `parse_json` turns all of
these into `ValueError` with a short reason, at the point the file is read.

Examples:
    >>> parse_json(b'{"scale": 2.0}')
    {'scale': 2.0}
    >>> parse_json(b"[" * 100 + b"]" * 100)
    Traceback (most recent call last):
    ...
    ValueError: JSON nested deeper than 64 levels
"""

from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 64
"""Deepest nesting accepted: a3d's own files nest fewer than 10 levels."""
MAX_INT_DIGITS = 20
"""Longest integer accepted (2⁶⁴ has 20 digits): every integer then converts to a float without overflow."""


def _parse_int(text: str) -> int:
    """`json.loads`'s integer hook: refuse integers longer than MAX_INT_DIGITS before converting them."""
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ValueError(f"an integer of {len(text.lstrip('-'))} digits (at most {MAX_INT_DIGITS} are read)")
    return int(text)


def parse_json(data: bytes | str, max_depth: int = MAX_DEPTH) -> Any:
    """The value of a JSON document, refusing what later code could not handle.

    Args:
        data: the document (bytes in UTF-8, -16 or -32, or text).
        max_depth: the deepest nesting of lists and objects accepted.

    Returns:
        the parsed value (NaN and ±Infinity literals are read as floats, as `json.dumps` writes them).

    Raises:
        ValueError: not JSON, not UTF-8, nested deeper than `max_depth`, or an integer of more than
            MAX_INT_DIGITS digits.
    """
    try:
        value = json.loads(data, parse_int=_parse_int)
    except RecursionError:  # nested past the parser: raised from deep inside it
        raise ValueError(f"JSON nested deeper than {max_depth} levels") from None
    stack = [(value, 1)]
    while stack:  # iterative, so the check itself cannot recurse too deeply
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            if depth > max_depth:
                raise ValueError(f"JSON nested deeper than {max_depth} levels")
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return value


__all__ = ["MAX_DEPTH", "MAX_INT_DIGITS", "parse_json"]


def short_repr(value: Any, limit: int = 60) -> str:
    """A value read from such a file, for an error message: its repr, cut to `limit` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
