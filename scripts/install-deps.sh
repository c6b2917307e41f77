#!/bin/sh
# SPDX-License-Identifier: MIT
# install-deps.sh - install the Debian packages mxguard builds, runs and tests with.
#
# Called by `make` before every build; it only runs apt-get when a package
# is missing, so a second call costs one dpkg-query.  Needs root (or sudo)
# on Debian 12.  The list is the one in DESIGN.md "Dependencies".
set -eu

PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev
libevent-dev libssl-dev libpcre2-dev libconfig-dev libcmocka-dev
libunbound-dev libhiredis-dev libspf2-dev libopendkim-dev libopendmarc-dev
libpsl-dev publicsuffix openssl
python3-pytest python3-aiosmtpd python3-dnslib python3-dkim python3-redis
redis-server redis-sentinel swaks postfix systemd groff-base spamassassin
chromium debhelper dpkg-dev fakeroot fail2ban"
# Hyperscan: the rule engine's body prefilter (optional: the build works
# without it; Debian ships it for amd64 only).
if [ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ]; then
	PKGS="$PKGS libhyperscan-dev"
fi

missing=""
for p in $PKGS; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != 0 ]; then
	SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
# Postfix is only a test backend and the source of smtp-sink/smtp-source:
# install it unconfigured so it neither asks questions nor starts a system MTA.
echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
$SUDO apt-get update -q || true
# shellcheck disable=SC2086
$SUDO apt-get install -y -q --no-install-recommends $missing
