# Aegis C ABI and Go package. Include from the repo root Makefile
# (`include aegis-ffi/ffi.mk`) or run `make -f aegis-ffi/ffi.mk TARGET` from the repo root.
# c-test and go-test run the collector end to end against a real OpenTelemetry collector
# (rotel): they depend on `ship-rotel` and read AEGIS_ROTEL, both from aegis-ship/ship.mk
# (included at the end of this file when it is run on its own).
CARGO        ?= cargo
CC           ?= cc
PYTHON       ?= python3
GO           ?= go
CBINDGEN_VERSION ?= 0.29.0
FFI_TOOLS    := aegis-ffi/.tools
CBINDGEN     := $(FFI_TOOLS)/bin/cbindgen
FFI_LIB_DIR  := target/release
FFI_BUILD    := target/ffi-test
C_TEST_FLAGS := -std=c11 -Wall -Wextra -Werror -O1 -g -D_POSIX_C_SOURCE=200809L
VALGRIND     := valgrind --error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect
# Go's build cache does not hash the libaegis.a that cgo's LDFLAGS name, so a rebuilt
# library would not be linked again: a linker flag carrying its digest makes Go relink
# whenever it changes (the -X names a symbol nothing reads).
GO_RELINK     = -ldflags=-X=main.libaegisDigest=$$(sha256sum $(CURDIR)/$(FFI_LIB_DIR)/libaegis.a | cut -c1-16)

.PHONY: ffi-build ffi-header ffi-header-check c-test go-test ffi-test

ffi-build:
	$(CARGO) build --release -j2 -p aegis-ffi

$(CBINDGEN):
	$(CARGO) install cbindgen --version $(CBINDGEN_VERSION) --locked --root $(FFI_TOOLS) -j2

# Regenerates aegis-ffi/include/aegis.h (commit the result).
ffi-header: $(CBINDGEN)
	$(CBINDGEN) --config aegis-ffi/cbindgen.toml --crate aegis-ffi --output aegis-ffi/include/aegis.h

# Fails when the committed header is not what cbindgen generates.
ffi-header-check: $(CBINDGEN)
	@mkdir -p $(FFI_BUILD)
	$(CBINDGEN) --config aegis-ffi/cbindgen.toml --crate aegis-ffi --output $(FFI_BUILD)/aegis.h
	diff -u aegis-ffi/include/aegis.h $(FFI_BUILD)/aegis.h

c-test: ffi-build ship-rotel
	@mkdir -p $(FFI_BUILD)
	$(PYTHON) aegis-ffi/tests/c/vectors_to_text.py tests/vectors/generated $(FFI_BUILD)/vectors.txt
	$(CC) $(C_TEST_FLAGS) -I aegis-ffi/include aegis-ffi/tests/c/test_ffi.c \
	  $(FFI_LIB_DIR)/libaegis.a -lpthread -ldl -lm -o $(FFI_BUILD)/test_ffi
	$(PYTHON) aegis-ffi/tests/c/with_rotel.py -- \
	  $(VALGRIND) $(FFI_BUILD)/test_ffi $(FFI_BUILD)/vectors.txt policies/finance
	$(CC) $(C_TEST_FLAGS) -I aegis-ffi/include examples/c/guard.c \
	  -L $(FFI_LIB_DIR) -laegis -Wl,-rpath,$(CURDIR)/$(FFI_LIB_DIR) -o $(FFI_BUILD)/guard-dynamic
	$(FFI_BUILD)/guard-dynamic policies/finance

go-test: ffi-build ship-rotel
	cd aegis-ffi/go && $(GO) vet ./... && $(GO) test -race -count=1 $(GO_RELINK) ./...
	cd examples/go && $(GO) vet ./... && $(GO) build -o /dev/null .

ffi-test: ffi-header-check c-test go-test

ifeq ($(firstword $(MAKEFILE_LIST)),aegis-ffi/ffi.mk)
include aegis-ship/ship.mk
endif
