"""DM8 SQL text -> SQLite SQL text, for the statements the project and dmSQLAlchemy send.

The model's tables live in SQLite (its storage engine), so each statement is tokenised and rewritten:

* identifiers are folded the way DM8 folds them and quoted for SQLite. With ``CASE_SENSITIVE=Y`` an unquoted name
  becomes upper case and a quoted one keeps its case ("当大小写敏感时,小写的标识符应用双引号括起,否则被转换为大写",
  DM8 dminit manual, parameter CASE_SENSITIVE); SQLite compares names without case, so :func:`encode` keeps
  ``"level"`` and ``LEVEL`` apart. With ``CASE_SENSITIVE=N`` names keep the case they are written in and compare
  without it ("系统不自动转换标识符的大小写,在标识符比较时也不区分大小写", same parameter), which is SQLite's own rule;
* ``OFFSET n ROWS`` / ``FETCH FIRST n ROWS ONLY`` (dmSQLAlchemy 2.0.17 ``extensions.py``,
  ``DMDialect_Adapter.limit_offset_clause``) become ``LIMIT`` / ``OFFSET``;
* ``?`` placeholders are numbered (``?1``, ``?2``...), so that reordering a clause keeps each value in its place;
* ``USER`` is the session's user name.

Nothing here decides what DM8 accepts: statements the model does not know fail loudly (:class:`Unsupported`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>--[^\n]*|/\*.*?\*/)
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"(?:[^"]|"")*")
  | (?P<number>0[xX][0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)
  | (?P<word>[^\W\d][\w$#]*)
  | (?P<param>\?\d*|:\w+)
  | (?P<op>\|\||<=|>=|<>|!=|[(),.;*=<>+\-/%&|~])
    """,
    re.VERBOSE | re.DOTALL,
)

KEYWORDS = frozenset("""
    ADD ALL ALTER AND ANY AS ASC BEGIN BETWEEN BY CALL CASCADE CASE CAST CHECK COLLATE COLUMN COMMIT CONSTRAINT CREATE
    CROSS CURRENT_DATE CURRENT_TIMESTAMP DEFAULT DELETE DESC DISTINCT DROP ELSE END ESCAPE EXCEPT EXISTS FALSE FETCH
    FIRST FOR FOREIGN FROM FULL GROUP HAVING IF IN INDEX INNER INSERT INTERSECT INTO IS JOIN KEY LEFT LIKE LIMIT NATURAL
    NEXT NOT NULL NULLS OFFSET ON ONLY OR ORDER OUTER OVER PRIMARY READ RECURSIVE REFERENCES RENAME REPLACE RIGHT
    ROLLBACK ROW ROWS SELECT SET SOME TABLE THEN TO TRANSACTION TRUE UNION UNIQUE UPDATE USING VALUES VIEW WHEN WHERE
    WITH WRITE
    BIGINT BINARY BIT BLOB BOOLEAN BYTE CHAR CHARACTER CLOB DATE DATETIME DEC DECIMAL DOUBLE FLOAT IMAGE INT INTEGER
    LONGVARBINARY LONGVARCHAR NCHAR NCLOB NUMBER NUMERIC NVARCHAR NVARCHAR2 PRECISION REAL SMALLINT TEXT TIME TIMESTAMP
    TINYINT VARBINARY VARCHAR VARCHAR2
""".split())
"""Words that are never names in the statements the model serves (the rest of a statement's words are)."""

_NAME_BEFORE_PAREN = frozenset({"TABLE", "INTO", "VIEW", "REFERENCES", "EXISTS", "ON", "JOIN", "UPDATE", "FROM"})
"""After these keywords a word followed by ``(`` is a table name, not a function."""


class Unsupported(Exception):
    """A statement (or part of one) outside what the model serves."""


@dataclass(frozen=True)
class Token:
    kind: str
    text: str

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else self.text


def tokenize(sql: str) -> list[Token]:
    """The significant tokens of ``sql`` (no spaces, no comments)."""
    tokens: list[Token] = []
    at = 0
    while at < len(sql):
        match = TOKEN.match(sql, at)
        if match is None:
            raise Unsupported(f"cannot read the SQL at {sql[at:at + 30]!r}")
        kind = match.lastgroup or ""
        if kind not in ("space", "comment"):
            tokens.append(Token(kind, match.group()))
        at = match.end()
    return tokens


def fold(name: str) -> str:
    """An unquoted DM8 name as a case-sensitive server stores it: ASCII letters upper case."""
    return "".join(c.upper() if c.isascii() else c for c in name)


def encode(name: str) -> str:
    """A case-sensitive DM8 name as a SQLite name: SQLite ignores the case of ASCII letters, so each lower-case one
    is marked (``level`` -> ``^l^e^v^e^l``) and ``LEVEL`` stays itself."""
    return "".join(f"^{c}" if c == "^" or ("a" <= c <= "z") else c for c in name)


def decode(name: str) -> str:
    out, skip = [], False
    for c in name:
        if c == "^" and not skip:
            skip = True
            continue
        out.append(c)
        skip = False
    return "".join(out)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def unquote(text: str) -> str:
    return text[1:-1].replace('""', '"')


@dataclass
class Dialect:
    """How names are folded: ``case_sensitive`` as the server was initialised, and the session's user."""

    case_sensitive: bool = True
    user: str = "SYSDBA"

    def stored(self, token: Token) -> str:
        """The name a word or quoted identifier stands for, as the catalogue holds it."""
        if token.kind == "quoted":
            return unquote(token.text)
        return fold(token.text) if self.case_sensitive else token.text

    def sqlite_name(self, stored: str) -> str:
        return quote(encode(stored) if self.case_sensitive else stored)

    def result_name(self, sqlite_column: str) -> str:
        return decode(sqlite_column) if self.case_sensitive else sqlite_column


def is_function(tokens: list[Token], i: int) -> bool:
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    prev = tokens[i - 1].upper if i > 0 else ""
    return nxt is not None and nxt.text == "(" and prev not in _NAME_BEFORE_PAREN


def translate(tokens: list[Token], dialect: Dialect, params: list[int] | None = None) -> str:
    """SQLite text for DM8 ``tokens``; ``params`` collects the position of each ``?`` (numbered from 1)."""
    out: list[str] = []
    counter = params if params is not None else []
    pending: list[dict[str, str]] = [{}]  # per parenthesis depth: the LIMIT and OFFSET found at that depth
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token.kind == "op":
            _punctuation(token.text, out, pending)
        elif token.kind == "word" and token.upper in ("OFFSET", "FETCH"):
            skip = _row_limit(tokens, i, pending[-1], counter)
            if skip:
                i += skip
                continue
            out.append(token.upper)
        elif token.kind == "param":
            if token.text != "?":
                raise Unsupported(f"placeholder {token.text!r}: dmPython's paramstyle is qmark")
            counter.append(len(counter) + 1)
            out.append(f"?{len(counter)}")
        elif token.kind in ("word", "quoted"):
            out.append(_word(tokens, i, dialect))
        else:
            out.append(token.text)
        i += 1
    out.extend(_limit(pending.pop()))
    if pending:
        raise Unsupported("unbalanced parentheses")
    return _join(out)


def _punctuation(text: str, out: list[str], pending: list[dict[str, str]]) -> None:
    if text == "(":
        pending.append({})
    elif text == ")":
        out.extend(_limit(pending.pop()))
    elif text == ";":
        return
    out.append(text)


def _row_limit(tokens: list[Token], i: int, clauses: dict[str, str], counter: list[int]) -> int:
    """Tokens used by ``OFFSET n ROWS`` or ``FETCH FIRST n ROWS ONLY`` at ``i`` (0: neither)."""
    if tokens[i].upper == "OFFSET" and _ahead(tokens, i + 2, "ROWS", "ROW"):
        clauses["offset"] = _value(tokens[i + 1], counter)
        return 3
    if tokens[i].upper == "FETCH" and _ahead(tokens, i + 1, "FIRST", "NEXT"):
        if not (_ahead(tokens, i + 3, "ROWS", "ROW") and _ahead(tokens, i + 4, "ONLY")):
            raise Unsupported("only FETCH FIRST n ROWS ONLY is modelled")
        clauses["limit"] = _value(tokens[i + 2], counter)
        return 5
    return 0


def _word(tokens: list[Token], i: int, dialect: Dialect) -> str:
    token = tokens[i]
    if token.kind == "quoted":
        return dialect.sqlite_name(dialect.stored(token))
    if token.upper == "USER" and not is_function(tokens, i):
        return "'" + dialect.user.replace("'", "''") + "'"
    if token.upper in KEYWORDS or is_function(tokens, i):
        return token.upper
    return dialect.sqlite_name(dialect.stored(token))


def _ahead(tokens: list[Token], i: int, *words: str) -> bool:
    return i < len(tokens) and tokens[i].upper in words


def _value(token: Token, counter: list[int]) -> str:
    if token.kind == "param":
        counter.append(len(counter) + 1)
        return f"?{len(counter)}"
    if token.kind == "number":
        return token.text
    raise Unsupported(f"a row count must be a number or a parameter, not {token.text!r}")


def _limit(clauses: dict[str, str]) -> list[str]:
    if not clauses:
        return []
    return [" LIMIT", clauses.get("limit", "-1"), "OFFSET", clauses.get("offset", "0")]


def _join(parts: list[str]) -> str:
    text = ""
    for i, part in enumerate(parts):
        if i and part != "." and parts[i - 1] != ".":
            text += " "
        text += part
    return text


def split_top_level(tokens: list[Token], separator: str = ",") -> list[list[Token]]:
    """``tokens`` cut at ``separator`` outside parentheses."""
    parts: list[list[Token]] = [[]]
    depth = 0
    for token in tokens:
        if token.text == "(":
            depth += 1
        elif token.text == ")":
            depth -= 1
        if depth == 0 and token.kind == "op" and token.text == separator:
            parts.append([])
        else:
            parts[-1].append(token)
    return [p for p in parts if p]


def matching_paren(tokens: list[Token], start: int) -> int:
    """Index of the ``)`` closing the ``(`` at ``start``."""
    depth = 0
    for i in range(start, len(tokens)):
        if tokens[i].text == "(":
            depth += 1
        elif tokens[i].text == ")":
            depth -= 1
            if depth == 0:
                return i
    raise Unsupported("unbalanced parentheses")
