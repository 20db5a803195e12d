# shellcheck shell=bash
# pyarrow and DuckDB for the S3 sink's Parquet end-to-end test
# (tests/tests/e2e_s3_parquet.rs reads every object back with pyarrow and
# one with DuckDB). Installed once into the shared test venv (PyPI wheels,
# ~60 MB); no server to start. Exports SHARDLINE_TEST_PARQUET_PYTHON.
emulators_pip pyarrow duckdb
export SHARDLINE_TEST_PARQUET_PYTHON="$EMULATOR_VENV/bin/python3"
emulators_log "python with pyarrow $("$SHARDLINE_TEST_PARQUET_PYTHON" -c 'import pyarrow; print(pyarrow.__version__)'), duckdb $("$SHARDLINE_TEST_PARQUET_PYTHON" -c 'import duckdb; print(duckdb.__version__)')"
