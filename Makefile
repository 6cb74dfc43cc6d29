# The project's two commands: `make run` and `make test` (see README.md).
# Both install what is missing from Debian's archive first.
BUILD      ?= build
ASAN_BUILD ?= build-asan
JOBS       ?= $(shell nproc)
WARD_ARGS  ?=
DEV_PKI    ?= .ward-dev/pki
# No retries: a test passes the first time, or it has found a bug.
CTEST_ARGS ?=

DEB_PKGS = build-essential cmake pkg-config clang libclang-rt-14-dev \
           libssl-dev openssl liburcu-dev libsqlite3-dev \
           python3 python3-pytest python3-paho-mqtt python3-cryptography \
           mosquitto mosquitto-clients nats-server libnats-dev procps \
           gcovr stress-ng

.PHONY: all deps build run test test-asan fuzz bench format clean

all: build

# Installs only what is missing, so a warm machine pays one dpkg query.
deps:
	@missing=$$(for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	fi
	@# Debian starts mosquitto as a service on install; tests run their own.
	@-systemctl disable --now mosquitto >/dev/null 2>&1 || true

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@[ -f $(DEV_PKI)/ca.crt ] || $(BUILD)/ward cert dev $(DEV_PKI)
	$(BUILD)/ward serve --dev-pki $(DEV_PKI) $(WARD_ARGS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)
	$(MAKE) --no-print-directory test-asan
	$(MAKE) --no-print-directory fuzz-run

test-asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DWARD_SANITIZE=ON >/dev/null
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

fuzz: deps
	CC=clang cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DWARD_FUZZ=ON >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target $(FUZZ_TARGETS)

# A few seconds of real fuzzing per target (fixed seed, one process each),
# after the corpus replays in `test`: fails on any crash (fuzz/run.sh).
# Only the fuzz binaries are built (half the time of the whole tree).
FUZZ_SECONDS ?= 5
FUZZ_TARGETS = $(basename $(notdir $(wildcard fuzz/fuzz_*.c)))
.PHONY: fuzz-run
fuzz-run: fuzz
	fuzz/run.sh build-fuzz $(FUZZ_SECONDS)

bench: build
	bench/run.sh
	bench/bridge.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) build-fuzz
