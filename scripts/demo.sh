#!/usr/bin/env bash
# The main job end to end on a throwaway standalone instance: build swcli, then create a
# runtime (a real venv), build it, tag, list, remove and recover, extract it elsewhere,
# restore it and use it, and audit the ledger. Needs Go and Python 3 (with venv).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go build -o "$work/swcli" ./cmd/swcli
export SWCLI_ROOT="$work/root" SWCLI_CONFIG="$work/config.yaml"
sw() { printf '\n$ swcli %s\n' "$*"; "$work/swcli" "$@"; }

# A runtime with a local wheel and a pure-Python dependency (no package index needed).
sw runtime create -n demo "$work/demo"
python3 ../shared/corpus/make-wheel.py greet 1.0 "$work/demo/dist" >/dev/null
python3 ../shared/corpus/make-wheel.py colours 2.1 "$work/wheelhouse" >/dev/null
"$work/demo/venv/bin/python" -m pip install -q --no-index --find-links "$work/wheelhouse" colours
cat >"$work/demo/runtime.yaml" <<YAML
name: demo
mode: venv
environment: {python: "$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"}
dependencies:
  - wheels: [dist/greet-1.0-py3-none-any.whl]
  - pip: [colours]
YAML
sw runtime build "$work/demo"
sw runtime build --gen-all-bundles "$work/demo"
sw runtime tag demo/version/latest prod
sw runtime list
sw runtime history demo
sw runtime info demo/version/v0
sw runtime remove -y demo/version/prod
sw runtime list --show-removed
sw runtime recover demo/version/v1
sw runtime extract demo/version/prod --target-dir "$work/elsewhere"
sw runtime restore "$work/elsewhere"
sh -c "$(sh "$work/elsewhere/activate.host") && python -c 'import colours; print(\"restored venv works:\", colours.hello())'"
sw runtime extract demo/version/v0 --target-dir "$work/from-lock"
PIP_NO_INDEX=1 PIP_FIND_LINKS="$work/wheelhouse" sw runtime restore "$work/from-lock"
"$work/from-lock/venv/bin/python" -c 'import greet, colours; print("installed from the lock:", greet.hello(), "/", colours.hello())'
sw ledger log
sw ledger verify
sw fsck
