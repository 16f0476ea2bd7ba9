# env.sh — sourced by tests/deploy/run.sh: what the deploy test needs on a
# fresh Debian 12 machine (CI runs as root), and how it leaves the machine.
#   deploy_packages   installs what is missing, from Debian's packages only
#   docker_up         starts dockerd when none answers, after saving the
#                     firewall and forwarding state it will change
#   docker_down       stops the dockerd it started (not one it found) and
#                     restores iptables, ip6tables, ip_forward and docker0
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

docker_up() {
	if docker info >/dev/null 2>&1; then
		echo "deploy: using the running Docker daemon"
		return 0
	fi
	iptables-save >"$DEPLOY_STATE/iptables.v4" 2>/dev/null || true
	ip6tables-save >"$DEPLOY_STATE/iptables.v6" 2>/dev/null || true
	cat /proc/sys/net/ipv4/ip_forward >"$DEPLOY_STATE/ip_forward"
	ip link show docker0 >/dev/null 2>&1 && touch "$DEPLOY_STATE/had_docker0"
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
	[ -s "$DEPLOY_STATE/iptables.v4" ] && iptables-restore <"$DEPLOY_STATE/iptables.v4"
	[ -s "$DEPLOY_STATE/iptables.v6" ] && ip6tables-restore <"$DEPLOY_STATE/iptables.v6"
	cat "$DEPLOY_STATE/ip_forward" >/proc/sys/net/ipv4/ip_forward
	if [ ! -e "$DEPLOY_STATE/had_docker0" ] && ip link show docker0 >/dev/null 2>&1; then
		ip link delete docker0 || true
	fi
	echo "deploy: dockerd stopped; firewall and forwarding restored"
}
