"""What ``write_query`` and ``source_queries`` accept: exactly one SELECT statement, nothing after it.

The statement is scanned as SQL text (string literals, quoted identifiers and comments skipped), so a ``;`` inside
a literal is fine and a second statement is refused before anything runs. Databases disagree on the lexical rules
(a backslash escapes a quote in MySQL, not in standard SQL; ``#`` starts a comment in MySQL and is an operator in
PostgreSQL; ``$tag$`` quotes in PostgreSQL and is part of a name in MySQL), so the text is scanned under every
combination, and a ``;`` that any of them sees as code refuses the query. The query then runs in a read-only
transaction where the backend has one, which also stops data-modifying CTEs.
"""

from __future__ import annotations

import itertools
import re

from lightning_dm8.errors import InvalidInputError

_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_FIRST_WORD = re.compile(r"\s*\(*\s*([A-Za-z]+)")


def _quoted_end(sql: str, i: int, backslash: bool) -> int:
    """The index after the literal or quoted name that starts at ``i``."""
    quote, end, n = sql[i], i + 1, len(sql)
    while end < n:
        if sql[end] == quote:
            if end + 1 < n and sql[end + 1] == quote:  # doubled quote: an escaped one
                end += 2
                continue
            return end + 1
        end += 2 if backslash and sql[end] == "\\" and quote != '"' else 1  # MySQL backslash escapes
    raise InvalidInputError(f"the query has an unterminated {quote} quote; check the SQL text")


def _skipped_end(sql: str, i: int, backslash: bool, hash_comments: bool, dollar_quotes: bool) -> int | None:
    """The index after the literal, quoted name or comment starting at ``i``; None when code starts there."""
    c = sql[i]
    if c in "'\"`":
        return _quoted_end(sql, i, backslash)
    if sql.startswith("--", i) or (hash_comments and c == "#"):
        end = sql.find("\n", i)
        return len(sql) if end < 0 else end
    if sql.startswith("/*", i):
        end = sql.find("*/", i + 2)
        if end < 0:
            raise InvalidInputError("the query has an unterminated /* comment; check the SQL text")
        return end + 2
    match = _DOLLAR.match(sql, i) if dollar_quotes and c == "$" else None
    if match is not None:
        tag = match.group(0)
        end = sql.find(tag, match.end())
        if end < 0:
            raise InvalidInputError(f"the query has an unterminated {tag} quote; check the SQL text")
        return end + len(tag)
    return None


def _code_only(sql: str, backslash: bool, hash_comments: bool, dollar_quotes: bool) -> str:
    """``sql`` with literals, quoted names and comments blanked out (same length; only code characters kept), under
    one set of lexical rules."""
    out: list[str] = []
    i = 0
    while i < len(sql):
        end = _skipped_end(sql, i, backslash, hash_comments, dollar_quotes)
        if end is None:
            out.append(sql[i])
            i += 1
        else:
            out.append(" " * (end - i))
            i = end
    return "".join(out)


def single_select(sql: str) -> str:
    """``sql`` without trailing semicolons, once it is known to be one SELECT (or WITH ... SELECT) statement.

    Raises :class:`InvalidInputError` naming what was found otherwise.
    """
    if not isinstance(sql, str) or not sql.strip():
        raise InvalidInputError("the query is empty; give one SELECT statement")
    readings: list[str] = []
    problem: InvalidInputError | None = None
    for rules in itertools.product((False, True), repeat=3):
        try:
            readings.append(_statement(_code_only(sql, *rules)))
        except InvalidInputError as exc:  # not valid SQL under these rules: the server would not run it that way
            problem = problem or exc
    if not readings:
        assert problem is not None
        raise problem
    if any(";" in code for code in readings):
        raise InvalidInputError(
            "the query holds more than one statement (a ';' separates them); give exactly one SELECT statement"
        )
    code = min(readings, key=len)
    match = _FIRST_WORD.match(code)
    word = match.group(1).upper() if match else ""
    if word not in ("SELECT", "WITH", "VALUES"):
        raise InvalidInputError(f"the query starts with {word or 'no keyword'!r}; only a SELECT statement can be read "
                                f"into a dataset")
    return sql[: len(code)]


def _statement(code: str) -> str:
    """The code without trailing whitespace and semicolons."""
    code = code.rstrip()
    while code.endswith(";"):
        code = code[:-1].rstrip()
    return code
