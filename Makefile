# clustermgr build. `make` builds build/clustermgr; `make test` runs the whole suite; `make deb`
# builds the Debian package.
# Variants: `make SAN=1` builds an ASan+UBSan tree under build-san/ (used by `make test-san`).

PKGS := raft libuv libcurl json-c zlib libcrypto gnutls
# libraries without a pkg-config module, each with its Debian -dev package in debian/control
LIBS_NOPC := -lhttp_parser
# the simulated blobnode fleet (a test tool, not shipped) serves its HTTP with libmicrohttpd
SIM_PKGS := libmicrohttpd
CC ?= cc
ifeq ($(FUZZ),1)
# libFuzzer targets (tests/fuzz): everything built by clang with coverage and sanitizers
CC := clang
BUILD ?= build-fuzz
OPT ?= -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined \
	-fno-sanitize-recover=undefined
LDSAN := -fsanitize=address,undefined
else ifeq ($(SAN),1)
BUILD ?= build-san
OPT ?= -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
LDSAN := -fsanitize=address,undefined
else
BUILD ?= build
OPT ?= -O2 -g
LDSAN :=
endif

VERSION := $(shell git describe --always --dirty 2>/dev/null || echo dev)
CFLAGS := $(OPT) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -MMD -MP \
	-DCM_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
LDLIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) $(LIBS_NOPC) -lpthread -lm
SIM_LDLIBS := $(shell pkg-config --libs $(SIM_PKGS) 2>/dev/null)

LIB_SRC := $(sort $(filter-out src/server/main.c,$(wildcard src/*/*.c)))
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
# The dashboard's static files, compiled into the binary.
WEB_FILES := $(sort $(wildcard web/*.html web/*.js web/*.css))
WEB_OBJ := $(BUILD)/obj/gen/web_assets.o
LIB_OBJ += $(WEB_OBJ)
MAIN_OBJ := $(BUILD)/obj/src/server/main.o

SIM_SRC := $(sort $(wildcard tools/blobnode-sim/*.c))
SIM_OBJ := $(SIM_SRC:%.c=$(BUILD)/obj/%.o)
CMCTL_SRC := $(sort $(wildcard tools/cmctl/*.c))
CMCTL_OBJ := $(CMCTL_SRC:%.c=$(BUILD)/obj/%.o)

UNIT_SRC := $(sort $(wildcard tests/unit/test_*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
TOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/tools/%)
# storage fault injection for chaos runs, preloaded into a node (never sanitized itself)
FAULTIO := $(BUILD)/tests/libfaultio.so
# fuzz targets (tests/fuzz): libFuzzer binaries under FUZZ=1, replay drivers in every build
FUZZ_NAMES := $(sort $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
REPLAY_BIN := $(FUZZ_NAMES:%=$(BUILD)/tests/replay_%)
FUZZ_BIN := $(FUZZ_NAMES:%=$(BUILD)/fuzz/%)


.PHONY: all clean test layers unit cluster tools bench-tools test-san fmt fmt-check deps run chaos fuzz \
	fuzz-ci fuzz-run bench bench-deps bench-etcd bench-knobs deb deb-deps test-deb print-pkgs
all: $(BUILD)/clustermgr $(BUILD)/blobnode-sim $(BUILD)/cmctl

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/gen/web_assets.c: $(WEB_FILES) scripts/embed-web.py
	@mkdir -p $(dir $@)
	python3 scripts/embed-web.py $@ $(WEB_FILES)

$(WEB_OBJ): $(BUILD)/gen/web_assets.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Isrc/api -c $< -o $@

$(BUILD)/libcm.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/clustermgr: $(MAIN_OBJ) $(BUILD)/libcm.a
	$(CC) $(LDSAN) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# the simulated blobnode fleet (tools/blobnode-sim)
$(BUILD)/blobnode-sim: $(SIM_OBJ) $(BUILD)/libcm.a
	$(CC) $(LDSAN) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(SIM_LDLIBS)

# bench/volgen: builds large volume states for the benchmarks (not part of `all`)
bench-tools: $(BUILD)/volgen $(BUILD)/loadgen
$(BUILD)/loadgen: bench/loadgen.c
	@mkdir -p $(dir $@)
	$(CC) $(OPT) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -o $@ $< -lpthread
$(BUILD)/volgen: $(BUILD)/obj/bench/volgen.o $(BUILD)/libcm.a
	$(CC) $(LDSAN) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/cmctl: $(CMCTL_OBJ) $(BUILD)/libcm.a
	$(CC) $(LDSAN) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcrypto

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/libcm.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $< $(BUILD)/libcm.a $(LDLIBS) -lcmocka

$(BUILD)/tests/tools/%: tests/tools/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDSAN) -o $@ $< $(LDLIBS)

$(FAULTIO): tests/chaos/faultio.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -g -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -shared -fPIC -o $@ $< -ldl

tools: $(TOOL_BIN) $(FAULTIO)

FUZZ_DEPS := $(wildcard tests/fuzz/*.c tests/fuzz/*.h)
$(BUILD)/tests/replay_%: tests/fuzz/fuzz_%.c $(FUZZ_DEPS) $(BUILD)/libcm.a
	@mkdir -p $(dir $@)
	$(CC) $(OPT) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror $(LDSAN) \
		$(shell pkg-config --cflags json-c) -o $@ $< tests/fuzz/replay.c $(BUILD)/libcm.a $(LDLIBS)

$(BUILD)/fuzz/%: tests/fuzz/fuzz_%.c $(FUZZ_DEPS) $(BUILD)/libcm.a
	@mkdir -p $(dir $@)
	$(CC) $(OPT) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
		$(shell pkg-config --cflags json-c) -o $@ $< $(BUILD)/libcm.a $(LDLIBS)

# unit tests, then every fuzz target over its corpus (seeds and the inputs of past crashes)
unit: $(UNIT_BIN) $(REPLAY_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done
	@set -e; for t in $(FUZZ_NAMES); do $(BUILD)/tests/replay_$$t tests/fuzz/corpus/$$t; done

cluster: $(BUILD)/clustermgr $(BUILD)/blobnode-sim $(BUILD)/cmctl $(BUILD)/volgen $(TOOL_BIN) $(FAULTIO) \
		$(BUILD)/loadgen
	CM_BUILD=$(BUILD) /usr/bin/python3 -m pytest -q -x --basetemp=$(BUILD)/pytest-tmp tests/cluster tests/chaos $(PYTEST_ARGS)

# Fuzzing (tests/fuzz/README.md). `make fuzz FUZZ_TIME=600` runs every target that long, growing
# build-fuzz/corpus/<target> from the seeds; crashes land in build-fuzz/crashes/. `make fuzz-ci`
# is the short deterministic run of `make test`: a fixed number of runs from a fixed seed,
# starting from the checked-in corpus only.
FUZZ_TIME ?= 60
FUZZ_RUNS ?= 10000
fuzz:
	$(MAKE) FUZZ=1 fuzz-run FUZZ_WORK=corpus \
		FUZZ_ARGS="-max_total_time=$(FUZZ_TIME) -timeout=10 -print_final_stats=1"

fuzz-ci:
	$(MAKE) FUZZ=1 fuzz-run FUZZ_WORK=ci-corpus FUZZ_FRESH=1 \
		FUZZ_ARGS="-runs=$(FUZZ_RUNS) -seed=1 -timeout=10 -print_final_stats=1"

fuzz-run: $(FUZZ_BIN)
	@set -e; for t in $(FUZZ_NAMES); do \
		work=$(BUILD)/$(FUZZ_WORK)/$$t; \
		if [ -n "$(FUZZ_FRESH)" ]; then rm -rf $$work; fi; \
		mkdir -p $$work $(BUILD)/crashes/$$t; \
		echo "== fuzz $$t"; \
		$(BUILD)/fuzz/$$t -artifact_prefix=$(BUILD)/crashes/$$t/ $(FUZZ_ARGS) \
			$$work tests/fuzz/corpus/$$t > $(BUILD)/fuzz-$$t.log 2>&1 \
			|| { tail -60 $(BUILD)/fuzz-$$t.log; exit 1; }; \
		grep -E "^(INFO: Seed|stat::number_of_executed_units|stat::new_units_added|#[0-9]+ *DONE)" \
			$(BUILD)/fuzz-$$t.log; \
	done

# A chaos campaign (tests/chaos/README.md): `make chaos SEED=7 DURATION=1800 NODES=5`; the report
# goes to $(BUILD)/chaos/report-<seed>.md (and .json). SAN=1 runs the sanitizer build.
SEED ?= 1
DURATION ?= 600
NODES ?= 5
chaos: $(BUILD)/clustermgr $(FAULTIO)
	CM_BUILD=$(BUILD) /usr/bin/python3 tests/chaos/chaos.py --seed $(SEED) --duration $(DURATION) \
		--nodes $(NODES) --report $(BUILD)/chaos/report-$(SEED).md $(CHAOS_ARGS)

# The whole suite, as CI runs it: formatting, unit and cluster tests, then both again under
# ASan+UBSan, then a short deterministic libFuzzer run of every fuzz target.
test: deps layers
	$(MAKE) fmt-check
	$(MAKE) unit
	$(MAKE) cluster
	$(MAKE) test-san
	$(MAKE) fuzz-ci

# Includes follow the layers (docs/developing.md): the check, then its own test on planted
# violations.
layers:
	/usr/bin/python3 scripts/check-layers.py
	sh scripts/test-check-layers.sh

test-san:
	$(MAKE) SAN=1 unit
	$(MAKE) SAN=1 cluster

deps:
	@scripts/deps.sh

# Benchmarks (bench/README.md), never part of `make test`: each starts its own clusters on free
# loopback ports and prints one RESULT line per run and a markdown table. `make bench` runs the
# domain benchmarks, `make bench-etcd` the side by side with etcd 3.4, `make bench-knobs` what
# group commit and read batching buy. BENCH_ARGS passes options to the script(s).
BENCH_PY = /usr/bin/python3
bench-deps:
	@scripts/deps.sh --bench
bench: bench-deps all bench-tools
	$(BENCH_PY) bench/bench_core.py $(BENCH_ARGS)
	$(BENCH_PY) bench/bench_services.py $(BENCH_ARGS)
	$(BENCH_PY) bench/bench_disks.py $(BENCH_ARGS)
	$(BENCH_PY) bench/bench_volumes.py $(BENCH_ARGS)
	$(BENCH_PY) bench/bench_nodes.py $(BENCH_ARGS)
	$(BENCH_PY) bench/bench_conns.py $(BENCH_ARGS)
bench-etcd: bench-deps all bench-tools
	$(BENCH_PY) bench/bench_etcd.py $(BENCH_ARGS)
bench-knobs: bench-deps all bench-tools
	$(BENCH_PY) bench/bench_knobs.py $(BENCH_ARGS)

run:
	scripts/run-local.sh

# The Debian package (debian/, docs/operations.md "Install from the package"): `make deb` builds
# $(BUILD)/deb/clustermgr_<version>_<arch>.deb with dpkg-buildpackage in a staged copy of the
# tree and checks it with lintian. The version is debian/changelog's. `make test-deb` (root, a
# disposable machine: it installs, upgrades and purges the package) is not part of `make test`.
deb-deps:
	@scripts/deps.sh --deb
deb: deb-deps
	scripts/build-deb.sh $(BUILD)/deb
test-deb: deb-deps
	CM_BUILD=$(BUILD) /usr/bin/python3 -m pytest -q -x --basetemp=$(BUILD)/pytest-deb tests/package \
		$(PYTEST_ARGS)

# The libraries, as pkg-config modules (scripts/build-deb.sh checks debian/control against them).
print-pkgs:
	@echo $(PKGS)

C_FILES = $(shell find src tests tools bench -name '*.[ch]' 2>/dev/null)
fmt:
	clang-format -i $(C_FILES)

fmt-check:
	clang-format --dry-run -Werror $(C_FILES)

clean:
	rm -rf build build-san build-fuzz

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(SIM_OBJ:.o=.d) $(CMCTL_OBJ:.o=.d) \
	$(BUILD)/obj/bench/volgen.d $(UNIT_BIN:=.d)
