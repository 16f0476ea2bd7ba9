# env.sh — sourced by tests/deploy/run.sh: what the deploy test needs on a
# fresh Debian 12 machine (CI runs as root), and how it leaves the machine.
#   deploy_packages   installs what is missing, from Debian's packages only
#   net_save          saves iptables, ip6tables, ip_forward and which
#                     bridges exist, when no Docker daemon runs yet
#   docker_up         starts dockerd when none answers
#   docker_down       stops the dockerd it started (not one it found)
#   net_restore       puts back what net_save saved (dockerd and podman
#                     add rules, chains, bridges and turn on forwarding)
# Every wait is bounded.

DEPLOY_STATE=${DEPLOY_STATE:-$(mktemp -d /tmp/mllm-deploy.XXXXXX)}
DOCKERD_PID=""

deploy_packages() {
	missing=""
	for p in "$@"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"
	done
	[ -z "$missing" ] && return 0
	echo "deploy: installing$missing"
	apt-get update -q >/dev/null
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $missing \
		>"$DEPLOY_STATE/apt.log" 2>&1 || {
		tail -n 20 "$DEPLOY_STATE/apt.log"
		return 1
	}
}

# Saves the firewall and forwarding state (before anything starts).
net_save() {
	iptables-save >"$DEPLOY_STATE/iptables.v4" 2>/dev/null || true
	ip6tables-save >"$DEPLOY_STATE/iptables.v6" 2>/dev/null || true
	cat /proc/sys/net/ipv4/ip_forward >"$DEPLOY_STATE/ip_forward"
	for l in docker0 cni-podman0; do
		ip link show "$l" >/dev/null 2>&1 && touch "$DEPLOY_STATE/had_$l"
	done
	touch "$DEPLOY_STATE/net_saved"
}

# Empties every table the tool lists (rules, user chains, built-in
# policies back to ACCEPT), then loads the saved state: restoring an empty
# save alone would keep what dockerd and podman added.
ipt_reset() {
	tool=$1
	saved=$2
	for t in $($tool-save 2>/dev/null | sed -n 's/^\*//p'); do
		$tool -t "$t" -F
		$tool -t "$t" -X
		for c in $($tool-save -t "$t" | sed -n 's/^:\([A-Z]*\) [A-Z]*.*/\1/p'); do
			$tool -t "$t" -P "$c" ACCEPT
		done
	done
	$tool-restore <"$saved"
}

# Puts the firewall, forwarding and bridges back as net_save found them.
net_restore() {
	[ -e "$DEPLOY_STATE/net_saved" ] || return 0
	ipt_reset iptables "$DEPLOY_STATE/iptables.v4" || true
	ipt_reset ip6tables "$DEPLOY_STATE/iptables.v6" || true
	cat "$DEPLOY_STATE/ip_forward" >/proc/sys/net/ipv4/ip_forward
	for l in docker0 cni-podman0; do
		if [ ! -e "$DEPLOY_STATE/had_$l" ] && ip link show "$l" >/dev/null 2>&1; then
			ip link delete "$l" || true
		fi
	done
	rm -f "$DEPLOY_STATE/net_saved"
	echo "deploy: firewall, forwarding and bridges restored"
}

docker_up() {
	if docker info >/dev/null 2>&1; then
		echo "deploy: using the running Docker daemon"
		return 0
	fi
	echo "deploy: starting dockerd (stopped and cleaned up at the end)"
	dockerd --pidfile "$DEPLOY_STATE/dockerd.pid" >"$DEPLOY_STATE/dockerd.log" 2>&1 &
	DOCKERD_PID=$!
	i=0
	while [ $i -lt 120 ]; do
		docker info >/dev/null 2>&1 && return 0
		kill -0 "$DOCKERD_PID" 2>/dev/null || break
		sleep 0.5
		i=$((i + 1))
	done
	tail -n 20 "$DEPLOY_STATE/dockerd.log"
	echo "deploy: dockerd did not come up"
	return 1
}

docker_down() {
	[ -n "$DOCKERD_PID" ] || return 0
	kill -TERM "$DOCKERD_PID" 2>/dev/null || true
	i=0
	while kill -0 "$DOCKERD_PID" 2>/dev/null && [ $i -lt 60 ]; do
		sleep 0.5
		i=$((i + 1))
	done
	kill -KILL "$DOCKERD_PID" 2>/dev/null || true
	wait "$DOCKERD_PID" 2>/dev/null || true
	DOCKERD_PID=""
	echo "deploy: dockerd stopped"
}
