# Relay: `make demo` and `make test` set everything up on a fresh Debian 12 machine.
# Build directories: build/ (release + tests), build-asan/ (ASan+UBSan), build-tsan/ (TSan),
# build-fuzz/ (clang libFuzzer).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
CTEST_FLAGS ?= --output-on-failure -j$(JOBS)
# Seconds each fuzz target runs in `make test-fuzz` (13 targets: about 6.5 minutes of the CI budget).
FUZZ_SECONDS ?= 30

.PHONY: all deps build demo test test-release test-asan test-tsan test-fuzz bench fuzz format clean

all: build

deps:
	@./scripts/install-deps

build: deps
	@cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELAY_WERROR=ON $(CMAKE_FLAGS) >/dev/null
	@cmake --build build -j$(JOBS)

demo: build
	./build/src/cli/relay train

test: build
	@$(MAKE) --no-print-directory test-release test-asan test-tsan test-fuzz
	@echo "make test: all configurations passed"

test-release:
	cd build && ctest $(CTEST_FLAGS)

test-asan: deps
	@cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DRELAY_WERROR=ON -DRELAY_BUILD_BENCH=OFF \
	    -DRELAY_SANITIZER=address,undefined -DRELAY_TEST_TIMEOUT_SCALE=4 $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-asan -j$(JOBS)
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    RELAY_SANITIZED=1 ctest $(CTEST_FLAGS) -LE slow

test-tsan: deps
	@cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELAY_WERROR=ON -DRELAY_BUILD_BENCH=OFF \
	    -DRELAY_SANITIZER=thread -DRELAY_TEST_TIMEOUT_SCALE=6 $(CMAKE_FLAGS) >/dev/null
	@cmake --build build-tsan -j$(JOBS)
	cd build-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" RELAY_SANITIZED=1 \
	    ctest $(CTEST_FLAGS) -LE slow

# A short, bounded libFuzzer run of every decoder, starting from the committed corpus.
test-fuzz: deps
	@if [ -f fuzz/CMakeLists.txt ]; then \
	  CC=clang CXX=clang++ cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRELAY_FUZZ=ON \
	     -DRELAY_BUILD_TESTS=OFF -DRELAY_BUILD_BENCH=OFF >/dev/null && \
	  cmake --build build-fuzz -j$(JOBS) && \
	  ./fuzz/run-all build-fuzz --each $(FUZZ_SECONDS); \
	fi

bench: build
	./bench/run-all build

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan build-tsan build-fuzz
