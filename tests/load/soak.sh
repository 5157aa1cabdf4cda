#!/usr/bin/env bash
# Soak test: two uad instances, SOAK_CALLS calls (default 20) between them,
# each call held and resumed at most once per SOAK_PACE (default 500ms),
# continuously for SOAK_DURATION (a Go duration, default 10m), after a
# warm-up under the same load. Prints uad's goroutines (uad_go_goroutines
# from /metrics), threads, file descriptors (/proc/PID/fd), resident memory
# (/proc/PID/status VmRSS) and Go heap in use: idle, after the warm-up, at
# the peaks, at the end and after the hangup. Samples are taken when no SIP
# transaction is in flight (64*T1 after the last request). It fails when
# any cycle fails, when goroutines or descriptors grew by more than 10 or
# the RSS by more than 20% (over the warm-up's) from start to end, or when
# they do not return to the idle values after the hangup.
#
# It is TestSoakLong in tests/soak_test.go; TestSoakShort runs the same logic
# for 20 s (sip.t1 50 ms) in the ordinary suite.
#
#   bash tests/load/soak.sh                  # 10 minutes
#   SOAK_DURATION=1h SOAK_CALLS=50 SOAK_PACE=100ms bash tests/load/soak.sh
#   UAD_BIN=/path/to/uad bash tests/load/soak.sh   # a prebuilt (e.g. -race) binary
set -euo pipefail
cd "$(dirname "$0")/../.."

export SOAK_DURATION=${SOAK_DURATION:-10m}
export SOAK_CALLS=${SOAK_CALLS:-20}

# go test's own timeout: the soak plus 10 minutes for the warm-up, the quiet
# periods, setup and teardown.
case $SOAK_DURATION in
*h) minutes=$((${SOAK_DURATION%h} * 60)) ;;
*m) minutes=${SOAK_DURATION%m} ;;
*s) minutes=$((${SOAK_DURATION%s} / 60)) ;;
*) minutes=1440 ;;
esac
[[ $minutes =~ ^[0-9]+$ ]] || minutes=1440

echo "soak: $SOAK_CALLS calls, $SOAK_DURATION (go test -timeout $((minutes + 10))m)"
exec go test -count=1 -run '^TestSoakLong$' -timeout "$((minutes + 10))m" -v ./tests/
