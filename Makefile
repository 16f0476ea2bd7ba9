# mobilellmd — plain Makefile (see `make help`).
#
# Layers: engine/ (libmllm.a, no HTTP/JSON) <- api/ (libapi.a, jansson) <-
# server/ (the daemon). Each folder compiles with the include paths of its
# own layer and those below it only, so a wrong-way #include (engine/ using
# an api/ or server/ header, api/ a server/ one) fails to compile; `make
# check-layers` also refuses system headers of a higher layer. Objects go
# to $(BUILD)/ so sanitizer and normal builds never mix; -MMD gives
# automatic header dependencies.

BUILD    ?= build
V        ?= 0
FIXTURES ?= $(abspath ../shared/fixtures)
MODEL    ?=
PORT     ?= 8080

CC       ?= cc
STD      := -std=c11
WARN     := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
OPT      ?= -O2
DEBUG    ?= -g
DEFS     := -D_GNU_SOURCE
SAN      ?=

PKGS      := libmicrohttpd jansson libuv
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)
JANSSON_CFLAGS = $(shell pkg-config --cflags jansson 2>/dev/null)
JANSSON_LIBS   = $(shell pkg-config --libs jansson 2>/dev/null)
# OpenBLAS is not linked: engine/cpu.c dlopen()s it after choosing
# OPENBLAS_CORETYPE for this CPU (the library fixes its core when it
# initialises, which for a linked library is before main).
CHECK_LIBS  = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lm)

CFLAGS  ?=
CFLAGS  += $(STD) $(WARN) $(OPT) $(DEBUG) $(DEFS) $(SAN) -pthread -MMD -MP

# Per-layer compile flags (see the top of this file).
ENGINE_CFLAGS = -Iengine
API_CFLAGS    = -Iengine -Iapi $(JANSSON_CFLAGS)
SERVER_CFLAGS = -Iengine -Iapi -Iserver $(PKG_CFLAGS)
LDFLAGS ?=
LDFLAGS += $(SAN) -pthread
LIBS    := -lm -ldl

ifeq ($(V),0)
Q  := @
QCC = @printf '  CC      %s\n' $<;
QLD = @printf '  LD      %s\n' $@;
QAR = @printf '  AR      %s\n' $@;
else
Q  :=
endif

ENGINE_SRC := $(sort $(wildcard engine/*.c))
API_SRC    := $(sort $(wildcard api/*.c))
SERVER_SRC := $(filter-out server/main.c,$(sort $(wildcard server/*.c)))
TEST_SRC   := $(sort $(wildcard tests/*/test_*.c))
BENCH_SRC  := $(sort $(wildcard bench/bench_*.c))
# libFuzzer harnesses: adding tests/fuzz/fuzz_<name>.c is all it takes.
FUZZ_SRC   := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_NAMES := $(FUZZ_SRC:tests/fuzz/fuzz_%.c=%)

ENGINE_OBJ := $(ENGINE_SRC:%.c=$(BUILD)/%.o)
API_OBJ    := $(API_SRC:%.c=$(BUILD)/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/%.o)
TEST_BIN   := $(TEST_SRC:%.c=$(BUILD)/%)
BENCH_BIN  := $(BENCH_SRC:%.c=$(BUILD)/%)
FUZZ_REPLAY := $(FUZZ_NAMES:%=$(BUILD)/tests/fuzz/replay_%)
FUZZ_BIN   := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)

ENGINE_LIB := $(BUILD)/libmllm.a
API_LIB    := $(BUILD)/libapi.a
SERVER_LIB := $(BUILD)/libsrv.a
BIN        := $(BUILD)/mobilellmd

DEPS_STAMP := $(BUILD)/.deps-ok

.PHONY: all help deps check-deps check-layers test perplexity slow-reader unit-test integration-test sdk-test \
	asan tsan noopt check-format format bench run clean fuzz fuzz-ci fuzz-build fuzz-long \
	soak soak-mixed loadtest _test _unit-test _bench _fuzz-long test-deploy

all: $(BIN)

help:
	@echo "targets:"
	@echo "  all            build $(BIN) (default)"
	@echo "  run            build and start the daemon (MODEL=path, PORT=$(PORT))"
	@echo "  test           build and run every test (unit, integration, SDK)"
	@echo "  unit-test      Check unit suites only"
	@echo "  test-deploy    Docker/compose/podman, Kubernetes and systemd files, for real (root)"
	@echo "  asan / tsan    build and test under AddressSanitizer / ThreadSanitizer"
	@echo "  noopt          build without optimisation (debugging)"
	@echo "  bench          build and run the benchmarks (prints figures)"
	@echo "  fuzz           libFuzzer harnesses (tests/fuzz/), ASan+UBSan, FUZZ_SECONDS=$(FUZZ_SECONDS) each"
	@echo "  fuzz-ci        the same, FUZZ_CI_SECONDS=$(FUZZ_CI_SECONDS) each (.ci/run)"
	@echo "  fuzz-long      the Check mutation fuzzers (test_*fuzz) at MLLM_LONG length"
	@echo "  loadtest       load generator against the daemon (bench/loadtest.sh; SOAK=s)"
	@echo "  soak           loadtest soak mode: SOAK_SECONDS=$(SOAK_SECONDS), RSS and KV checks"
	@echo "  soak-mixed     mixed-traffic soak (tests/integration/soak.sh)"
	@echo "  slow-reader    a slow but steady client reads a whole long stream (2-3 min)"
	@echo "  perplexity     accuracy table: perplexity / KL of each weight format and KV type (MODEL=...)"
	@echo "  check-format   verify clang-format; format: rewrite in place"
	@echo "  deps           install missing Debian packages (scripts/deps.sh; test, run,"
	@echo "                 bench do it first; plain make only checks and says so)"
	@echo "  check-layers   engine/ and api/ include nothing of the layers above"
	@echo "variables: V=1 (verbose) BUILD=dir FIXTURES=dir OPT=-O2 CC=cc"

# Installing packages is an explicit step: `make deps` (and the README's
# commands, `make test` and `make run`, which call it first) installs what
# is missing after saying what and why. A plain build only checks, once per
# build directory, and stops with the list if something is missing: it
# never runs apt.
deps:
	$(Q)sh scripts/deps.sh
check-deps: $(DEPS_STAMP)
$(DEPS_STAMP): scripts/deps.sh
	$(Q)mkdir -p $(@D)
	$(Q)sh scripts/deps.sh --check
	$(Q)touch $@

$(BUILD)/engine/%.o: engine/%.c | $(DEPS_STAMP)
	$(Q)mkdir -p $(@D)
	$(QCC)$(CC) $(CFLAGS) $(ENGINE_CFLAGS) -c -o $@ $<
$(BUILD)/api/%.o: api/%.c | $(DEPS_STAMP)
	$(Q)mkdir -p $(@D)
	$(QCC)$(CC) $(CFLAGS) $(API_CFLAGS) -c -o $@ $<
$(BUILD)/server/%.o: server/%.c | $(DEPS_STAMP)
	$(Q)mkdir -p $(@D)
	$(QCC)$(CC) $(CFLAGS) $(SERVER_CFLAGS) -c -o $@ $<

# The layering, for what -I cannot catch: libmicrohttpd, libuv and jansson
# install their headers in /usr/include, which every folder sees.
check-layers:
	$(Q)if grep -nE '#[[:space:]]*include[[:space:]]*[<"](jansson|microhttpd|uv)\.h[>"]' engine/*.[ch]; then \
		echo "check-layers: engine/ must not include jansson, libmicrohttpd or libuv" >&2; exit 1; fi
	$(Q)if grep -nE '#[[:space:]]*include[[:space:]]*[<"](microhttpd|uv)\.h[>"]' api/*.[ch]; then \
		echo "check-layers: api/ must not include libmicrohttpd or libuv" >&2; exit 1; fi

$(ENGINE_LIB): $(ENGINE_OBJ)
	$(QAR)rm -f $@ && ar rcs $@ $^
$(API_LIB): $(API_OBJ)
	$(QAR)rm -f $@ && ar rcs $@ $^
$(SERVER_LIB): $(SERVER_OBJ)
	$(QAR)rm -f $@ && ar rcs $@ $^

ALL_LIBS = $(SERVER_LIB) $(API_LIB) $(ENGINE_LIB)
LINK_LIBS = $(PKG_LIBS) $(LIBS)

$(BIN): $(BUILD)/server/main.o $(ALL_LIBS)
	$(QLD)$(CC) $(LDFLAGS) -o $@ $^ $(LINK_LIBS)

# Each test file is one Check runner, compiled with the flags of the layer
# it tests (tests/engine/ sees engine/ only, and so on). White-box tests
# #include the .c under test; the archive member it replaces is then simply
# not pulled in.
$(BUILD)/tests/api/%: tests/api/%.c tests/harness.h $(ALL_LIBS)
	$(Q)mkdir -p $(@D)
	$(QLD)$(CC) $(CFLAGS) $(API_CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(ALL_LIBS) $(CHECK_LIBS) $(LINK_LIBS)
$(BUILD)/tests/%: tests/%.c tests/harness.h $(ALL_LIBS)
	$(Q)mkdir -p $(@D)
	$(QLD)$(CC) $(CFLAGS) $(SERVER_CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(ALL_LIBS) $(CHECK_LIBS) $(LINK_LIBS)

# Engine runners link the engine, Check and libc/libm only, as the engine
# must build and be tested without an HTTP or JSON library. The few listed
# still get jansson: test_json uses it as an independent oracle, and
# test_tokenizer until it reads its cases with json_util.h.
ENGINE_TEST_JANSSON := test_json test_tokenizer
ENGINE_TEST_LIBS = $(if $(filter $*,$(ENGINE_TEST_JANSSON)),$(shell pkg-config --cflags --libs jansson 2>/dev/null || echo -ljansson))
$(BUILD)/tests/engine/%: tests/engine/%.c tests/harness.h $(ENGINE_LIB)
	$(Q)mkdir -p $(@D)
	$(QLD)$(CC) $(CFLAGS) $(ENGINE_CFLAGS) -Itests $(LDFLAGS) -o $@ $< $(ENGINE_LIB) $(CHECK_LIBS) $(ENGINE_TEST_LIBS) $(LIBS)

# Benches measure engine/ and api/ code (never the daemon's internals).
$(BUILD)/bench/%: bench/%.c $(ALL_LIBS)
	$(Q)mkdir -p $(@D)
	$(QLD)$(CC) $(CFLAGS) $(API_CFLAGS) $(LDFLAGS) -o $@ $< $(ALL_LIBS) $(LINK_LIBS)

# A harness linked with tests/fuzz/replay.c (no -fsanitize=fuzzer) is a
# Check runner that replays its committed seeds and regression inputs.
$(BUILD)/tests/fuzz/replay_%: tests/fuzz/fuzz_%.c tests/fuzz/replay.c $(wildcard tests/fuzz/*.h) \
		tests/harness.h $(ALL_LIBS)
	$(Q)mkdir -p $(@D)
	$(QLD)$(CC) $(CFLAGS) $(SERVER_CFLAGS) -Itests -Itests/fuzz -DFUZZ_NAME='"$*"' $(LDFLAGS) \
		-o $@ tests/fuzz/replay.c $< $(ALL_LIBS) $(CHECK_LIBS) $(LINK_LIBS)

# The whole suite: unit runners, then daemon-level integration and SDK tests.
# tests/run.sh prints one closing line, "tests: N passed, N failed".
# `make test` installs missing packages first (deps), then builds and runs.
test: deps
	$(Q)$(MAKE) --no-print-directory _test
_test: check-layers $(BIN) $(TEST_BIN) $(FUZZ_REPLAY)
	$(Q)MLLM_FIXTURES=$(FIXTURES) BUILD=$(BUILD) sh tests/run.sh $(TEST_BIN) $(FUZZ_REPLAY)

# The deployment files run for real (tests/deploy/run.sh; root, Docker from
# Debian's packages, ~13 minutes on a fresh machine, ~6 with cached images).
# Closes with "deploy: N passed, N failed".
test-deploy: deps
	$(Q)$(MAKE) --no-print-directory $(BIN)
	$(Q)BUILD=$(BUILD) sh tests/deploy/run.sh

unit-test: deps
	$(Q)$(MAKE) --no-print-directory _unit-test
_unit-test: $(TEST_BIN) $(FUZZ_REPLAY)
	$(Q)MLLM_FIXTURES=$(FIXTURES) BUILD=$(BUILD) MLLM_UNIT_ONLY=1 sh tests/run.sh $(TEST_BIN) $(FUZZ_REPLAY)

# Sanitizer builds use their own build directories and a lighter optimiser.
# Every process stops at its first report (ASan and UBSan always do; TSan
# only with halt_on_error), so a report fails the suite even in a daemon the
# test never waits for. The extra ASan checks cost little at these sizes.
# Options from the caller's environment come last and win. Check's per-test
# time limits (ceilings, not measurements) stretch with the slowdown: about
# 3x under ASan, 5-15x under TSan.
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
ASAN_ENV := ASAN_OPTIONS="detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:strict_string_checks=1$${ASAN_OPTIONS:+:$$ASAN_OPTIONS}" \
	UBSAN_OPTIONS="print_stacktrace=1$${UBSAN_OPTIONS:+:$$UBSAN_OPTIONS}" \
	CK_TIMEOUT_MULTIPLIER="$${CK_TIMEOUT_MULTIPLIER:-4}"
TSAN_ENV := TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1$${TSAN_OPTIONS:+:$$TSAN_OPTIONS}" \
	CK_TIMEOUT_MULTIPLIER="$${CK_TIMEOUT_MULTIPLIER:-10}"
asan:
	$(Q)$(ASAN_ENV) $(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 SAN="$(ASAN_FLAGS)" \
		MLLM_SANITIZER=asan test
tsan:
	$(Q)$(TSAN_ENV) $(MAKE) --no-print-directory BUILD=build-tsan OPT=-O1 SAN="-fsanitize=thread" \
		MLLM_SANITIZER=tsan test
noopt:
	$(Q)$(MAKE) --no-print-directory BUILD=build-noopt OPT=-O0 all

bench: deps
	$(Q)$(MAKE) --no-print-directory _bench
_bench: $(BIN) $(BENCH_BIN)
	$(Q)MLLM_FIXTURES=$(FIXTURES) BUILD=$(BUILD) sh bench/run.sh

# Coverage-guided fuzzing: every tests/fuzz/fuzz_<name>.c built with clang's
# libFuzzer, ASan and UBSan into build-fuzz/ (the libraries too, with
# coverage instrumentation), then run for FUZZ_SECONDS each, one after the
# other; any finding (crash, sanitizer report, FUZZ_CHECK, leak, timeout)
# fails the target and leaves the input in build-fuzz/findings/<name>/.
# FUZZ=name1,name2 picks harnesses. Corpora grow in build-fuzz/corpus/.
FUZZ_SECONDS    ?= 60
FUZZ_CI_SECONDS ?= 30
FUZZ_BUILD      := build-fuzz
FUZZ_CC         ?= clang
FUZZ_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_CFLAGS := -fsanitize=fuzzer-no-link $(FUZZ_SAN)

$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.c $(wildcard tests/fuzz/*.h) $(ALL_LIBS)
	$(Q)mkdir -p $(@D)
	$(QLD)$(CC) $(CFLAGS) $(SERVER_CFLAGS) -Itests -Itests/fuzz $(LDFLAGS) -fsanitize=fuzzer \
		-o $@ $< $(ALL_LIBS) $(LINK_LIBS)
fuzz-bins: $(FUZZ_BIN)

fuzz-build: deps
	$(Q)$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) OPT=-O1 \
		SAN="$(FUZZ_CFLAGS)" fuzz-bins
fuzz: fuzz-build
	$(Q)MLLM_FIXTURES=$(FIXTURES) sh tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) \
		$(if $(FUZZ),$(subst $(comma), ,$(FUZZ)),$(FUZZ_NAMES))
# CI fuzzes with a fixed seed (FUZZ_CI_SEED): a run is then the same
# sequence of inputs every time, so a red CI is reproducible and a green one
# is not luck; `make fuzz` explores with fresh seeds.
FUZZ_CI_SEED ?= 1
fuzz-ci: fuzz-build
	$(Q)FUZZ_FLAGS="-seed=$(FUZZ_CI_SEED) $${FUZZ_FLAGS:-}" MLLM_FIXTURES=$(FIXTURES) \
		sh tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_CI_SECONDS) $(FUZZ_NAMES)
comma := ,

# The Check mutation fuzzers (api/test_fuzz, engine/test_tokenizer_fuzz) at
# their MLLM_LONG length (this was `make fuzz` before libFuzzer).
fuzz-long: deps
	$(Q)$(MAKE) --no-print-directory _fuzz-long
_fuzz-long: $(BIN) $(TEST_BIN)
	$(Q)MLLM_FIXTURES=$(FIXTURES) BUILD=$(BUILD) MLLM_LONG=1 sh tests/run.sh $(filter %fuzz,$(TEST_BIN))

# End-to-end load against the daemon on loopback (bench/loadtest.sh starts
# it with the demo model unless URL=http://host:port is given). SOAK=s turns
# on the soak checks for s seconds; `make soak` is SOAK=$(SOAK_SECONDS).
SOAK_SECONDS ?= 600
LOADTEST_BIN := $(BUILD)/bench/loadtest
$(LOADTEST_BIN): bench/loadtest.c
	$(Q)mkdir -p $(@D)
	$(QLD)$(CC) $(CFLAGS) $(PKG_CFLAGS) $(LDFLAGS) -o $@ $< $(PKG_LIBS) -lm
# make bench's end-to-end side by side (bench/side_by_side.sh) drives it too.
_bench: $(LOADTEST_BIN)
loadtest: $(BIN) $(LOADTEST_BIN)
	$(Q)BUILD=$(BUILD) URL="$(URL)" SOAK="$(SOAK)" sh bench/loadtest.sh
soak: $(BIN) $(LOADTEST_BIN)
	$(Q)BUILD=$(BUILD) URL="$(URL)" SOAK="$(SOAK_SECONDS)" sh bench/loadtest.sh
# A client reading a long stream slowly gets all of it (2-3 min).
slow-reader: $(BIN)
	$(Q)MLLM_FIXTURES=$(FIXTURES) sh tests/integration/slow_reader.sh
# The older mixed-traffic soak (Python clients, bad requests, hang-ups).
soak-mixed: $(BIN)
	$(Q)MLLM_FIXTURES=$(FIXTURES) BUILD=$(BUILD) sh tests/integration/soak.sh

# The accuracy table (README "Accuracy"): perplexity and KL divergence of
# every weight format and KV type against F32, on held-out text.
perplexity: $(BIN)
	$(Q)MLLM_FIXTURES=$(FIXTURES) BUILD=$(BUILD) MODEL="$(MODEL)" sh bench/perplexity.sh

# The README's run command. Without MODEL it serves the shipped demo model.
DEMO_MODEL := models/mobilellm-demo
run: deps
	$(Q)$(MAKE) --no-print-directory $(BIN)
	$(Q)if [ -n "$(MODEL)" ]; then m="$(MODEL)"; else m="$(DEMO_MODEL)"; fi; \
	if [ ! -e "$$m" ]; then echo "make run: model '$$m' not found; pass MODEL=path/to/snapshot-or.gguf" >&2; exit 2; fi; \
	echo "serving $$m on http://127.0.0.1:$(PORT)"; \
	exec $(BIN) serve --model "$$(basename "$$m" .gguf)=$$m" --port $(PORT)

FORMAT_SRC = $(shell git ls-files '*.c' '*.h' 2>/dev/null)
check-format:
	$(Q)clang-format --dry-run --Werror $(FORMAT_SRC)
format:
	$(Q)clang-format -i $(FORMAT_SRC)

clean:
	rm -rf build build-asan build-tsan build-noopt

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
