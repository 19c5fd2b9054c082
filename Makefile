# SPDX-License-Identifier: Apache-2.0
# Thin wrapper: meson does the building. Two commands matter:
#   make demo   the main job (local PostgreSQL + mosquitto + server + fleet)
#   make test   every test (unit, integration, fuzz replay, bounded fuzzing)
BUILD       ?= build
TEST_BUILD  ?= build-test
FUZZ_BUILD  ?= build-fuzz
BENCH_BUILD ?= build-bench
MIN_BUILD   ?= build-min
FUZZ_SECONDS ?= 60
# make test's bounded fuzzing (the corpora are also replayed by meson test):
# the envelope target for FUZZ_TEST_SECONDS, every other one for
# FUZZ_TEST_MIN_SECONDS, two at a time, alone on both cores after the tests
FUZZ_TEST_SECONDS ?= 18
FUZZ_TEST_MIN_SECONDS ?= 3
# Integration tests mostly wait (servers, brokers, timeouts), so more run at
# once than there are cores; the ones that measure time or load both cores
# are is_parallel: false in their meson.build and run alone.
TEST_PROCESSES ?= 3
MESON_TEST_ARGS ?=
# make test records each phase's wall and CPU time here and prints them
PHASE_TIMES ?= $(CURDIR)/$(TEST_BUILD)-phases.tsv
TIMED = CPUTIME_LOG=$(PHASE_TIMES) /usr/bin/python3 $(CURDIR)/scripts/cputime.py

export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS ?= halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS ?= suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0

.PHONY: all deps build build-ready test test-phases unit meson-tests beside trees demo-check mcu fuzz fuzz-build fuzz-run format format-check demo bench api-docs clean

all: build

# DEPS_CHECKED=1: the caller ran it already (make test's beside phase,
# where the check would run at the lowest priority for nothing).
deps:
	@[ -n "$(DEPS_CHECKED)" ] || bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) -Dwerror=true

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(TEST_BUILD)/build.ninja:
	meson setup $(TEST_BUILD) -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false

# Every test runs under scripts/cputime.py: its log shows the CPU time of
# the test's whole process tree next to the wall time.
unit: deps $(TEST_BUILD)/build.ninja
	CPUTIME_LABEL=build-test $(TIMED) ninja -C $(TEST_BUILD)
	@$(MAKE) --no-print-directory meson-tests

meson-tests:
	CPUTIME_LABEL="meson tests" DEMO_RELEASE_BUILD=$(DEMO_RELEASE_BUILD) \
		DEMO_RELEASE_READY=$(DEMO_RELEASE_READY) $(TIMED) \
		meson test -C $(TEST_BUILD) --print-errorlogs \
		--num-processes $(TEST_PROCESSES) --wrapper $(CURDIR)/scripts/cputime.py \
		$(MESON_TEST_ARGS)

# The phases one after the other, then where the time went (also on failure).
test:
	@rm -f $(PHASE_TIMES)
	@rc=0; start=$$(date +%s); $(MAKE) --no-print-directory test-phases || rc=$$?; \
		TEST_WALL=$$(($$(date +%s) - start)) bash scripts/test-times.sh $(PHASE_TIMES) $(TEST_BUILD); \
		[ $$rc = 0 ] && echo "make test: all suites passed"; exit $$rc

# The demo's CI mode on build/ (demo-check) runs inside `unit`, as the meson
# test demo-release next to the other tests (it mostly waits): this names
# the tree (a target-specific variable: the phases below see it), and the
# file the beside phase writes once build/ is built ("ok" or "failed"),
# which demo-release waits for.
test-phases: DEMO_RELEASE_BUILD = $(CURDIR)/$(BUILD)
test-phases: DEMO_RELEASE_READY = $(CURDIR)/$(BUILD)-ready
test-phases: FUZZ_SECONDS = $(FUZZ_TEST_SECONDS)
# Only the sanitizer tree, which the meson tests run, is built before them.
# The other builds run beside it and the meson tests at the lowest priority
# (scripts/background.sh): build/ first (demo-release waits for it), the
# fuzz targets, the device-only and release trees, the MCU build and the
# format check. The tests that measure time run alone at the start and
# leave most of both cores idle; a compile beside them takes only what the
# tests leave. Its output is shown after the tests; a failure there fails
# make test, and Ctrl-C stops it too (its session's process group: dash's
# kill takes -PID, not -- -PID). The bounded fuzzing runs last, alone on
# both cores: it is timed, and beside the tests it made a few runs where
# it should make hundreds of thousands (tried on 2 Dec: server_report 7
# runs in its 5 s, agent_decrypt 15).
test-phases: deps $(BUILD)/build.ninja $(TEST_BUILD)/build.ninja $(MIN_BUILD)/build.ninja \
		$(BENCH_BUILD)/build.ninja $(FUZZ_BUILD)/build.ninja
	@rm -f $(DEMO_RELEASE_READY)
	@rc=0; setsid sh scripts/background.sh $(MAKE) -k --no-print-directory beside DEPS_CHECKED=1 \
		DEMO_RELEASE_READY=$(DEMO_RELEASE_READY) >$(BESIDE_LOG) 2>&1 & bpid=$$!; \
		trap 'kill -TERM -'$$bpid' 2>/dev/null; exit 130' INT TERM; \
		if CPUTIME_LABEL=build-test $(TIMED) ninja -C $(TEST_BUILD); then \
			$(MAKE) --no-print-directory meson-tests DEMO_RELEASE_BUILD=$(DEMO_RELEASE_BUILD) \
				DEMO_RELEASE_READY=$(DEMO_RELEASE_READY) || rc=$$?; \
		else rc=1; kill -TERM -$$bpid 2>/dev/null; fi; \
		brc=0; wait $$bpid || brc=$$?; \
		echo "== beside the meson tests (lowest priority): build/, fuzz build, trees, mcu, format-check"; \
		cat $(BESIDE_LOG); [ $$brc = 0 ] || { echo "beside the meson tests: FAILED (exit $$brc)"; rc=1; }; \
		exit $$rc
	@FUZZ_MIN_SECONDS=$(FUZZ_TEST_MIN_SECONDS) $(MAKE) --no-print-directory fuzz-run \
		FUZZ_SECONDS=$(FUZZ_TEST_SECONDS)

BESIDE_LOG ?= $(CURDIR)/$(TEST_BUILD)-beside.log
# The phases below again, their labels marked "(beside)": they overlap the
# meson tests, so scripts/test-times.sh counts their CPU, not their wall
# time (trees finds build/ built already: its ninja has nothing to do).
PHASE_SUFFIX ?=
beside: PHASE_SUFFIX := $(PHASE_SUFFIX) (beside)
beside: build-ready fuzz-build trees mcu format-check

# build/ for demo-release, then (make test) the file it waits for says how
# it went.
DEMO_RELEASE_READY ?=
build-ready: deps $(BUILD)/build.ninja
	@[ -z "$(DEMO_RELEASE_READY)" ] || echo building >"$(DEMO_RELEASE_READY)"
	@rc=0; CPUTIME_LABEL="build$(PHASE_SUFFIX)" $(TIMED) ninja -C $(BUILD) || rc=$$?; \
		if [ -n "$(DEMO_RELEASE_READY)" ]; then \
			if [ $$rc = 0 ]; then echo ok; else echo failed; fi >"$(DEMO_RELEASE_READY)"; fi; \
		exit $$rc

# Every tree the README and docs name, configured exactly as they say
# (gcc warns at -O2 about what it misses at -O0): build/ as make demo builds
# it, the device-only tree, and the release tree of make bench.
$(MIN_BUILD)/build.ninja:
	meson setup $(MIN_BUILD) -Dwerror=true -Dserver=false

# The release tree: the programs bench/run.sh builds and runs, as make bench
# builds them (docs/bench.md), not every test and fuzz target again at -O3.
BENCH_TARGETS = server/ota-server agent/ota-agent keyrotate/ota-keys bench/ota-bench-verify \
	tests/integration/server/srv_testtool tests/integration/server/srv_loadclient
trees: deps $(BUILD)/build.ninja $(MIN_BUILD)/build.ninja $(BENCH_BUILD)/build.ninja
	CPUTIME_LABEL="trees$(PHASE_SUFFIX)" $(TIMED) sh -c 'ninja -C $(BUILD) && ninja -C $(MIN_BUILD) && \
		ninja -C $(BENCH_BUILD) $(BENCH_TARGETS)'
	@echo "trees: $(BUILD) $(MIN_BUILD) $(BENCH_BUILD) built"

# The agent core linked for a Cortex-M4 with no OS (docs/porting.md).
mcu: deps
	@CPUTIME_LABEL="mcu$(PHASE_SUFFIX)" $(TIMED) bash scripts/mcu-build.sh build-mcu

# The demo's CI mode on the binaries make demo runs (build/, -O2), alone
# (make test runs it as the meson test demo-release).
demo-check: build
	TOP=$(CURDIR) DEMO_BUILD=$(CURDIR)/$(BUILD) CPUTIME_LABEL=demo-check $(TIMED) \
		bash tests/integration/demo/test_demo.sh

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false

# Each libFuzzer target runs for FUZZ_SECONDS on a scratch copy of its corpus.
# Only the fuzz targets are built (the clang tree exists for them; every
# library they link is instrumented).
fuzz: fuzz-build
	@$(MAKE) --no-print-directory fuzz-run

fuzz-build: deps $(FUZZ_BUILD)/build.ninja
	CPUTIME_LABEL="fuzz-build$(PHASE_SUFFIX)" $(TIMED) sh -c 'ninja -C $(FUZZ_BUILD) $$(ninja -C $(FUZZ_BUILD) -t targets all | \
		awk -F: "\$$2 ~ /LINKER/ && \$$1 ~ /(^|\/)fuzz_[^\/]*\$$/ { print \$$1 }")'

fuzz-run:
	@CPUTIME_LABEL=fuzz $(TIMED) bash scripts/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

format-check:
	@CPUTIME_LABEL="format-check$(PHASE_SUFFIX)" $(TIMED) sh -c "git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror"
	@echo "format-check: clean"

demo: build
	@bash scripts/demo.sh

# Release build of its own; bench/run.sh builds only the programs it runs.
$(BENCH_BUILD)/build.ninja:
	meson setup $(BENCH_BUILD) -Dwerror=true -Dbuildtype=release

bench: deps $(BENCH_BUILD)/build.ninja
	@bash bench/run.sh $(BENCH_BUILD)

# The operator API reference, rendered from web-api/openapi.yaml.
api-docs: deps
	@bash scripts/api-docs.sh $(BUILD)/api.html

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(FUZZ_BUILD) $(BENCH_BUILD) $(MIN_BUILD) build-mcu
