# Kaon: `make demo` runs the flagship pipeline, `make test` runs every test. Both start from
# nothing: they create the virtualenv, install Kaon and its test dependencies, and install the
# Debian packages the tests need when they are missing.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kaon-installed
SYSTEM_STAMP := $(VENV)/.kaon-system
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test lint typecheck docs unit bench system-deps clean

$(STAMP): pyproject.toml examples/kaon-plugin-example/pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	# Every extra, the flagship example's data and libraries, and the `dev` dependency group
	# (test, type-checking, packaging and docs tools; pip >= 25.1 reads dependency groups).
	$(BIN)/python -m pip install -q -e '.[all,examples]' --group dev -e examples/kaon-plugin-example
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	# The OpenAPI client generator the API's test uses: pinned, without its dependencies
	# (it caps typer below Kaon's; the test runs it from its own folder over this venv).
	$(BIN)/python -m pip download -q --no-deps -d $(VENV)/tools 'openapi-python-client==0.29.1'
	touch $(STAMP)

# Debian packages the tests use: PostgreSQL (store contract), R (r steps), Java (Spark),
# Podman with runc and busybox (container steps on a locally built image; the server's image
# on a base made from the host's Python, deploy/python_base.py), unshare and ip
# (the Ray tests run their cluster in a loopback-only network namespace), and systemd's
# systemd-analyze (it verifies the production guide's unit). Each is installed only when
# missing; `apt-get update` runs only if something is.
SYSTEM_PACKAGES := \
  /usr/bin/chromium:chromium \
  /usr/lib/postgresql/15/bin/initdb:postgresql \
  /usr/bin/Rscript:r-base-core \
  /usr/lib/R/site-library/jsonlite:r-cran-jsonlite \
  /usr/bin/java:default-jre-headless \
  /usr/bin/podman:podman \
  /usr/sbin/runc:runc \
  /bin/busybox:busybox-static \
  /usr/bin/bwrap:bubblewrap \
  /usr/bin/unshare:util-linux \
  /sbin/ip:iproute2 \
  /usr/bin/systemd-analyze:systemd

$(SYSTEM_STAMP): $(STAMP)
	@missing=""; for pair in $(SYSTEM_PACKAGES); do \
	  path=$${pair%%:*}; pkg=$${pair##*:}; \
	  ls $$path >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi
	touch $(SYSTEM_STAMP)

system-deps: $(SYSTEM_STAMP)

demo: $(STAMP)
	$(BIN)/kaon run examples/recsys/flow.py $(DEMO_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples deploy
	$(BIN)/ruff format --check src tests bench examples deploy

typecheck: $(STAMP)
	$(BIN)/mypy

# The documentation site (mkdocs.yml, docs/): warnings (broken links and anchors, bad
# references) are errors. The CLI and API references are generated from the code.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir build/site

unit: $(STAMP)
	$(BIN)/pytest -q -m "not integration"

# Two workers (one per core), a test file per worker at a time: most of the suite's wall time
# is spent waiting on real servers, clusters and browsers, which then overlap.
test: $(STAMP) $(SYSTEM_STAMP) lint typecheck docs
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=25

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) .kaon .mypy_cache .ruff_cache .pytest_cache build/site
