"""Only one SELECT statement gets through, whatever lexical rules the database uses."""

from __future__ import annotations

import re

import pytest

from lightning_dm8.errors import InvalidInputError
from lightning_dm8.tables.sql_guard import single_select


@pytest.mark.parametrize(("sql", "kept"), [
    ("SELECT 1", "SELECT 1"),
    ("SELECT 1;  ", "SELECT 1"),
    ("SELECT ';' AS x FROM t", "SELECT ';' AS x FROM t"),
    ('SELECT "a;b" FROM t', 'SELECT "a;b" FROM t'),
    ("SELECT 1 -- trailing; comment", "SELECT 1"),
    ("SELECT /* ; */ 1", "SELECT /* ; */ 1"),
    ("WITH a AS (SELECT 1 AS x) SELECT x FROM a", "WITH a AS (SELECT 1 AS x) SELECT x FROM a"),
    ("(SELECT 1) UNION (SELECT 2)", "(SELECT 1) UNION (SELECT 2)"),
    ("select 'it''s' as x", "select 'it''s' as x"),
])
def test_one_select_is_accepted(sql: str, kept: str) -> None:
    assert single_select(sql) == kept


@pytest.mark.parametrize(("sql", "message"), [
    ("SELECT 1; CREATE TABLE x (a INT); COMMIT; SELECT 1", "more than one statement"),
    # A backslash escapes the quote in MySQL but not in standard SQL: PostgreSQL would run the DROP.
    ("SELECT 'a\\'; DROP TABLE t; --'", "more than one statement"),
    # '#' is a comment in MySQL and an operator in PostgreSQL.
    ("SELECT 1 # 2; DROP TABLE t", "more than one statement"),
    # '$b$' quotes in PostgreSQL and is part of a name in MySQL.
    ("SELECT a$b$ ; DROP TABLE t; SELECT $b$", "more than one statement"),
    ("DELETE FROM t", "starts with 'DELETE'; only a SELECT statement"),
    ("  ", "the query is empty"),
    ("SELECT 'open", "unterminated ' quote"),
    ("SELECT 1 /* open", "unterminated /* comment"),
])
def test_anything_else_is_refused_before_it_runs(sql: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        single_select(sql)
