#!/usr/bin/env bash
# Media load benchmark: builds uad, starts it (echo, auto-answer, a wide RTP
# port range, log level warn, no RTP timeout, a continuous 440 Hz hold tone)
# and drives it with tests/load/rtpload: N concurrent calls, each sending
# G.711 RTP at 20 ms, for DURATION; prints rtpload's report (loss, added
# jitter, round trip, uad's CPU and memory per call, call setup rate, the
# hold tone's timing, and who hit the limit first).
#
#   tests/load/rtp_load.sh [N] [rtpload flags...]
#   MODE=compare tests/load/rtp_load.sh [N,N...] [rtpload flags...]
#
#   N         concurrent calls (default 2000)
#   DURATION  media phase after the last call is up (default 60s)
#   RATE      call setups per second (default 200)
#   MODE      echo (default) | hold (-hold-half: half the calls held halfway,
#             each must hear the hold tone) | hold-all (every call held
#             halfway; the held parties stop sending, so uad paces N hold
#             tones) | bridge (calls bridged in pairs) | bridge-hold
#             | compare: for each N (default 1000,2000), the same echo load
#             against tests/load/udpecho (a bare Go UDP echo server, one
#             socket per stream) and against uad, then each one's CPU per
#             packet relayed and uad's ratio to the bare echo
#
#   PIN=1     pin uad (or udpecho) to CPU 0 and rtpload to CPU 1 (taskset),
#             so that each has one core and "who hits the limit first" is
#             each one's own.
#
# Extra arguments go to rtpload, e.g. -senders 4.
set -euo pipefail
cd "$(dirname "$0")/../.."
mode=${MODE:-echo}
if [ "$mode" = compare ]; then
	counts=${1:-1000,2000}
else
	counts=${1:-2000}
fi
shift || true
duration=${DURATION:-60s}
rate=${RATE:-200}
# Free ports unless given (other benchmarks may hold the usual ones).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
sip_port=${SIP_PORT:-$(free_port)}
api_port=${API_PORT:-$(free_port)}
# Ports: rtpload's sockets (one per sender), udpecho's (two a stream, below
# the ephemeral range) and uad's.
gen_ports=10000-10099
echo_port=11000
work=$(mktemp -d)
uad_pid= echo_pid=
cleanup() {
	for p in $uad_pid $echo_pid; do
		kill "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

# uad needs 2 sockets a call (RTP, RTCP), udpecho 1 a stream: raise the
# descriptor limit when allowed.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

go build -o "$work/uad" ./cmd/uad
go build -o "$work/rtpload" ./tests/load/rtpload
go build -o "$work/udpecho" ./tests/load/udpecho
cat >"$work/uad.yaml" <<YAML
sip:
  listen: ["udp://127.0.0.1:$sip_port"]
api:
  listen: "127.0.0.1:$api_port"
media:
  rtp_ports: "40000-59999"
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
pin_target=() pin_gen=()
if [ "${PIN:-0}" = 1 ] && command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
	pin_target=(taskset -c 0) pin_gen=(taskset -c 1)
fi
"${pin_target[@]}" "$work/uad" run --config "$work/uad.yaml" 2>"$work/uad.log" &
uad_pid=$!
for _ in $(seq 100); do
	kill -0 "$uad_pid" 2>/dev/null || { cat "$work/uad.log"; exit 1; }
	curl -sf "127.0.0.1:$api_port/v1/health" >/dev/null 2>&1 && break
	sleep 0.1
done
kill -0 "$uad_pid" 2>/dev/null || { cat "$work/uad.log"; exit 1; }

flags=()
case "$mode" in
echo | compare) ;;
hold) flags+=(-hold-half) ;;
hold-all) flags+=(-hold-all) ;;
bridge) flags+=(-bridge) ;;
bridge-hold) flags+=(-bridge -hold-half) ;;
*) echo "MODE must be echo, hold, hold-all, bridge, bridge-hold or compare" >&2; exit 2 ;;
esac

status=0
# against_uad N: rtpload against uad.
against_uad() {
	local n=$1
	shift
	echo "rtp_load: $n calls to uad, $duration, mode $mode, setup at $rate/s; uad pid $uad_pid, $(nproc) cores, nofile $(ulimit -n)${pin_target:+, uad pinned to CPU 0 and rtpload to CPU 1}"
	"${pin_gen[@]}" "$work/rtpload" -uad "127.0.0.1:$sip_port" -api "127.0.0.1:$api_port" -pid "$uad_pid" \
		-calls "$n" -duration "$duration" -rate "$rate" -rtp-ports "$gen_ports" "${flags[@]}" "$@" || status=$?
	if ! kill -0 "$uad_pid" 2>/dev/null; then
		echo "rtp_load: uad died during the run" >&2
		status=1
	fi
}

# against_echo N: the same load against udpecho.
against_echo() {
	local n=$1
	shift
	exec {ready}< <(exec "${pin_target[@]}" "$work/udpecho" -port "$echo_port" -streams "$n" 2>&1)
	echo_pid=$!
	local line
	if ! read -r -u "$ready" line || [[ $line != udpecho:* ]]; then
		echo "rtp_load: udpecho did not start: $line" >&2
		status=1
		return
	fi
	echo "rtp_load: $n streams to $line; $duration${pin_target:+, udpecho pinned to CPU 0 and rtpload to CPU 1}"
	"${pin_gen[@]}" "$work/rtpload" -echo "127.0.0.1:$echo_port" -pid "$echo_pid" \
		-calls "$n" -duration "$duration" -rtp-ports "$gen_ports" "$@" || status=$?
	kill "$echo_pid" 2>/dev/null || true
	wait "$echo_pid" 2>/dev/null || true
	echo_pid=
	exec {ready}<&-
}

if [ "$mode" != compare ]; then
	against_uad "$counts" "$@"
else
	summary=()
	for n in ${counts//,/ }; do
		# Reports to files (and then the terminal); progress goes to stderr.
		against_echo "$n" "$@" >"$work/echo-$n.txt"
		cat "$work/echo-$n.txt"
		against_uad "$n" "$@" >"$work/uad-$n.txt"
		cat "$work/uad-$n.txt"
		e=$(grep '^RESULT ' "$work/echo-$n.txt" | sed 's/.*target_us_per_packet=\([^ ]*\).*/\1/' || true)
		u=$(grep '^RESULT ' "$work/uad-$n.txt" | sed 's/.*target_us_per_packet=\([^ ]*\).*/\1/' || true)
		ec=$(grep '^RESULT ' "$work/echo-$n.txt" | sed 's/.*target_cpu_pct=\([^ ]*\).*/\1/' || true)
		uc=$(grep '^RESULT ' "$work/uad-$n.txt" | sed 's/.*target_cpu_pct=\([^ ]*\).*/\1/' || true)
		ratio=$(awk -v u="${u:-0}" -v e="${e:-0}" 'BEGIN { if (e > 0 && u > 0) printf "%.2f", u / e; else print "n/a" }')
		summary+=("$(printf '%6s  %9s µs (%5s%%)  %9s µs (%5s%%)  %6s' "$n" "${e:-n/a}" "${ec:-?}" "${u:-n/a}" "${uc:-?}" "$ratio")")
	done
	echo
	echo "==== CPU per packet relayed (one received + one sent), $duration each${pin_target:+, target pinned to CPU 0} ===="
	echo "streams  udpecho (CPU of one core)  uad (CPU of one core)      uad/udpecho"
	printf '%s\n' "${summary[@]}"
fi
if [ -s "$work/uad.log" ]; then
	echo "---- uad log (warnings and errors, last 20 lines) ----"
	tail -n 20 "$work/uad.log"
fi
exit "$status"
