# Thin wrapper around CMake: `make` builds, `make demo` runs the main job on an example,
# `make check` runs every test normally, again under ASan/UBSan, fuzzes the parser, then builds
# for arm64 and runs the unit tests and the layer-digest comparison under QEMU.
# `make cross-arm64` alone builds build-arm64/cli/kiln (scripts/install-deps.sh --cross arm64).
BUILD ?= build
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
# The plain build (and the demo) needs only the build dependencies; `make test` turns the tests on.
TESTS ?= OFF
CROSS_ARM64 ?= build-arm64

.PHONY: all demo check test test-asan fuzz cross-arm64 test-arm64 bench clean

all:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_TESTS=$(TESTS)
	cmake --build $(BUILD) -j$(JOBS)

demo: all
	./scripts/demo.sh $(BUILD)/cli/kiln

test:
	$(MAKE) all TESTS=ON
	cd $(BUILD) && KILN_TEST_MUST_RUN=1 ctest --output-on-failure -j$(JOBS) --output-junit junit.xml

test-asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Sanitize
	cmake --build build-asan -j$(JOBS)
	cd build-asan && KILN_TEST_MUST_RUN=1 ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j$(JOBS) \
		--output-junit junit.xml

fuzz:
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DKILN_FUZZ=ON
	cmake --build build-fuzz -j$(JOBS) --target kiln-fuzz-targets
	./tests/fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

cross-arm64:
	cmake -S . -B $(CROSS_ARM64) -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo -DKILN_WERROR=ON -DKILN_TESTS=$(TESTS) \
		-DKILN_HOST_BUILD_DIR=$(abspath $(BUILD))
	cmake --build $(CROSS_ARM64) -j$(JOBS)

# The tests that need no namespaces, run by qemu-aarch64-static (label "emulated").
test-arm64:
	$(MAKE) cross-arm64 TESTS=ON
	cd $(CROSS_ARM64) && KILN_TEST_MUST_RUN=1 ctest -L emulated --output-on-failure -j$(JOBS) \
		--output-junit junit.xml

check: test test-asan fuzz test-arm64
	@./scripts/check-summary.sh $(BUILD)/junit.xml build-asan/junit.xml $(CROSS_ARM64)/junit.xml \
		-- build-fuzz

bench: all
	./bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) build-asan build-fuzz $(CROSS_ARM64)
