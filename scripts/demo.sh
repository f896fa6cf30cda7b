#!/usr/bin/env bash
# The main job end to end on a throwaway standalone instance: build swcli, make a runtime
# workdir (a real venv) with shared/corpus/make-corpus.sh, store it, read it back, compare,
# verify. Needs Go and Python 3.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/swcli" ./cmd/swcli
export SWCLI_ROOT="$work/root"
sw() { echo "+ swcli $*" >&2; "$work/swcli" "$@"; }

bash ../shared/corpus/make-corpus.sh "$work/corpus" small >/dev/null
tree=$(sw store put "$work/corpus/small")
echo "$tree"
sw store put "$work/corpus/small" -o json
sw store get "$tree" "$work/out"
diff -r --no-dereference "$work/corpus/small" "$work/out" && echo "extracted tree is identical"
sw fsck
