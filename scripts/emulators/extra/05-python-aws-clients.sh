# shellcheck shell=bash
# AWS's own Python clients (boto3, AWS CLI v1) for the conformance test of
# `shardline local-kinesis` (core/local-kinesis/tests/boto3_conformance.py).
# Installed once into the shared test venv (~30 s).
emulators_pip boto3 awscli
export SHARDLINE_TEST_PYTHON="$EMULATOR_VENV/bin/python3"
emulators_log "python with boto3/awscli: $SHARDLINE_TEST_PYTHON"
