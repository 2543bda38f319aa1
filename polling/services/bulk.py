"""Row-by-row UPDATEs in one round trip, for the hot path of checks (polls.py).

`QuerySet.bulk_update` builds a CASE WHEN per field and row, and resolving those expressions was
a fifth of a busy worker's time (docs/BENCHMARKS.md). An UPDATE statement run with
`executemany` costs almost nothing to build and psycopg pipelines it: one round trip for all rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from django.db import connection
from django.db.models import Model


def update_rows(
    model: type[Model], *, set_fields: Sequence[str], where_fields: Sequence[str], rows: Iterable[Sequence]
) -> None:
    """`UPDATE <table> SET <set_fields> WHERE <where_fields>` once per row; each row holds the
    values of `set_fields` then of `where_fields`, as Python values (prepared like the ORM does)."""
    fields = [model._meta.get_field(name) for name in (*set_fields, *where_fields)]
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(f.column)} = %s" for f in fields[: len(set_fields)])
    conditions = " AND ".join(f"{quote(f.column)} = %s" for f in fields[len(set_fields) :])
    # Only quoted names from the model are interpolated; every value is a parameter.
    sql = f"UPDATE {quote(model._meta.db_table)} SET {assignments} WHERE {conditions}"  # noqa: S608
    params = [
        [field.get_db_prep_save(value, connection) for field, value in zip(fields, row, strict=True)]
        for row in rows
    ]
    if params:
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)
