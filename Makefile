# tgate build. `make` -> build/tgate; `make test` runs the whole suite;
# `make asan` builds build-asan/tgate; `make fuzz` runs every fuzzer briefly.
PREFIX ?= /usr/local
SHELL := /bin/bash
CC ?= cc
PKGS := libevent_core libevent_extra libevent_openssl libevent_pthreads libnghttp2 openssl yaml-0.1 jansson libpcre2-8 libcurl zlib
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
CFLAGS ?= -O2 -g
override CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
          -Iinclude $(PKG_CFLAGS) -DTG_VERSION=\"$(VERSION)\" -pthread
override LDLIBS += $(PKG_LIBS) -ldl -pthread

SRCS := $(wildcard src/*.c)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)

BUILD ?= build
OBJS := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/unit/%)

.PHONY: all install test unit asan fuzz fuzz-one clean format format-check deps bench

PLUGIN_SRCS := $(wildcard plugins/*.c)
PLUGINS := $(PLUGIN_SRCS:plugins/%.c=$(BUILD)/plugins/%.so)

all: $(BUILD)/tgate $(PLUGINS)

$(BUILD)/plugins/%.so: plugins/%.c include/tgate_plugin.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -shared -o $@ $<

$(BUILD)/obj/%.o: src/%.c $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tgate: $(OBJS)
	$(CC) $(CFLAGS) -o $@ $^ $(LDFLAGS) $(LDLIBS)

$(BUILD)/unit/%: tests/unit/%.c $(LIB_OBJS) tests/unit/tg_test.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests/unit -o $@ $< $(LIB_OBJS) $(LDFLAGS) $(LDLIBS)

unit: $(UNIT_BINS)
	@rc=0; for t in $(UNIT_BINS); do $$t || rc=1; done; exit $$rc

install: $(BUILD)/tgate $(PLUGINS)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/tgate/plugins
	install -m 0755 $(BUILD)/tgate $(DESTDIR)$(PREFIX)/bin/tgate
	install -m 0644 $(PLUGINS) $(DESTDIR)$(PREFIX)/lib/tgate/plugins/

# ASan + UBSan build, used by `make test` (TG_ASAN=1 scripts/test.sh).
asan:
	$(MAKE) BUILD=build-asan CC=clang \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" build-asan/tgate $(UNIT_SRCS:tests/unit/%.c=build-asan/unit/%)

FUZZ_TIME ?= 20
FUZZ_FLAGS := -O1 -g -std=c11 -D_GNU_SOURCE -DTG_VERSION=\"$(VERSION)\" -Iinclude $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined
build-fuzz/%: tests/fuzz/%.c $(LIB_SRCS) $(wildcard include/*.h)
	@mkdir -p build-fuzz
	clang $(FUZZ_FLAGS) -o $@ $< $(LIB_SRCS) $(PKG_LIBS) -ldl -pthread

# Runs one harness (FUZZ_TARGET) on a scratch copy of its committed corpus.
fuzz-one: build-fuzz/$(FUZZ_TARGET)
	@rm -rf build-fuzz/corpus-$(FUZZ_TARGET) && mkdir -p build-fuzz/corpus-$(FUZZ_TARGET)
	@cp tests/fuzz/corpus/$(FUZZ_TARGET)/* build-fuzz/corpus-$(FUZZ_TARGET)/ 2>/dev/null || true
	@echo "fuzz $(FUZZ_TARGET) for $(FUZZ_TIME)s"
	@build-fuzz/$(FUZZ_TARGET) -max_total_time=$(FUZZ_TIME) -print_final_stats=1 \
	  -artifact_prefix=build-fuzz/$(FUZZ_TARGET)- build-fuzz/corpus-$(FUZZ_TARGET) 2>&1 | \
	  grep -E 'Done|stat::number_of_executed_units|ERROR|SUMMARY|crash' ; \
	  exit $${PIPESTATUS[0]}

fuzz:
	@set -e; for f in $(FUZZ_SRCS); do $(MAKE) -s fuzz-one FUZZ_TARGET=$$(basename $$f .c); done

deps:
	scripts/install-deps.sh

test:
	scripts/test.sh

bench:
	scripts/bench.sh

format:
	clang-format -i src/*.c include/*.h plugins/*.c tests/unit/*.c tests/fuzz/*.c

format-check:
	clang-format --dry-run -Werror src/*.c include/*.h plugins/*.c tests/unit/*.c tests/fuzz/*.c

clean:
	rm -rf build build-asan build-fuzz
