#!/usr/bin/env bash
# Flood test: a uad (built and started by the test harness, with the
# default limits but sip.tcp_message_timeout 3s, sip.rate_limit 20 so that
# every source gets rate-limit state) holds a call to a second uad while
#
#  - FLOOD_SOURCES (default 100000) OPTIONS arrive over UDP within about
#    3 s, each from a distinct address 127.100.x.y and a fresh port; during
#    it sipp places a new call, which must connect. It prints the flood's
#    pace, uad's goroutines, descriptors and memory before and after, and
#    the peak RSS growth, which must stay under 64 MiB; the held call must
#    still be held afterwards and resume;
#  - 6 sources open 200 TCP connections each and send nothing (128 per
#    source are kept, sip.tcp_max_per_source), then 100 clients trickle a
#    request's header bytes, one every 100 ms, never ending it: each must be
#    cut off after the message timeout; a call over TCP must then connect.
#
# It is TestFloodLong in tests/flood_test.go; TestFloodShort runs the same
# logic with 20,000 sources and a handful of connections in the suite.
#
#   bash tests/load/flood.sh
#   FLOOD_SOURCES=200000 bash tests/load/flood.sh
#   UAD_BIN=/path/to/uad bash tests/load/flood.sh   # a prebuilt binary
set -euo pipefail
cd "$(dirname "$0")/../.."
export FLOOD_LONG=1
exec go test -count=1 -run '^TestFloodLong$' -timeout 10m -v ./tests/
