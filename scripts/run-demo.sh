#!/bin/sh
# SPDX-License-Identifier: MIT
# run-demo.sh - what `make run` does: run mxguard in the foreground with
# contrib/mxguard.conf.example, in front of BACKEND=host:port or, when none
# is given, a demo backend (Postfix's smtp-sink) that writes every message
# it receives into build/demo-mail/.  Ctrl-C stops both.
set -eu

BIN=${1:-build/mxguard}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$(dirname "$BIN")
CONF="$BUILD/mxguard-demo.conf"
SPOOL="$BUILD/spool"
MAILDIR="$BUILD/demo-mail"
mkdir -p "$SPOOL" "$MAILDIR"

SINK_PID=""
cleanup() {
	[ -n "$SINK_PID" ] && kill "$SINK_PID" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

if [ -z "${BACKEND:-}" ]; then
	BACKEND="127.0.0.1:2526"
	# -d: one file per message, named by time, in $MAILDIR; -u: run as
	# nobody when started as root.
	(cd "$MAILDIR" && exec smtp-sink -u nobody -d "%Y%m%d%H/%M." \
		-h demo-backend.example.com 127.0.0.1:2526 100) &
	SINK_PID=$!
	chown nobody "$MAILDIR" 2>/dev/null || true
	echo "demo backend: smtp-sink on $BACKEND, messages go to $MAILDIR/"
fi

sed -e "s|^backend = .*|backend = \"$BACKEND\";|" \
    -e "s|dir = \"/var/spool/mxguard\";|dir = \"$SPOOL\";|" \
    -e "s|\"/usr/share/mxguard/rules/|\"$ROOT/rules/default/|" \
    -e "s|, \"/etc/mxguard/rules.d/\*.rules\"||" \
    "$ROOT/contrib/mxguard.conf.example" > "$CONF"

cat <<MSG
mxguard listens on 127.0.0.1:2525 (config: $CONF). Send a test message with:

  swaks --server 127.0.0.1:2525 --from sender@example.net --to user@example.com

Ctrl-C stops it.
MSG
"$BIN" -c "$CONF" &
MX_PID=$!
trap 'kill $MX_PID 2>/dev/null; cleanup' INT TERM
wait $MX_PID || true
