#!/usr/bin/env bash
# Checks what the house keeps true, beside the tests: gofmt, go vet, staticcheck, go.mod tidy,
# no large files in git, and the macOS cross-builds. `just lint` and .ci/run run it.
set -euo pipefail
cd "$(dirname "$0")/.."

STATICCHECK_VERSION=v0.8.2

echo "== gofmt"
bad=$(gofmt -l .)
if [ -n "$bad" ]; then echo "gofmt would change:"; echo "$bad"; exit 1; fi

echo "== go vet"
go vet ./...

echo "== staticcheck $STATICCHECK_VERSION"
sc="$(go env GOPATH)/bin/staticcheck"
if ! "$sc" -version 2>/dev/null | grep -q "${STATICCHECK_VERSION#v}"; then
  go install "honnef.co/go/tools/cmd/staticcheck@$STATICCHECK_VERSION"
fi
"$sc" ./...

echo "== go mod tidy changes nothing"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp go.mod go.sum "$tmp/"
go mod tidy
if ! cmp -s go.mod "$tmp/go.mod" || ! cmp -s go.sum "$tmp/go.sum"; then
  cp "$tmp/go.mod" "$tmp/go.sum" .
  echo "go mod tidy changes go.mod or go.sum: run it and commit the result"; exit 1
fi

echo "== no tracked file over 1 MiB"
if git rev-parse --git-dir >/dev/null 2>&1; then
  big=$(git ls-tree -r -l HEAD | awk '$4 > 1048576 {print $4, $5}')
  if [ -n "$big" ]; then echo "files over 1 MiB in git:"; echo "$big"; exit 1; fi
fi

echo "== cross-builds: darwin/arm64, darwin/amd64"
GOOS=darwin GOARCH=arm64 go build ./...
GOOS=darwin GOARCH=amd64 go build ./...
GOOS=darwin GOARCH=arm64 go vet ./...
