#!/usr/bin/env bash
# Call-rate benchmark: runs uad (echo mode) and drives it with sipp at
# increasing rates, printing per rate the calls made, the rate sipp achieved,
# failed calls, SIP retransmissions, uad's CPU and peak resident memory, and
# whether the run was clean: no failed call, no retransmission, and at least
# 95% of the target rate achieved (a throttled run is no pass).
#
#   tests/load/sipp_rate.sh [basic|hold] [RATE ...]
#
# basic: sipp's built-in UAC (INVITE, 200, ACK, BYE, 200; no pauses).
# hold:  tests/load/hold_cycle.xml (call, hold re-INVITE, resume re-INVITE,
#        BYE); also prints sipp's response times (rtd 1 = hold, 2 = resume).
#
# sipp gets 4 MiB socket buffers (-buff_size; the kernel caps them at
# net.core.rmem_max): with its default, sipp's own socket overflows in
# bursts from about 1,500 calls/s (RcvbufErrors in /proc/net/snmp) and it
# retransmits requests uad already answered.
#
# UAD_YAML is appended to uad's config, e.g. to compare with SIP capture off:
#   UAD_YAML=$'trace:\n  messages_per_call: 0' tests/load/sipp_rate.sh hold 1600
set -euo pipefail
cd "$(dirname "$0")/../.."
kind=${1:-basic}
shift || true
rates=${*:-"500 1000 1500 2000 2500 3000"}
seconds=${SECONDS_PER_RATE:-10}
work=$(mktemp -d)
trap 'kill $uad_pid 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$work"' EXIT

go build -o "$work/uad" ./cmd/uad
cat > "$work/uad.yaml" <<YAML
sip:
  listen: ["udp://127.0.0.1:25060"]
api:
  listen: "127.0.0.1:28089"
media:
  rtp_ports: "30000-59999"
log:
  level: warn
${UAD_YAML:-}
YAML
"$work/uad" run --config "$work/uad.yaml" 2>"$work/uad.log" &
uad_pid=$!
for _ in $(seq 50); do curl -sf 127.0.0.1:28089/v1/health >/dev/null && break; sleep 0.1; done

ticks=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$uad_pid/stat"; }

printf '%-6s %-8s %-9s %-7s %-8s %-6s %-8s %-10s %s\n' rate calls achieved failed retrans clean "cpu%" "peak_rss" "rtd(ms) p50/p99"
for rate in $rates; do
  calls=$((rate * seconds))
  stat="$work/stat-$rate.csv"
  before=$(cpu_ticks); start=$(date +%s.%N)
  if [ "$kind" = hold ]; then
    scen=(-sf "$PWD/tests/load/hold_cycle.xml" -trace_rtt -rtt_freq 100)
  else
    scen=(-sn uac -d 0)
  fi
  (cd "$work" && timeout $((seconds * 4 + 10)) sipp "${scen[@]}" -buff_size 4194304 -i 127.0.0.1 -p 25070 -r "$rate" -m "$calls" -l $((rate * 4)) \
    -nostdin -timeout $((seconds * 4))s -trace_stat -stf "$stat" -fd 1 127.0.0.1:25060 >/dev/null 2>&1) || true
  after=$(cpu_ticks); end=$(date +%s.%N)
  cpu=$(echo "($after - $before) / $ticks / ($end - $start) * 100" | bc -l)
  rss=$(awk '/VmHWM/ {print $2 " kB"}' "/proc/$uad_pid/status")
  read -r made achieved failed retrans < <(python3 - "$stat" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1]), delimiter=';'))
h, r = rows[0], rows[-1]
# The rate sipp achieved: its cumulative call rate at the last periodic
# dump (the final row, written at exit, counts the idle tail too).
periodic = [x for x in rows[1:] if float(x[h.index('CallRate(P)')] or 0) > 0] or rows[1:]
achieved = float(periodic[-1][h.index('CallRate(C)')] or 0)
print(r[h.index('TotalCallCreated')], f"{achieved:.0f}", r[h.index('FailedCall(C)')], r[h.index('Retransmissions(C)')])
PY
)
  clean=no
  if [ "$failed" = 0 ] && [ "$retrans" = 0 ] && [ "$(echo "$achieved >= 0.95 * $rate" | bc -l)" = 1 ]; then clean=yes; fi
  lat="-"
  if [ "$kind" = hold ] && ls "$work"/*rtt* >/dev/null 2>&1; then
    lat=$(python3 - "$work" <<'PY'
import csv, glob, sys
vals = {}
for f in glob.glob(sys.argv[1] + '/*rtt*'):
    for row in csv.reader(open(f), delimiter=';'):
        if len(row) >= 3 and row[2].isdigit():
            vals.setdefault(row[2], []).append(float(row[1]))
out = []
for k in sorted(vals):
    v = sorted(vals[k]); out.append(f"rtd{k} {v[len(v)//2]:.2f}/{v[int(len(v)*0.99)]:.2f}")
print(' '.join(out))
PY
)
    rm -f "$work"/*rtt*
  fi
  printf '%-6s %-8s %-9s %-7s %-8s %-6s %-8.0f %-10s %s\n' "$rate" "$made" "$achieved" "$failed" "$retrans" "$clean" "$cpu" "$rss" "$lat"
  sleep 2
done
