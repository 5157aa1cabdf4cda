#!/usr/bin/env bash
# The project's one test command: installs the peers the end-to-end tests
# drive (sipp, baresip, kamailio, sox; chromium for the web console, tshark
# to read pcaps back) when one is missing, then vets and
# tests the whole module.
set -euo pipefail

cd "$(dirname "$0")/.."

# kamailio lives in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

missing=()
for tool in sipp baresip kamailio sox chromium tshark; do
	if ! command -v "$tool" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$tool" ]; then
		missing+=("$tool")
	fi
done
if [ "${#missing[@]}" -gt 0 ]; then
	if [ "$(id -u)" -eq 0 ]; then
		echo "run.sh: installing the test peers (missing: ${missing[*]})" >&2
		apt-get update
		# tshark's package asks whether non-root users may capture: no.
		echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
			sip-tester baresip baresip-core kamailio sox chromium tshark
	else
		# Not root: the tests that need a missing peer skip (or fail when CI=true).
		echo "run.sh: not root, cannot install the missing peers: ${missing[*]}" >&2
	fi
fi

# The IPv6 tests need the loopback ::1 (they fail under CI=true without it).
if ! grep -qs '^0\{31\}1 ' /proc/net/if_inet6; then
	echo "run.sh: no IPv6 loopback ::1 (ip -6 addr show lo); the IPv6 tests will fail" >&2
fi

go vet ./...
FUZZTIME=10s bash tests/fuzz.sh # every fuzz target, 10 s each
go test -count=1 -timeout 30m ./...
