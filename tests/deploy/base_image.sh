#!/bin/sh
# base_image.sh — makes sure the local Docker daemon has debian:12-slim, the
# base of the Dockerfile. No registry is reachable on CI, so when the image
# is missing it is built with debootstrap (variant minbase) from the Debian
# mirror that apt on this machine already uses, and imported. The result is
# smaller than Docker Hub's image only in what it lacks (docs, locales are
# still there): enough to run apt-get and the daemon.
set -eu

IMAGE=${1:-debian:12-slim}
if docker image inspect "$IMAGE" >/dev/null 2>&1; then
	echo "base_image: $IMAGE present"
	exit 0
fi
if timeout 60 docker pull "$IMAGE" >/dev/null 2>&1; then
	echo "base_image: pulled $IMAGE"
	exit 0
fi

# The first Debian (not -security) URI in apt's sources, one-line or deb822.
mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
	awk '/^[[:space:]]*#/ {next}
	     $1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }
	     $1 == "URIs:" { print $2; exit }' | grep -v security | head -n 1)
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
command -v debootstrap >/dev/null 2>&1 || {
	apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap >/dev/null
}

root=$(mktemp -d /var/tmp/mllm-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT INT TERM
echo "base_image: debootstrap --variant=minbase bookworm from $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
	tail -n 20 "$root.log" >&2
	rm -f "$root.log"
	exit 1
}
rm -f "$root.log"
# What the official slim image also drops: apt's downloaded lists and
# packages (the Dockerfile runs apt-get update itself).
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | docker import --change 'CMD ["bash"]' - "$IMAGE" >/dev/null
echo "base_image: imported $IMAGE"
