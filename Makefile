# The project's two commands: `make run` and `make test` (see README.md).
# Both install what is missing from Debian's archive first.
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc)
WARD_ARGS  ?=
DEV_PKI    ?= .ward-dev/pki
DEV_DATA   ?= .ward-dev/data
# No retries: a test passes the first time, or it has found a bug.
CTEST_ARGS ?=

DEB_PKGS = build-essential cmake pkg-config clang libclang-rt-14-dev \
           libssl-dev openssl liburcu-dev libsqlite3-dev \
           python3 python3-pytest python3-paho-mqtt python3-cryptography \
           mosquitto mosquitto-clients nats-server libnats-dev procps \
           golang-go golang-github-nats-io-go-nats-dev golang-github-nats-io-nkeys-dev \
           golang-golang-x-crypto-dev sqlite3 strace gcovr stress-ng nodejs \
           python3-websockets python3-prometheus-client chromium \
           libsystemd-dev

.PHONY: all deps build run test test-asan test-tsan fuzz bench format clean

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
	@# npm for the nats.js tests: Debian's package, unless a Node.js that
	@# brings its own (NodeSource's) is there already.
	@command -v npm >/dev/null 2>&1 || { \
	  SUDO=; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends npm; }
	@# Debian starts mosquitto as a service on install; tests run their own.
	@-systemctl disable --now mosquitto >/dev/null 2>&1 || true

build: deps
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build $(BUILD) -j $(JOBS)

run: build
	@[ -f $(DEV_PKI)/ca.crt ] || $(BUILD)/ward cert dev $(DEV_PKI)
	$(BUILD)/ward serve --dev-pki $(DEV_PKI) --data $(DEV_DATA) --http 127.0.0.1:8081 \
	  -l tcp://0.0.0.0:1883 -l ws://0.0.0.0:8083/mqtt -l wss://0.0.0.0:8084/mqtt \
	  -l nats+ws://0.0.0.0:4224 --certfile $(DEV_PKI)/server.crt --keyfile $(DEV_PKI)/server.key \
	  --cafile $(DEV_PKI)/ca.crt --client-cert optional $(WARD_ARGS)

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

# ThreadSanitizer: the unit tests and the integration tests that put several
# threads on the same state (bridges, TLS and ACL reloads on SIGHUP, the
# password pool, backpressure across workers, session takeovers, the admin
# server's timer and history threads, the multi-threaded bench). The rest add
# little under TSan and would double its
# time. Not part of `make test`, which it would take past 15 minutes here
# (see docs/ARCHITECTURE.md, "Sanitizers").
TSAN_TESTS ?= ^(unit/|integration/test_(auth|auth_pool|bench|bridge|flow|http_api|http_metrics|identity|mqtt_session|nats_clients|nats_protocol|persistence|tls|websocket)$$)
test-tsan: deps
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DWARD_TSAN=ON >/dev/null
	cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && \
	  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:allocator_may_return_null=1:suppressions=$(CURDIR)/tests/tsan.supp \
	  ctest --output-on-failure -j $(JOBS) -R '$(TSAN_TESTS)' $(CTEST_ARGS)

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
	bench/flow.sh
	bench/nats.sh
	bench/persist.sh
	bench/ws.sh
	bench/admin.sh
	bench/handshake.sh
	bench/idle.sh
	bench/storm.sh

# Unit-test line and branch coverage of src/ (CTest label `unit` only), and a
# floor of COV_FLOOR% of lines for each of COV_FILES. gcov data is read once
# into a JSON tracefile; the table and each file's floor are made from it.
COV_BUILD ?= build-cov
COV_FLOOR ?= 80
COV_FILES ?= src/broker/broker.c src/tls/tls.c src/client/client.c
.PHONY: coverage
coverage: deps
	cmake -S . -B $(COV_BUILD) -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS=--coverage \
	  -DCMAKE_EXE_LINKER_FLAGS=--coverage >/dev/null
	cmake --build $(COV_BUILD) -j $(JOBS)
	find $(COV_BUILD) -name '*.gcda' -delete
	cd $(COV_BUILD) && ctest --output-on-failure -j $(JOBS) -L unit $(CTEST_ARGS)
	gcovr -r . --object-directory $(COV_BUILD) --exclude-directories '.*/CMakeFiles/[0-9][^/]*' \
	  -f src/ -j $(JOBS) --json $(COV_BUILD)/coverage.json
	@gcovr -r . -a $(COV_BUILD)/coverage.json --csv | awk -F, ' \
	  NR == 1 { printf "%-28s %7s %7s %6s %8s %7s %6s\n", "file", "lines", "exec", "cover", \
	            "branches", "taken", "cover"; next } \
	  function pct(n, d) { return d ? sprintf("%5.1f%%", 100 * n / d) : "     -" } \
	  function row(f, l, lc, b, bc) { printf "%-28s %7d %7d %s %8d %7d %s\n", f, l, lc, \
	                                  pct(lc, l), b, bc, pct(bc, b) } \
	  { row($$1, $$2, $$3, $$5, $$6); l += $$2; lc += $$3; b += $$5; bc += $$6 } \
	  END { row("TOTAL", l, lc, b, bc) }'
	@fail=0; for f in $(COV_FILES); do \
	  gcovr -r . -a $(COV_BUILD)/coverage.json -f $$f --fail-under-line $(COV_FLOOR) >/dev/null \
	    || { echo "coverage: $$f is below $(COV_FLOOR)% of lines"; fail=1; }; \
	done; exit $$fail

# `make install` (PREFIX, DESTDIR): the binary, ward(1) and ward.conf(5),
# an example configuration and ward.service. `make uninstall` removes what
# the last install from $(BUILD) wrote (its install_manifest.txt). `make
# deb`: the Debian package, built from a copy of the tree (git ls-files) so
# the worktree stays clean; the .deb files land in $(BUILD)/deb.
# tests/integration/test_package.py builds and installs it too.
DEB_PKGS += debhelper dpkg-dev fakeroot systemd groff-base man-db libsystemd-dev
PREFIX ?= /usr/local
.PHONY: install uninstall deb
install: build
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	DESTDIR=$(DESTDIR) cmake --install $(BUILD)

uninstall:
	DESTDIR=$(DESTDIR) cmake --build $(BUILD) --target uninstall

deb: deps
	rm -rf $(BUILD)/deb && mkdir -p $(BUILD)/deb/src
	git ls-files -z | xargs -0 cp --parents -t $(BUILD)/deb/src
	cd $(BUILD)/deb/src && DEB_BUILD_OPTIONS="nocheck parallel=$(JOBS) $(DEB_BUILD_OPTIONS)" \
	  WARD_GIT_REV=$$(git -C $(CURDIR) describe --always --dirty 2>/dev/null) \
	  dpkg-buildpackage -us -uc -b
	rm -rf $(BUILD)/deb/src
	@ls -1 $(BUILD)/deb/*.deb

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-fuzz
