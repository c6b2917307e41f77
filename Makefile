# SPDX-License-Identifier: MIT
# Thin wrapper: CMake does the building; these targets are what people type.
#   make run     install deps, build, run mxguard with the example config
#                (and a demo backend unless BACKEND=host:port is given)
#   make test    install deps, build, run every test (unit, e2e, and both
#                again under ASan+UBSan)
#   make fuzz    run each libFuzzer harness for FUZZ_SECONDS (default 60)
#   make bench   bench/relay (see BENCHMARKS.md)
#   make deb     the Debian package, in build/deb/ (dpkg-buildpackage -b on
#                a copy of the tree, so nothing is written beside it)

BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
PYTHON     ?= /usr/bin/python3

.PHONY: all deps build asan run test unit e2e test-asan fuzz fuzz-smoke bench deb format clean

all: build

deps:
	@./scripts/install-deps.sh

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

$(ASAN_BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DMXGUARD_SANITIZE=ON

asan: deps $(ASAN_BUILD)/Makefile
	cmake --build $(ASAN_BUILD) -j $(JOBS)

run: build
	@./scripts/run-demo.sh $(BUILD)/mxguard

unit: build
	cd $(BUILD) && ctest --output-on-failure

# Each build directory has its own pytest basetemp, so two checkouts (or a
# plain and an ASan run) can test at once without pruning each other's dirs.
e2e: build
	$(PYTHON) -m pytest tests/e2e --basetemp=$(CURDIR)/$(BUILD)/pytest

test-asan: asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --output-on-failure
	MXGUARD_BIN=$(CURDIR)/$(ASAN_BUILD)/mxguard ASAN=1 \
		ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		$(PYTHON) -m pytest tests/e2e --basetemp=$(CURDIR)/$(ASAN_BUILD)/pytest

# make test also runs each fuzzer briefly: a harness that no longer builds
# or crashes on its seed corpus fails CI; make fuzz is the long run.
test: unit e2e test-asan fuzz-smoke

fuzz: deps
	@./scripts/fuzz.sh

fuzz-smoke: deps
	@FUZZ_SECONDS=10 ./scripts/fuzz.sh

bench: build
	@./bench/relay

# The package is rebuilt when a file that goes into it changed (the
# e2e test runs `make deb` and so reuses the one built earlier in the
# run).  The copy holds the tracked and untracked, not ignored, files.
DEB_DIR  = $(BUILD)/deb
DEB_SRCS := $(wildcard $(shell git ls-files -co --exclude-standard -- \
	CMakeLists.txt proxy filters rules bench/state contrib debian docs \
	README.md 2>/dev/null))

deb: deps $(DEB_DIR)/built.stamp

$(DEB_DIR)/built.stamp: $(DEB_SRCS)
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/src
	git ls-files -co --exclude-standard | while read -r f; do \
		if [ -e "$$f" ] || [ -L "$$f" ]; then echo "$$f"; fi; done | \
		tar -cf - --no-recursion -T - | tar -xf - -C $(DEB_DIR)/src
	cd $(DEB_DIR)/src && DEB_BUILD_OPTIONS="nocheck parallel=$(JOBS)" \
		dpkg-buildpackage -us -uc -b
	rm -rf $(DEB_DIR)/src
	touch $@

format:
	clang-format -i proxy/*.[ch] filters/*.[ch] rules/*.[ch] tests/unit/*.c tests/fuzz/*.c \
		bench/state/*.c bench/status/*.c bench/*.c

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
