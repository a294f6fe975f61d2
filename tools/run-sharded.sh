#!/usr/bin/env bash
# Runs a pytest command as N processes side by side, the i-th with MNENGINE_TEST_SHARD=i/N
# (tests/conftest.py keeps every N-th test for it), and fails if any of them fails. For the
# suites CI runs emulated or sanitized, which use one core each: on two cores, two shards
# finish in about half the time. Each shard's output is shown once all have finished.
#   bash tools/run-sharded.sh N COMMAND...
set -uo pipefail
count=${1:?usage: run-sharded.sh N COMMAND...}
shift
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
pids=()
for ((shard = 0; shard < count; shard++)); do
  MNENGINE_TEST_SHARD=$shard/$count "$@" >"$logs/$shard.log" 2>&1 &
  pids+=($!)
done
status=0
for ((shard = 0; shard < count; shard++)); do
  wait "${pids[$shard]}" || status=1
  echo "---- shard $shard/$count"
  cat "$logs/$shard.log"
done
exit $status
