# schedobs — the same commands locally and in CI.
#   make demo   install what is needed, run the demo on embedded defaults
#   make test   install what is needed (Debian packages included), run the test suite
#   make lint   ruff + mypy (strict for src/)
#   make bench  benchmarks, printing ratios against baselines measured in the same run
#   make test-compiled  the runtime's and adapters' tests against the optional compiled build (part of make test)
#   make soak   long tests marked `slow`
#   make test-compose  the docker-compose example stack, up on a local Docker engine

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint bench soak fuzz system-deps venv clean test-matrix test-otel-range collector \
	compiled test-compiled \
	docker-engine compose-images test-compose

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 'setuptools>=77'
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Real components written by others: the Prometheus server, chrony (an NTP
# server the tests start on a loopback port, never touching the clock), CPython's
# own test_concurrent_futures (run against Runtime) from Debian's
# libpython3.11-testsuite, redis-server (a Celery broker and a reference clock)
# and libfaketime (a wall clock of its own per process, for the cross-host
# Celery tests).  Installed only when missing.
system-deps:
	@missing=""; \
	command -v prometheus >/dev/null 2>&1 || missing="$$missing prometheus"; \
	[ -x /usr/sbin/chronyd ] || missing="$$missing chrony"; \
	[ -f /usr/lib/python3.11/test/test_concurrent_futures.py ] || missing="$$missing libpython3.11-testsuite"; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	[ -f /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1 ] || missing="$$missing libfaketime"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@prometheus --version 2>&1 | head -n 1
	@/usr/sbin/chronyd --version
	@ls /usr/lib/python3.11/test/test_concurrent_futures.py
	@redis-server --version
	@ls /usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1
	@$(MAKE) --no-print-directory $(VM_BIN)

# VictoriaMetrics, a real OTLP metrics backend (docs/architecture.md): Debian trixie's package
# (1.112; bookworm's 1.79 predates OTLP ingestion), fetched with apt's own tools
# through a private source list and unpacked into .cache/, never installed and
# never touching the system's sources.  Its binary runs on bookworm.  The mirror is
# the one the system's apt sources name (tools/debian-mirror.sh) or $DEBIAN_MIRROR.
VM_CACHE = .cache/victoria-metrics
VM_BIN = $(VM_CACHE)/root/usr/bin/victoria-metrics
VM_APT = -o Dir::Etc::sourcelist=$(CURDIR)/$(VM_CACHE)/sources.list -o Dir::Etc::sourceparts=- \
	-o Dir::State::Lists=$(CURDIR)/$(VM_CACHE)/lists -o Dir::Cache=$(CURDIR)/$(VM_CACHE)/cache \
	-o Debug::NoLocking=1
$(VM_BIN):
	mkdir -p $(VM_CACHE)/lists/partial $(VM_CACHE)/cache/archives/partial
	echo "deb $${DEBIAN_MIRROR:-$$(tools/debian-mirror.sh)} trixie main" > $(VM_CACHE)/sources.list
	apt-get -qq $(VM_APT) update
	cd $(VM_CACHE) && apt-get -qq $(VM_APT) download victoria-metrics
	dpkg -x $(VM_CACHE)/victoria-metrics_*.deb $(VM_CACHE)/root
	rm -rf $(VM_CACHE)/lists $(VM_CACHE)/cache $(VM_CACHE)/victoria-metrics_*.deb
	@$(VM_BIN) -version

# The OpenTelemetry Collector, built from its own Go modules (collector/: our main
# and component list, versions pinned in go.mod/go.sum) with the machine's Go,
# into the ignored cache; Go's module and build caches make a rebuild quick.
OTELCOL := .cache/otelcol
$(OTELCOL): collector/go.mod collector/go.sum $(wildcard collector/*.go)
	@mkdir -p .cache
	cd collector && go build -trimpath -o ../$(OTELCOL) .
	@$(OTELCOL) --version
collector: $(OTELCOL)

demo: $(STAMP)
	$(BIN)/schedobs demo $(DEMO_ARGS)

test: $(STAMP) system-deps $(OTELCOL)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory test-compiled

# The optional compiled build (setup.py with SCHEDOBS_COMPILE=1: the modules
# schedobs/_compiled.py lists, compiled with mypyc), installed apart into
# .cache/compiled; put first on PYTHONPATH, it is what Python imports.
COMPILED := .cache/compiled
$(COMPILED)/.built: $(STAMP) setup.py $(shell find src/schedobs -name '*.py')
	rm -rf $(COMPILED)
	SCHEDOBS_COMPILE=1 $(BIN)/pip install --quiet --no-build-isolation --no-deps --target $(COMPILED) .
	touch $@
compiled: $(COMPILED)/.built

# The same tests against the compiled build: the runtime's and tenancy's (with
# CPython's test_concurrent_futures on the compiled runtime and thread pool), the
# adapters' own, and the exemplars that leave the runtime's latency rows.
COMPILED_TESTS := tests/test_compiled.py tests/runtime tests/tenancy tests/adapters/test_adapters.py \
	tests/adapters/test_drop_in.py tests/export/test_exemplars.py
test-compiled: $(COMPILED)/.built system-deps
	SCHEDOBS_EXPECT_COMPILED=1 PYTHONPATH=$(COMPILED) $(BIN)/python -m pytest -p no:cacheprovider \
	  $(COMPILED_TESTS) -k "not TestThreadPoolExecutor_" $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples fuzz
	$(BIN)/ruff format --check src tests benchmarks examples fuzz
	$(BIN)/mypy

bench: $(STAMP) system-deps
	$(BIN)/python benchmarks/bench_recording.py
	$(BIN)/python benchmarks/bench_runtime.py
	$(BIN)/python benchmarks/bench_clock.py
	$(BIN)/python benchmarks/bench_tenancy.py
	$(BIN)/python benchmarks/bench_adapters.py
	@$(MAKE) --no-print-directory compiled
	PYTHONPATH=$(COMPILED) $(BIN)/python benchmarks/bench_runtime.py
	PYTHONPATH=$(COMPILED) $(BIN)/python benchmarks/bench_adapters.py
	$(BIN)/python benchmarks/bench_celery.py

soak: $(STAMP) system-deps
	$(BIN)/python -m pytest -m slow --timeout=3600 -s $(PYTEST_ARGS)

# A Docker engine: Debian's docker.io (20.10), docker-compose 1.29 and debootstrap,
# installed when missing; dockerd started by hand when none answers (no systemd).
docker-engine:
	@missing=""; \
	command -v dockerd >/dev/null 2>&1 || missing="$$missing docker.io"; \
	command -v docker-compose >/dev/null 2>&1 || missing="$$missing docker-compose"; \
	command -v debootstrap >/dev/null 2>&1 || missing="$$missing debootstrap"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	@if ! docker info >/dev/null 2>&1; then \
	  echo "starting dockerd (log: .cache/dockerd.log)"; mkdir -p .cache; \
	  $(SUDO) setsid dockerd --host unix:///var/run/docker.sock >.cache/dockerd.log 2>&1 < /dev/null & \
	  for i in $$(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done; \
	  docker info >/dev/null 2>&1 || { tail -n 20 .cache/dockerd.log; exit 1; }; \
	fi
	@docker version --format 'docker engine {{.Server.Version}}'

# Every image of the compose stack, built locally (examples/docker-compose/build-images.sh).
compose-images: $(STAMP) system-deps $(OTELCOL) docker-engine
	examples/docker-compose/build-images.sh

# The compose stack comes up, is checked from the host, and is torn down.
test-compose: compose-images
	$(BIN)/python -m pytest -m compose tests/compose $(PYTEST_ARGS)

# Coverage-guided fuzzing of the clock-probe parser, where atheris installs (a wheel per CPython).
fuzz: $(STAMP)
	$(BIN)/pip install --quiet atheris || { echo "atheris does not install here: skipped (hypothesis covers the parser in make test)"; exit 0; }
	$(BIN)/python fuzz/fuzz_probe_protocol.py -runs=3000000

# Other supported Pythons, where pyenv has them (3.10, 3.12, 3.13).
test-matrix: system-deps
	@for v in 3.10 3.12 3.13; do \
	  py=$$(ls -d $$HOME/.pyenv/versions/$$v*/bin/python 2>/dev/null | head -n 1); \
	  [ -n "$$py" ] || { echo "python $$v: not installed, skipped"; continue; }; \
	  $(MAKE) --no-print-directory test PYTHON=$$py VENV=.venv-$$v || exit 1; \
	done

# The whole suite against both ends of the supported OpenTelemetry range, each in
# its own venv: the oldest release (1.30.0 and its Prometheus exporter 0.51b0)
# and the newest on PyPI.  `make test` stays on the newest.
OTEL_OLDEST = opentelemetry-api==1.30.0 opentelemetry-sdk==1.30.0 \
	opentelemetry-exporter-otlp==1.30.0 opentelemetry-exporter-prometheus==0.51b0
test-otel-range: system-deps
	$(PYTHON) -m venv .venv-otel-oldest
	.venv-otel-oldest/bin/pip install --quiet --upgrade pip
	.venv-otel-oldest/bin/pip install --quiet -e '.[dev]' $(OTEL_OLDEST)
	.venv-otel-oldest/bin/python -c "import importlib.metadata as m; print('oldest: opentelemetry-sdk', m.version('opentelemetry-sdk'))"
	.venv-otel-oldest/bin/python -m pytest $(PYTEST_ARGS)
	$(PYTHON) -m venv .venv-otel-newest
	.venv-otel-newest/bin/pip install --quiet --upgrade pip
	.venv-otel-newest/bin/pip install --quiet --upgrade --upgrade-strategy eager -e '.[dev]'
	.venv-otel-newest/bin/python -c "import importlib.metadata as m; print('newest: opentelemetry-sdk', m.version('opentelemetry-sdk'))"
	.venv-otel-newest/bin/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .venv-3.* .venv-otel-* .cache .pytest_cache .mypy_cache .ruff_cache build src/*.egg-info
