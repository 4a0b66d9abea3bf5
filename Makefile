# Top-level entry points. `make run` and `make test` do all set-up on a
# fresh Debian machine (they install missing packages with apt-get).
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS ?= $(shell nproc)
ARGS ?=

.PHONY: all deps deps-test build run test soak lint test-unit test-browser test-asan check-includes fuzz fuzz-smoke bench clean format

all: build

deps:
	@scripts/install-deps.sh build

deps-test:
	@scripts/install-deps.sh test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/tessera serve $(ARGS)

test: deps-test build check-includes test-unit test-browser fuzz-smoke

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -j 2

test-browser: build
	scripts/test-browser.sh $(BUILD)/tessera

test-asan: deps-test
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTESSERA_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 ctest --output-on-failure -j 2

check-includes:
	@scripts/check-includes.sh

# Static analysis of src/: any cppcheck finding fails (fix it, or justify it
# with an inline `// cppcheck-suppress id` and a reason).
lint: deps-test
	cppcheck --enable=warning,performance,portability --inline-suppr --std=c11 -q \
	  --error-exitcode=1 --suppress=missingIncludeSystem -D_GNU_SOURCE \
	  $(addprefix -I ,$(wildcard src/*)) src/

fuzz-build: deps-test
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTESSERA_FUZZ=ON >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzzers

fuzz-smoke: fuzz-build
	scripts/fuzz.sh $(FUZZ_BUILD) 10

fuzz: fuzz-build
	scripts/fuzz.sh $(FUZZ_BUILD) $${FUZZ_SECONDS:-180}

soak: build
	@scripts/install-deps.sh bench
	scripts/soak.sh $(BUILD)

bench: build
	@scripts/install-deps.sh bench
	scripts/bench.sh $(BUILD)

format:
	clang-format -i $$(git ls-files 'src/*.c' 'src/*.h' 'tests/*.c' 'tests/*.h' 'fuzz/*.c' 'bench/*.c')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
