#!/usr/bin/env bash
# Builds SeaweedFS's weed (an S3-compatible server, Apache-2.0) once per version and prints
# the path of the cached binary. go install refuses the module (replace directives), so it
# is built inside a copy of the module directory. About 7 CPU-minutes the first time.
set -euo pipefail
version="${SWCLI_WEED_VERSION:-v0.0.0-20261109003541-7506e5f91cd6}"
cache="${SWCLI_ENGINE_CACHE:-$HOME/.cache/swcli-engines}"
bin="$cache/weed-$version/weed"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$cache"
lock="$cache/weed-$version.lock"
exec 9>"$lock"
flock 9
if [ ! -x "$bin" ]; then
  dir=$(go mod download -json "github.com/seaweedfs/seaweedfs@$version" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')
  work=$(mktemp -d "$cache/build-XXXXXX")
  trap 'rm -rf "$work"' EXIT
  cp -r "$dir/." "$work/src"
  chmod -R u+w "$work/src"
  (cd "$work/src" && go build -o "$work/weed" ./weed) >&2
  mkdir -p "$(dirname "$bin")"
  mv "$work/weed" "$bin"
fi
echo "$bin"
