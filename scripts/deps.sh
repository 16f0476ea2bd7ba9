#!/bin/sh
# deps.sh — installs the Debian packages the build and the tests need, if any
# are missing. Idempotent and quick when everything is present; uses sudo
# only when not root. Run by `make` before building, so a fresh Debian 12
# needs nothing typed beforehand.
set -eu

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

echo "deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
