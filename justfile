# swcli tasks. `just --list` shows them.

# Run the whole test suite (what CI runs, without the race pass).
test:
    bash scripts/test.sh

# The suite under the race detector, skipping the heavy end-to-end cases.
test-race:
    go test -count=1 -race -short ./...

# gofmt, go vet, staticcheck, go.mod tidy, no file over 1 MiB in git, darwin cross-builds.
lint:
    bash scripts/check-hygiene.sh

# Build swcli into ./bin.
build:
    go build -o bin/swcli ./cmd/swcli

# Store and peers on the same corpus, one run: prints the table of figures.
bench: build
    go run ./bench/cmd/storebench

# Micro-benchmarks (chunking, hashing, batched existence checks).
bench-go:
    go test -run '^$' -bench . -benchtime 3x ./bench/ ./cas/

# The main job end to end on a throwaway local instance.
demo:
    bash scripts/demo.sh

# runtime list beside a --gen-all-bundles build of ml-v1 in the same root (issue 14's figure).
bench-locks:
    go run ./bench/cmd/lockbench

# A server on PostgreSQL + S3 (SeaweedFS) beside one on local disk and restic copy, then 16
# clients for 60 s against one and two replicas (issue 13's figures). Starts its engines.
bench-cloud:
    go run ./bench/cmd/cloudbench

# The web console's heaviest pages rendered on the server: 10,000 versions, a 15,000-file
# directory, compare and history (target: 200 ms a page).
bench-console:
    go test -run '^$' -bench Console -benchtime 20x ./bench/

# issue 24's scale figures: ml-v1 beside a generated tree of 10 x its bytes and files
# (~3.5 GB, made in a temporary directory and removed), build, rebuild, extract, restic, tar.
bench-scale:
    go run ./bench/cmd/scalebench -x 10
