#!/bin/sh
# run.sh — `make test-deploy`: the deployment files, run for real on this
# machine (CI: root on a fresh Debian 12). Installs what is missing from
# Debian's packages, starts dockerd if none answers (and stops it again,
# restoring the firewall and forwarding state), builds debian:12-slim with
# debootstrap when it cannot be pulled, builds the image and a local HAProxy
# image when the official one cannot be pulled, then runs:
#   test_k8s.sh      kustomize render + offline schema validation
#   test_systemd.sh  systemd-analyze verify / security
#   test_compose.sh  compose with 3 replicas + HAProxy under docker-compose
#   test_systemd_pid1.sh  the unit under systemd 252 as PID 1 in a container
#   test_podman.sh   the same compose file under podman-compose
# Closes with "deploy: N passed, N failed"; exits 1 on any failure.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
cd "$ROOT" || exit 1
. "$HERE/env.sh"
export BUILD=${BUILD:-build}
PASSED=0
FAILED=0
LOG=$DEPLOY_STATE/step.log

finish() {
	docker_down
	net_restore
	rm -rf "$DEPLOY_STATE"
}
trap finish EXIT
trap 'exit 1' INT TERM

# step NAME CMD... — runs one test script; its "ok" lines count as passes,
# a non-zero exit as one failure.
step() {
	name=$1
	shift
	echo "== $name ($(date -u +%H:%M:%S))"
	rc=0
	"$@" >"$LOG" 2>&1 || rc=$?
	cat "$LOG"
	PASSED=$((PASSED + $(grep -c '^ok ' "$LOG")))
	if [ "$rc" != 0 ]; then
		FAILED=$((FAILED + 1))
		echo "deploy: $name failed (exit $rc)"
	fi
}

setup() {
	pkgs="docker.io docker-compose debootstrap iptables podman podman-compose"
	# CNI DNS for podman networks: HAProxy finds the replicas by name.
	pkgs="$pkgs golang-github-containernetworking-plugin-dnsname"
	command -v kubectl >/dev/null 2>&1 || pkgs="$pkgs kubernetes-client"
	command -v systemd-analyze >/dev/null 2>&1 || pkgs="$pkgs systemd"
	# shellcheck disable=SC2086
	deploy_packages $pkgs || return 1
	docker_up || return 1
	sh "$HERE/base_image.sh" debian:12-slim || return 1
	echo "deploy: docker build -t mobilellmd:latest ."
	docker build -t mobilellmd:latest . >"$DEPLOY_STATE/build.log" 2>&1 || {
		tail -n 30 "$DEPLOY_STATE/build.log"
		return 1
	}
	if docker image inspect haproxy:2.8 >/dev/null 2>&1 ||
		timeout 60 docker pull haproxy:2.8 >/dev/null 2>&1; then
		HAPROXY_IMAGE=haproxy:2.8
	else
		HAPROXY_IMAGE=mllm-haproxy:debian12
		echo "deploy: no registry: building $HAPROXY_IMAGE from Debian's haproxy package"
		docker build -t "$HAPROXY_IMAGE" -f "$HERE/haproxy.Dockerfile" "$HERE" \
			>"$DEPLOY_STATE/build.log" 2>&1 || {
			tail -n 30 "$DEPLOY_STATE/build.log"
			return 1
		}
	fi
	export HAPROXY_IMAGE MLLMD_IMAGE=mobilellmd:latest
	SYSTEMD_IMAGE=mllm-systemd:debian12
	docker build -t "$SYSTEMD_IMAGE" -f "$HERE/systemd.Dockerfile" "$HERE" \
		>"$DEPLOY_STATE/build.log" 2>&1 || {
		tail -n 30 "$DEPLOY_STATE/build.log"
		return 1
	}
	export SYSTEMD_IMAGE
}

# With a Docker daemon already running, its firewall rules are its own:
# only a machine this test starts Docker on gets its state restored.
docker info >/dev/null 2>&1 || net_save
step kubernetes sh "$HERE/test_k8s.sh"
step systemd sh "$HERE/test_systemd.sh"
if setup; then
	step compose sh "$HERE/test_compose.sh"
	step systemd-pid1 sh "$HERE/test_systemd_pid1.sh"
	if command -v podman-compose >/dev/null 2>&1; then
		step podman-compose sh "$HERE/test_podman.sh"
	else
		echo "deploy: podman-compose not available: skipped"
	fi
else
	FAILED=$((FAILED + 1))
	echo "deploy: setup (packages, dockerd, images) failed"
fi
echo "deploy: finished at $(date -u +%H:%M:%S)"
echo "deploy: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
