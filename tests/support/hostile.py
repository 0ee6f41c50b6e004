"""Hostile inputs shared by the tests of every loader that reads them."""

from __future__ import annotations


def yaml_alias_bomb(*, first_line: str) -> str:
    """A billion-laughs YAML document: nine levels of nine aliases each (9**9 nodes when expanded).

    ``first_line`` comes first, so the first alias (``*a``) is on line 3.
    """
    lines = [first_line, "a: &a [x, x, x, x, x, x, x, x, x]"]
    lines += [
        f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    ]
    return "\n".join(lines)
