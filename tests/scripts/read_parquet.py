"""Reads Parquet files back for tests/tests/e2e_s3_parquet.rs, with the
readers users have: pyarrow for every file, DuckDB for one.

    python read_parquet.py DUCKDB_FILE FILE...

Prints one JSON document: the library versions; per file its schema
(name, Arrow type, nullable) and rows (timestamps as epoch milliseconds);
and DuckDB's column types and rows of DUCKDB_FILE.
"""

import json
import sys

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq


def plain(table):
    """Rows as JSON-ready dicts: timestamps become epoch milliseconds."""
    columns = []
    for field, column in zip(table.schema, table.columns):
        if pa.types.is_timestamp(field.type):
            column = column.cast(pa.int64())
        columns.append((field.name, column.to_pylist()))
    return [dict((name, values[i]) for name, values in columns) for i in range(table.num_rows)]


def main():
    duckdb_file, files = sys.argv[1], sys.argv[2:]
    out = {"pyarrow": pa.__version__, "duckdb": duckdb.__version__, "files": {}}
    for path in files:
        table = pq.read_table(path)
        out["files"][path] = {
            "schema": [[f.name, str(f.type), f.nullable] for f in table.schema],
            "rows": plain(table),
        }
    con = duckdb.connect()
    described = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [duckdb_file]).fetchall()
    columns = [row[0] for row in described]
    select = ", ".join(
        f'epoch_ms("{name}") AS "{name}"' if kind.startswith("TIMESTAMP") else f'"{name}"'
        for name, kind in ((row[0], row[1]) for row in described)
    )
    rows = con.execute(f"SELECT {select} FROM read_parquet(?)", [duckdb_file]).fetchall()
    out["duckdb_file"] = {
        "types": [[row[0], row[1]] for row in described],
        "rows": [dict(zip(columns, row)) for row in rows],
    }
    json.dump(out, sys.stdout, default=str)


if __name__ == "__main__":
    main()
