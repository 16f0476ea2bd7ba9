#!/bin/sh
# deps.sh — the Debian packages the build and the tests need.
#
#   sh scripts/deps.sh           install the missing ones (after saying which
#                                and why); quick when nothing is missing
#   sh scripts/deps.sh --check   only check: list the missing ones and exit 1
#
# `make deps`, and the README's commands `make test` and `make run`, run the
# first form, so a fresh Debian 12 needs nothing typed beforehand; a plain
# `make` runs only the check and never touches apt. Uses sudo only when not
# root.
set -eu

mode=install
[ "${1:-}" = "--check" ] && mode=check

PKGS="build-essential pkg-config libmicrohttpd-dev libjansson-dev libuv1-dev \
libopenblas-dev check curl python3 python3-numpy python3-sentencepiece \
nodejs npm clang libclang-rt-14-dev"
# clang and libclang-rt-14-dev (libFuzzer, ASan/UBSan runtimes for clang)
# are for `make fuzz` / `make fuzz-ci` only; the daemon is built with cc.

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		# node/npm may come from elsewhere (nodesource, nvm): accept the commands.
		case "$p" in
		nodejs) command -v node >/dev/null 2>&1 && continue ;;
		npm) command -v npm >/dev/null 2>&1 && continue ;;
		esac
		missing="$missing $p"
	fi
done

[ -z "$missing" ] && exit 0

if [ "$mode" = check ]; then
	echo "deps: missing Debian packages:$missing" >&2
	echo "deps: run 'make deps' to install them (make test and make run do it too)" >&2
	exit 1
fi

echo "deps: mobilellmd needs these Debian packages to build and run its tests," >&2
echo "deps: and they are missing:$missing" >&2
echo "deps: installing them with apt-get (apt-get update first)..." >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "deps: installed:$missing" >&2
