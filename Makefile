# pexi — GNU make + pkg-config.
#
#   make            build ./pexi
#   make deps       install every build and test dependency (apt-get or Homebrew)
#   make test       build and run every test (what CI runs)
#   make check      the tests under ASan+UBSan, static analysis, and the format check
#   make fuzz       build the libFuzzer targets (clang) into build-fuzz/
#   make fuzz-run   run each for FUZZ_SECONDS (default 60)
#   make install    install pexi, its man pages and data (honours PREFIX and DESTDIR)
#   make demo       the whole mission on this machine: build, boot, mediated fetches, down

VERSION  := 0.1.0
PREFIX   ?= /usr/local
BINDIR   ?= $(PREFIX)/bin
DATADIR  ?= $(PREFIX)/share/pexi
MANDIR   ?= $(PREFIX)/share/man
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  ?= $(PREFIX)/share/zsh/site-functions
BUILD    ?= build
CC       ?= cc

PKGS      := yaml-0.1 libcurl libcrypto fdisk ext2fs com_err libisofs-1 libcjson libarchive zlib libidn2
# libguestfs is optional: without it the chroot bake's guestfs executor says it is missing.
ifeq ($(shell pkg-config --exists libguestfs && echo yes),yes)
PKGS      += libguestfs
GUESTFS_CFLAGS := -DPX_HAVE_GUESTFS
endif
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS))
PKG_LIBS   = $(shell pkg-config --libs $(PKGS))

WARNINGS := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
            -Wformat=2 -Wvla -Wimplicit-fallthrough
CFLAGS   ?= -O2 -g
ifeq ($(SAN),1)
CFLAGS   := -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=address,undefined
HARDEN   :=
else
HARDEN   := -D_FORTIFY_SOURCE=2 -fstack-protector-strong
endif
PX_CFLAGS = -std=c11 -D_GNU_SOURCE $(WARNINGS) $(HARDEN) -Isrc $(PKG_CFLAGS) \
            $(GUESTFS_CFLAGS) -DPX_VERSION='"$(VERSION)"' -DPX_DATADIR='"$(DATADIR)"' -MMD -MP

# src/guest/ is the static helper that runs inside the VM: built on its own, never linked
# into the host library.
LIB_SRC  := $(sort $(filter-out src/cli/% src/guest/%,$(wildcard src/*/*.c)))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
LIB      := $(BUILD)/libpexi.a

UNIT_SRC := $(sort $(wildcard tests/unit/test-*.c))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/unit/%)
FUZZ_SRC := $(sort $(wildcard tests/fuzz/fuzz-*.c))
# Each fuzz target is also linked with a plain driver that replays its corpus as a TAP test,
# so `make test` exercises every corpus input without needing clang.
REPLAY_BIN := $(FUZZ_SRC:tests/fuzz/fuzz-%.c=$(BUILD)/tests/fuzz/replay-%)
FUZZ_BIN   := $(FUZZ_SRC:tests/fuzz/fuzz-%.c=build-fuzz/fuzz-%)
CLI_TESTS  := $(sort $(wildcard tests/cli/t[0-9]*.sh))

# Quiet rules by default; `make V=1` shows every command.
ifeq ($(V),1)
Q :=
else
Q := @
endif

.PHONY: all deps test check fuzz fuzz-run install clean format lint test-programs fuzz-targets shim guest demo
# The guest helper is a static Linux binary: built where the host is Linux.
ifeq ($(shell uname -s),Linux)
GUEST_ARCH := $(shell uname -m)
# The helper for the other architecture, where its cross compiler is installed (Debian:
# gcc-aarch64-linux-gnu with libc6-dev-arm64-cross, or gcc-x86-64-linux-gnu).
GUEST_OTHER := $(if $(filter x86_64,$(GUEST_ARCH)),aarch64,x86_64)
GUEST_CROSS ?= $(GUEST_OTHER)-linux-gnu-gcc
GUEST_CROSS_BIN := $(if $(shell command -v $(GUEST_CROSS) 2>/dev/null),$(BUILD)/guest/$(GUEST_OTHER)/pexi-guest)
all: pexi guest
else
# Elsewhere (macOS) only a cross compiler builds it, when named: for Apple silicon guests
# e.g. `make guest GUEST_CROSS=aarch64-linux-musl-gcc` (any static-capable Linux toolchain).
GUEST_OTHER ?= aarch64
GUEST_CROSS_BIN := $(if $(GUEST_CROSS),$(BUILD)/guest/$(GUEST_OTHER)/pexi-guest)
all: pexi
endif

pexi: $(BUILD)/pexi
	cp $< $@

$(BUILD)/pexi: $(CLI_OBJ) $(LIB)
	@echo "  LD      $@"
	$(Q)$(CC) $(LDFLAGS) -o $@ $(CLI_OBJ) $(LIB) $(PKG_LIBS)

# pexi-guest runs inside the VM: static, plain libc, small; never linked with libpexi.
# `pexi build` installs it from guest/ARCH/ in its data directories (beside ./pexi, beside
# $(BUILD)/pexi, or DATADIR once installed) into images that run the pexi-boot service.
GUEST_SRC := $(sort $(wildcard src/guest/*.c))
GUEST_FLAGS = -static -Os -std=c11 -D_GNU_SOURCE $(WARNINGS) $(HARDEN) -Isrc
guest: $(if $(GUEST_ARCH),$(BUILD)/pexi-guest) $(GUEST_CROSS_BIN)
	$(if $(GUEST_ARCH),@mkdir -p guest/$(GUEST_ARCH) $(BUILD)/guest/$(GUEST_ARCH))
	$(if $(GUEST_ARCH),cp $(BUILD)/pexi-guest guest/$(GUEST_ARCH)/pexi-guest)
	$(if $(GUEST_ARCH),cp $(BUILD)/pexi-guest $(BUILD)/guest/$(GUEST_ARCH)/pexi-guest)
	$(if $(GUEST_CROSS_BIN),@mkdir -p guest/$(GUEST_OTHER))
	$(if $(GUEST_CROSS_BIN),cp $(GUEST_CROSS_BIN) guest/$(GUEST_OTHER)/pexi-guest)

$(BUILD)/guest/$(GUEST_OTHER)/pexi-guest: $(GUEST_SRC) $(wildcard src/guest/*.h)
	@mkdir -p $(@D)
	@echo "  CCLD    $@"
	$(Q)$(GUEST_CROSS) $(GUEST_FLAGS) -o $@ $(GUEST_SRC)

$(BUILD)/pexi-guest: $(GUEST_SRC) $(wildcard src/guest/*.h)
	@mkdir -p $(@D)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(GUEST_FLAGS) -o $@ $(GUEST_SRC)

$(LIB): $(LIB_OBJ)
	@rm -f $@
	@echo "  AR      $@"
	$(Q)$(AR) rcs $@ $^

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	@echo "  CC      $<"
	$(Q)$(CC) $(PX_CFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/unit/%: tests/unit/%.c tests/unit/tap.h $(LIB)
	@mkdir -p $(@D)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(PX_CFLAGS) $(CFLAGS) -Itests/unit $(LDFLAGS) -o $@ $< $(LIB) $(PKG_LIBS)

$(BUILD)/tests/fuzz/replay-%: tests/fuzz/fuzz-%.c tests/fuzz/replay.c $(LIB)
	@mkdir -p $(@D)
	@echo "  CCLD    $@"
	$(Q)$(CC) $(PX_CFLAGS) $(CFLAGS) -DPX_CORPUS_DIR='"$(CURDIR)/tests/fuzz/corpus/$*"' \
		$(LDFLAGS) -o $@ $< tests/fuzz/replay.c $(LIB) $(PKG_LIBS)

# The guest helper's mux core is compiled into its unit test (it is not in libpexi).
$(BUILD)/tests/unit/test-guest-mux: src/guest/mux.c src/guest/mux.h

test-programs: $(BUILD)/pexi $(if $(GUEST_ARCH),guest) $(UNIT_BIN) $(REPLAY_BIN)

# Every test runs through prove; tests/run-test turns exit 77 into a TAP skip, or into a
# failure when CI=true, because CI provides every prerequisite.
test: pexi test-programs
	PEXI='$(CURDIR)/$(BUILD)/pexi' PEXI_SRC='$(CURDIR)' PEXI_BUILD='$(CURDIR)/$(BUILD)' \
		prove --exec 'sh $(CURDIR)/tests/run-test' $(UNIT_BIN) $(REPLAY_BIN) $(CLI_TESTS)

check: format lint
	$(MAKE) BUILD=build-san SAN=1 test-programs
	PEXI='$(CURDIR)/build-san/pexi' PEXI_SRC='$(CURDIR)' PEXI_BUILD='$(CURDIR)/build-san' \
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		prove --exec 'sh $(CURDIR)/tests/run-test' \
		$(UNIT_BIN:$(BUILD)/%=build-san/%) $(REPLAY_BIN:$(BUILD)/%=build-san/%) $(CLI_TESTS)

ALL_C := $(shell git ls-files '*.c' '*.h' 2>/dev/null || find src tests -name '*.[ch]')
format:
	clang-format --dry-run -Werror $(ALL_C)

# clang's static analyser over every library, CLI and guest helper source; any finding fails
# the build.
lint:
	@for f in $(LIB_SRC) $(CLI_SRC) $(GUEST_SRC); do \
		clang --analyze -Xclang -analyzer-werror -std=c11 -D_GNU_SOURCE -Isrc \
			$(PKG_CFLAGS) -DPX_VERSION='"$(VERSION)"' -DPX_DATADIR='"$(DATADIR)"' \
			-o /dev/null $$f || exit 1; \
	done

fuzz:
	$(MAKE) BUILD=build-fuzz CC=clang CFLAGS='-O1 -g -fsanitize=fuzzer-no-link,address,undefined' \
		LDFLAGS='-fsanitize=address,undefined' fuzz-targets

fuzz-targets: $(FUZZ_BIN)

# Runs every fuzz target for FUZZ_SECONDS each. New inputs go to build-fuzz/new-NAME, never
# into the committed seed corpus; promote an input by hand when it found a bug.
FUZZ_SECONDS ?= 60
fuzz-run: fuzz
	@for t in $(FUZZ_BIN); do \
		name=$${t#build-fuzz/fuzz-}; mkdir -p build-fuzz/new-$$name; \
		echo "  FUZZ    $$name ($(FUZZ_SECONDS) s)"; \
		$$t -max_total_time=$(FUZZ_SECONDS) build-fuzz/new-$$name tests/fuzz/corpus/$$name \
			2>build-fuzz/$$name.log || { tail -30 build-fuzz/$$name.log; exit 1; }; \
		tail -1 build-fuzz/$$name.log; \
	done

build-fuzz/fuzz-%: tests/fuzz/fuzz-%.c $(LIB)
	$(CC) $(PX_CFLAGS) $(CFLAGS) -fsanitize=fuzzer -o $@ $< $(LIB) $(PKG_LIBS)

# The macOS AVF runner, compiled with swiftc and ad-hoc signed (vendor-shim/README.md).
shim:
	$(MAKE) -C vendor-shim BUILD='$(abspath $(BUILD))'

install: $(BUILD)/pexi $(if $(GUEST_ARCH),guest)
	install -d '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(DATADIR)/recipes' '$(DESTDIR)$(DATADIR)/templates'
	install -m 755 $(BUILD)/pexi '$(DESTDIR)$(BINDIR)/pexi'
	install -m 644 pexi.schema.json '$(DESTDIR)$(DATADIR)/'
	install -m 644 recipes/*.yml '$(DESTDIR)$(DATADIR)/recipes/'
	install -d '$(DESTDIR)$(DATADIR)/keys'
	install -m 644 keys/*.pub '$(DESTDIR)$(DATADIR)/keys/'
	for f in $$(find templates -type f); do \
		install -D -m 644 $$f '$(DESTDIR)$(DATADIR)/'$$f; done
	install -d '$(DESTDIR)$(MANDIR)/man1' '$(DESTDIR)$(MANDIR)/man5'
	install -m 644 man/pexi.1 '$(DESTDIR)$(MANDIR)/man1/pexi.1'
	install -m 644 man/pexi.yml.5 '$(DESTDIR)$(MANDIR)/man5/pexi.yml.5'
	install -d '$(DESTDIR)$(BASHCOMPDIR)' '$(DESTDIR)$(ZSHCOMPDIR)'
	install -m 644 completion/pexi.bash '$(DESTDIR)$(BASHCOMPDIR)/pexi'
	install -m 644 completion/_pexi '$(DESTDIR)$(ZSHCOMPDIR)/_pexi'
	for f in $$(find $(BUILD)/guest -type f -name pexi-guest 2>/dev/null); do \
		install -D -m 755 $$f '$(DESTDIR)$(DATADIR)/'$${f#$(BUILD)/}; done

deps:
	sh .ci/install-deps

# The whole mission on this machine: dependencies, pexi and its guest helper, then
# examples/demo/run (local base image and signed repository, pexi build, pexi up, an
# allowed and a denied fetch, the audit log, pexi down). Its files go to .pexi/demo.
demo: deps
	$(MAKE) pexi guest
	sh examples/demo/run

clean:
	rm -rf build build-san build-fuzz pexi guest

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d)
