#!/usr/bin/env bash
# Media load benchmark: builds uad, starts it (echo, auto-answer, a wide RTP
# port range, log level warn, no RTP timeout, a continuous 440 Hz hold tone)
# and drives it with tests/load/rtpload: N concurrent calls, each sending
# G.711 RTP at 20 ms, for DURATION; prints rtpload's report (loss, added
# jitter, round trip, uad's CPU and memory per call, call setup rate, and who
# hit the limit first).
#
#   tests/load/rtp_load.sh [N] [rtpload flags...]
#
#   N         concurrent calls (default 2000)
#   DURATION  media phase after the last call is up (default 60s)
#   RATE      call setups per second (default 200)
#   MODE      echo (default) | hold (-hold-half: half the calls held halfway,
#             each must hear the hold tone) | bridge (calls bridged in pairs)
#             | bridge-hold
#
#   PIN=1     pin uad to CPU 0 and rtpload to CPU 1 (taskset), so that each
#             has one core and "who hits the limit first" is each one's own.
#
# Extra arguments go to rtpload, e.g. -senders 4.
set -euo pipefail
cd "$(dirname "$0")/../.."
calls=${1:-2000}
shift || true
duration=${DURATION:-60s}
rate=${RATE:-200}
mode=${MODE:-echo}
# Free ports unless given (other benchmarks may hold the usual ones).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
sip_port=${SIP_PORT:-$(free_port)}
api_port=${API_PORT:-$(free_port)}
work=$(mktemp -d)
uad_pid=
cleanup() {
	if [ -n "$uad_pid" ]; then kill "$uad_pid" 2>/dev/null || true; wait "$uad_pid" 2>/dev/null || true; fi
	rm -rf "$work"
}
trap cleanup EXIT

# uad needs 2 sockets a call (RTP, RTCP) and rtpload 1 (+ SIP, API): raise
# the descriptor limit when allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

go build -o "$work/uad" ./cmd/uad
go build -o "$work/rtpload" ./tests/load/rtpload
cat >"$work/uad.yaml" <<YAML
sip:
  listen: ["udp://127.0.0.1:$sip_port"]
api:
  listen: "127.0.0.1:$api_port"
media:
  rtp_ports: "20000-59999"
  rtp_timeout: 0s
  hold_tone: "440"
calls:
  auto_answer: true
  media: echo
  bridge_hold: tone
log:
  level: warn
YAML
"$work/uad" config check "$work/uad.yaml"
pin_uad=() pin_gen=()
if [ "${PIN:-0}" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	pin_uad=(taskset -c 0) pin_gen=(taskset -c 1)
fi
"${pin_uad[@]}" "$work/uad" run --config "$work/uad.yaml" 2>"$work/uad.log" &
uad_pid=$!
for _ in $(seq 100); do
	kill -0 "$uad_pid" 2>/dev/null || { cat "$work/uad.log"; exit 1; }
	curl -sf "127.0.0.1:$api_port/v1/health" >/dev/null 2>&1 && break
	sleep 0.1
done
kill -0 "$uad_pid" 2>/dev/null || { cat "$work/uad.log"; exit 1; }

flags=()
case "$mode" in
echo) ;;
hold) flags+=(-hold-half) ;;
bridge) flags+=(-bridge) ;;
bridge-hold) flags+=(-bridge -hold-half) ;;
*) echo "MODE must be echo, hold, bridge or bridge-hold" >&2; exit 2 ;;
esac

echo "rtp_load: $calls calls, $duration, mode $mode, setup at $rate/s; uad pid $uad_pid, $(nproc) cores, nofile $(ulimit -n)${pin_uad:+, uad pinned to CPU 0 and rtpload to CPU 1}"
status=0
"${pin_gen[@]}" "$work/rtpload" -uad "127.0.0.1:$sip_port" -api "127.0.0.1:$api_port" -pid "$uad_pid" \
	-calls "$calls" -duration "$duration" -rate "$rate" -rtp-ports 10000-19999 "${flags[@]}" "$@" || status=$?
if ! kill -0 "$uad_pid" 2>/dev/null; then
	echo "rtp_load: uad died during the run" >&2
	status=1
fi
if [ -s "$work/uad.log" ]; then
	echo "---- uad log (warnings and errors, last 20 lines) ----"
	tail -n 20 "$work/uad.log"
fi
exit "$status"
