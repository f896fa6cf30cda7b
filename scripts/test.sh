#!/usr/bin/env bash
# The whole test suite (README's test command). First the one-time builds, outside any
# test's deadline and with progress: SeaweedFS for the S3 tests and the ml corpus, both
# cached for the next run. Then go test over every package. Arguments go to go test
# (e.g. -short, which needs neither build and skips them, or -run).
set -euo pipefail
cd "$(dirname "$0")/.."
short=0
for a in "$@"; do
  [ "$a" = "-short" ] && short=1
done
if [ "$short" = 0 ]; then
  eval "$(go run ./internal/cmd/testprep)"
fi
exec go test -count=1 -timeout 30m "$@" ./...
