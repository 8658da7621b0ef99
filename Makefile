# tgate build. `make` -> build/tgate; `make test` runs the whole suite;
# `make asan` builds build-asan/tgate; `make fuzz` runs every fuzzer briefly.
PREFIX ?= /usr/local
CC ?= cc
PKGS := libevent_core libevent_extra libevent_openssl libevent_pthreads libnghttp2 openssl yaml-0.1
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
          -Iinclude $(PKG_CFLAGS) -DTG_VERSION=\"$(VERSION)\" -pthread
LDLIBS += $(PKG_LIBS) -pthread

SRCS := $(wildcard src/*.c)
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)

BUILD ?= build
OBJS := $(SRCS:src/%.c=$(BUILD)/obj/%.o)
LIB_OBJS := $(LIB_SRCS:src/%.c=$(BUILD)/obj/%.o)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/unit/%)

.PHONY: all install test unit asan fuzz clean format format-check deps bench

all: $(BUILD)/tgate

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

install: $(BUILD)/tgate
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BUILD)/tgate $(DESTDIR)$(PREFIX)/bin/tgate

# ASan + UBSan build, used by `make test` (TG_ASAN=1 scripts/test.sh).
asan:
	$(MAKE) BUILD=build-asan CC=clang \
	  CFLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDFLAGS="-fsanitize=address,undefined" build-asan/tgate $(UNIT_SRCS:tests/unit/%.c=build-asan/unit/%)

FUZZ_TIME ?= 20
fuzz:
	@mkdir -p build-fuzz
	@set -e; for f in $(FUZZ_SRCS); do n=$$(basename $$f .c); \
	  clang -O1 -g -std=c11 -D_GNU_SOURCE -Iinclude $(PKG_CFLAGS) -fsanitize=fuzzer,address,undefined \
	    -o build-fuzz/$$n $$f $(LIB_SRCS) $(PKG_LIBS) -pthread; \
	  mkdir -p tests/fuzz/corpus/$$n; \
	  echo "fuzz $$n for $(FUZZ_TIME)s"; \
	  build-fuzz/$$n -max_total_time=$(FUZZ_TIME) -print_final_stats=0 tests/fuzz/corpus/$$n 2>&1 | tail -2; \
	done

deps:
	scripts/install-deps.sh

test:
	scripts/test.sh

bench:
	scripts/bench.sh

format:
	clang-format -i src/*.c include/*.h tests/unit/*.c tests/fuzz/*.c

format-check:
	clang-format --dry-run -Werror src/*.c include/*.h tests/unit/*.c tests/fuzz/*.c

clean:
	rm -rf build build-asan build-fuzz
