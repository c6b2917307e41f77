#!/bin/sh
# SPDX-License-Identifier: MIT
#
# fuzz.sh - build the libFuzzer harnesses (tests/fuzz) with clang and run
# each one for FUZZ_SECONDS seconds (default 60).
#
# The build goes to build-fuzz/ (-DMXGUARD_FUZZ=ON builds only the parsers
# and the harnesses).  Each harness works on its own copy of the seed corpus
# in build-fuzz/corpus-run/<target>, so the inputs it finds stay out of the
# source tree but are kept for the next run.  Crash, leak and timeout
# reproducers go to build-fuzz/artifacts/.  Exits non-zero if any harness
# fails; every harness runs in any case, so one run reports them all.
#
# Used by `make fuzz`; FUZZ_JOBS sets the build parallelism.
set -eu

cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_JOBS=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}
BUILD=build-fuzz
TARGETS="smtp_cmd smtp_reply proxy_proto data bdat greylist_sender authres
	spf_record rules mime urihost dkim_message dmarc_from dnsname json prefilter"

cmake -S . -B "$BUILD" -DCMAKE_C_COMPILER=clang -DMXGUARD_FUZZ=ON
cmake --build "$BUILD" -j "$FUZZ_JOBS"

mkdir -p "$BUILD/artifacts"
failed=""
for target in $TARGETS; do
	corpus="$BUILD/corpus-run/$target"
	mkdir -p "$corpus"
	cp tests/fuzz/corpus/"$target"/* "$corpus"/

	# Input sizes: a command line or a PROXY header is short; replies and
	# DATA get room for multi-line and chunk-boundary cases.
	case $target in
	smtp_cmd | proxy_proto | greylist_sender | spf_record | urihost | dnsname) max_len=1024 ;;
	*) max_len=16384 ;;
	esac

	echo "== fuzz_$target for ${FUZZ_SECONDS}s"
	if ! "$BUILD/tests/fuzz/fuzz_$target" \
		-max_total_time="$FUZZ_SECONDS" \
		-max_len="$max_len" \
		-timeout=10 \
		-print_final_stats=1 \
		-artifact_prefix="$BUILD/artifacts/$target-" \
		"$corpus"; then
		failed="$failed $target"
	fi
done

if [ -n "$failed" ]; then
	echo "fuzz.sh: failures in:$failed (reproducers in $BUILD/artifacts/)" >&2
	exit 1
fi
echo "fuzz.sh: all harnesses ran ${FUZZ_SECONDS}s without a finding"
