#!/usr/bin/env bash
# Runs every fuzz target of the module, one after the other, for FUZZTIME
# each (default 10m):
#   bash tests/fuzz.sh                 # 10 minutes per target
#   FUZZTIME=10s bash tests/fuzz.sh    # a smoke run (tests/run.sh does this)
# FUZZMINIMIZETIME (default 5s) caps the minimising of each new input,
# which otherwise may take a minute and stop fuzzing meanwhile.
# A crash leaves its input in the package's testdata/fuzz/<Name>/, where
# `go test ./...` runs it from then on; the script goes on with the other
# targets and exits non-zero at the end.
set -euo pipefail

cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-10m}"
minimizetime="${FUZZMINIMIZETIME:-5s}"

# Only packages with a Fuzz function: `go test -list` runs the test binary,
# and the end-to-end package's TestMain builds the daemon first.
mapfile -t dirs < <(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u)

# inputs counts the files of a corpus directory (0 when there is none).
inputs() { { ls "$1" 2>/dev/null || true; } | wc -l; }

failed=()
for dir in "${dirs[@]}"; do
	for name in $(go test -list '^Fuzz' "$dir" | grep '^Fuzz' || true); do
		echo "fuzz.sh: $dir $name for $fuzztime" >&2
		corpus="$dir/testdata/fuzz/$name"
		before=$(inputs "$corpus")
		out=$(mktemp)
		if ! go test "$dir" -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" -fuzzminimizetime "$minimizetime" 2>&1 | tee "$out"; then
			# Go 1.26's fuzzing coordinator can report its own -fuzztime
			# deadline as a failure when a worker is mid-exec at that moment
			# (go.dev/issue/75804, fixed in Go 1.27): no input is written
			# then. A failure that wrote an input is a real one.
			if [ "$(inputs "$corpus")" = "$before" ] && grep -q 'context deadline exceeded' "$out" &&
				! grep -q -e 'Failing input written' -e '^panic:' "$out"; then
				echo "fuzz.sh: $dir $name: the coordinator's deadline race (go.dev/issue/75804), no failing input: not a failure" >&2
			else
				failed+=("$dir $name")
			fi
		fi
		rm -f "$out"
	done
done
if [ "${#failed[@]}" -gt 0 ]; then
	printf 'fuzz.sh: failed: %s\n' "${failed[@]}" >&2
	exit 1
fi
