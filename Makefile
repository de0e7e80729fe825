# Thin wrapper around CMake: `make` builds, `make demo` runs the main job on an example,
# `make check` runs every test normally, again under ASan/UBSan, then fuzzes the parser.
BUILD ?= build
JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
# The plain build (and the demo) needs only the build dependencies; `make test` turns the tests on.
TESTS ?= OFF

.PHONY: all demo check test test-asan fuzz bench clean

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

check: test test-asan fuzz
	@./scripts/check-summary.sh $(BUILD)/junit.xml build-asan/junit.xml -- build-fuzz

bench: all
	./bench/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
