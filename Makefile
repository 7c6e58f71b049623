# clustermgr build. `make` builds build/clustermgr; `make test` runs the whole suite.
# Variants: `make SAN=1` builds an ASan+UBSan tree under build-san/ (used by `make test-san`).

PKGS := raft libuv libmicrohttpd libcurl json-c zlib libcrypto gnutls
CC ?= cc
ifeq ($(SAN),1)
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
LDLIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

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


.PHONY: all clean test unit cluster tools test-san fmt fmt-check deps run chaos
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
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)

# the simulated blobnode fleet (tools/blobnode-sim)
$(BUILD)/blobnode-sim: $(SIM_OBJ) $(BUILD)/libcm.a
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS)

$(BUILD)/cmctl: $(CMCTL_OBJ) $(BUILD)/libcm.a
	$(CC) $(LDSAN) -o $@ $^ $(LDLIBS) -lcrypto

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

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

cluster: $(BUILD)/clustermgr $(BUILD)/blobnode-sim $(BUILD)/cmctl $(TOOL_BIN) $(FAULTIO)
	CM_BUILD=$(BUILD) /usr/bin/python3 -m pytest -q -x --basetemp=$(BUILD)/pytest-tmp tests/cluster tests/chaos $(PYTEST_ARGS)

# A chaos campaign (tests/chaos/README.md): `make chaos SEED=7 DURATION=1800 NODES=5`; the report
# goes to $(BUILD)/chaos/report-<seed>.md (and .json). SAN=1 runs the sanitizer build.
SEED ?= 1
DURATION ?= 600
NODES ?= 5
chaos: $(BUILD)/clustermgr $(FAULTIO)
	CM_BUILD=$(BUILD) /usr/bin/python3 tests/chaos/chaos.py --seed $(SEED) --duration $(DURATION) \
		--nodes $(NODES) --report $(BUILD)/chaos/report-$(SEED).md $(CHAOS_ARGS)

# The whole suite, as CI runs it: formatting, unit and cluster tests, then both again under
# ASan+UBSan.
test: deps
	$(MAKE) fmt-check
	$(MAKE) unit
	$(MAKE) cluster
	$(MAKE) test-san

test-san:
	$(MAKE) SAN=1 unit
	$(MAKE) SAN=1 cluster

deps:
	@scripts/deps.sh

run:
	scripts/run-local.sh

C_FILES = $(shell find src tests tools bench -name '*.[ch]' 2>/dev/null)
fmt:
	clang-format -i $(C_FILES)

fmt-check:
	clang-format --dry-run -Werror $(C_FILES)

clean:
	rm -rf build build-san

-include $(LIB_OBJ:.o=.d) $(MAIN_OBJ:.o=.d) $(SIM_OBJ:.o=.d) $(CMCTL_OBJ:.o=.d)
