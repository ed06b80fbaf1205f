# The two commands a newcomer needs: `make run` and `make test`.
SHELL := /bin/bash
CARGO ?= cargo

.PHONY: run test test-sqlite test-postgres test-deps demo bench bench-postgres build check fmt

## Build and serve on SQLite under ./data (nothing else to install).
run: data/encryption.key data/jwt_secret.dat
	$(CARGO) run --release --bin email-manager -- --config config/local.toml

data/encryption.key:
	@mkdir -p data && umask 077 && head -c 32 /dev/urandom | base64 > $@ && echo "created $@ (back it up)"

data/jwt_secret.dat:
	@mkdir -p data && umask 077 && head -c 32 /dev/urandom > $@ && \
	  echo "created placeholder $@: replace it with NocoBase's storage/apps/main/jwt_secret.dat"

## The whole suite: unit and integration tests on SQLite, then again on a throw-away PostgreSQL.
test: test-deps
	$(CARGO) build --all-targets --quiet
	$(MAKE) --no-print-directory test-sqlite
	$(MAKE) --no-print-directory test-postgres

test-deps:
	@scripts/ensure-chromium.sh

test-sqlite:
	$(CARGO) test --all-targets

test-postgres:
	scripts/with-postgres.sh $(CARGO) test --test api

## The sidecar beside the provider sandbox, with the development sign-in, for clicking through.
demo:
	scripts/demo.sh

## Benchmarks (release, minutes): every bench in benches/; figures in docs/benchmarks.md.
## Never part of `make test`. Sizes: BENCH_SYNC_MESSAGES, BENCH_LIST_MESSAGES (see the doc).
bench:
	$(CARGO) bench

## The same on a throw-away PostgreSQL.
bench-postgres:
	scripts/with-postgres.sh sh -c 'BENCH_DATABASE_URL="$$TEST_DATABASE_URL" $(CARGO) bench'

build:
	$(CARGO) build --release

check:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
