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
MESON_TEST_ARGS ?=

export ASAN_OPTIONS ?= detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS ?= halt_on_error=1:print_stacktrace=1
export LSAN_OPTIONS ?= suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0

.PHONY: all deps build test unit trees demo-check mcu fuzz format format-check demo bench api-docs clean

all: build

deps:
	@bash scripts/install-deps.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD) -Dwerror=true

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(TEST_BUILD)/build.ninja:
	meson setup $(TEST_BUILD) -Dwerror=true -Db_sanitize=address,undefined -Db_lundef=false

unit: deps $(TEST_BUILD)/build.ninja
	ninja -C $(TEST_BUILD)
	meson test -C $(TEST_BUILD) --print-errorlogs --num-processes 2 $(MESON_TEST_ARGS)

test: trees mcu unit demo-check format-check fuzz
	@echo "make test: all suites passed"

# Every tree the README and docs name, configured exactly as they say
# (gcc warns at -O2 about what it misses at -O0): build/ as make demo builds
# it, the device-only tree, and the release tree of make bench.
$(MIN_BUILD)/build.ninja:
	meson setup $(MIN_BUILD) -Dwerror=true -Dserver=false

trees: build $(MIN_BUILD)/build.ninja $(BENCH_BUILD)/build.ninja
	ninja -C $(MIN_BUILD)
	ninja -C $(BENCH_BUILD)
	@echo "trees: $(BUILD) $(MIN_BUILD) $(BENCH_BUILD) built"

# The agent core linked for a Cortex-M4 with no OS (docs/porting.md).
mcu: deps
	@bash scripts/mcu-build.sh build-mcu

# The demo's CI mode on the binaries make demo runs (build/, -O2).
demo-check: build
	TOP=$(CURDIR) DEMO_BUILD=$(CURDIR)/$(BUILD) bash tests/integration/demo/test_demo.sh

$(FUZZ_BUILD)/build.ninja:
	CC=clang meson setup $(FUZZ_BUILD) -Dfuzz=true \
		-Db_sanitize=address,undefined -Db_lundef=false

# Each libFuzzer target runs for FUZZ_SECONDS on a scratch copy of its corpus.
fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD)
	@bash scripts/run-fuzz.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

format:
	@git ls-files '*.c' '*.h' | xargs clang-format -i

format-check:
	@git ls-files '*.c' '*.h' | xargs clang-format --dry-run -Werror
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
