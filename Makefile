# Meridian's front door. `make test` is what CI runs; `make run` starts the local demo.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# Every recipe that needs the toolchain sources what scripts/bootstrap found or installed.
ENV := . ./.tools/env &&
# The dashboard's page, script and styles are compiled into the worker (include_str!), and so is uPlot.
WORKER_SOURCES := $(shell find src -name '*.rs') $(wildcard src/dashboard/*) src/edge/panic.js Cargo.toml Cargo.lock \
	package.json scripts/build-worker
BUNDLE := build/index.js

.PHONY: help bootstrap build mock-bin size run test test-host test-e2e lint fmt clean bench bench-memory sim profile

help:
	@echo "make run    build the worker and start it at http://127.0.0.1:8787 with the mock provider (demo key: demo)"
	@echo "make test   host unit tests, lint, the wasm build, then the end-to-end suite in workerd"
	@echo "make size   bundle size (raw and gzip) of what 'wrangler deploy' uploads"
	@echo "make build  the worker bundle only"
	@echo "make bench  latency, throughput, streaming, cold start and size vs a JS floor, Portkey and LiteLLM (bench/README.md)"
	@echo "make sim    the routing simulation (policy vs oracle, round-robin, LiteLLM-style)"
	@echo "make bench-memory  what a stalled stream costs the isolate (floor, JavaScript relay, Meridian)"
	@echo "make profile  a V8 CPU profile of Meridian under load: self time per function and per layer (bench/profile.mjs)"

bootstrap:
	@scripts/bootstrap

# The wasm build is slow even when nothing changed (wasm-bindgen + wasm-opt), so it only runs for new sources.
build: bootstrap $(BUNDLE)
$(BUNDLE): $(WORKER_SOURCES)
	@$(ENV) RUSTUP_TOOLCHAIN=$${MERIDIAN_WASM_TOOLCHAIN:-$${RUSTUP_TOOLCHAIN:-}} scripts/build-worker
	@touch $@

mock-bin: bootstrap
	@cargo build -q --release -p meridian-mock

size: build
	@$(ENV) scripts/size

lint: bootstrap
	cargo fmt --all --check
	cargo clippy -q --workspace --all-targets -- -D warnings
	@# src/edge/ compiles only for wasm32, which the host clippy never sees: its warnings are errors there too.
	@$(ENV) env $${MERIDIAN_WASM_TOOLCHAIN:+RUSTUP_TOOLCHAIN=$$MERIDIAN_WASM_TOOLCHAIN} RUSTFLAGS="-D warnings" \
	  CARGO_TARGET_DIR=target/wasm-lint cargo check -q -p meridian --lib --target wasm32-unknown-unknown

test-host: bootstrap
	cargo test -q --workspace

test-e2e: build mock-bin
	@$(ENV) node --test --test-concurrency=1 --test-reporter=spec "tests/e2e/*.test.mjs"

test: test-host lint test-e2e

run: build mock-bin
	@$(ENV) scripts/run-demo

# Installs its own peers on first use (bench/setup: wrk check, Portkey from npm, LiteLLM from PyPI), then runs.
bench: build mock-bin
	@$(ENV) bench/setup
	@$(ENV) node bench/run.mjs

# What a stalled stream costs the isolate: the floor, a JavaScript relay and Meridian (bench/stalled.mjs).
bench-memory: build mock-bin
	@$(ENV) node bench/stalled.mjs

# A build that keeps wasm function names (then removed again by the next plain build), Meridian under wrk with
# workerd's inspector on, and the profile summarised. Options: bench/profile.mjs.
profile: bootstrap mock-bin
	@$(ENV) MERIDIAN_KEEP_NAMES=1 RUSTUP_TOOLCHAIN=$${MERIDIAN_WASM_TOOLCHAIN:-$${RUSTUP_TOOLCHAIN:-}} scripts/build-worker
	@touch $(BUNDLE)
	@$(ENV) node bench/profile.mjs
	@rm -f $(BUNDLE)

# Routing policy against an oracle, round-robin and LiteLLM-style routing, in simulated time (deterministic).
sim: bootstrap
	cargo run -q --release --example routing_sim

fmt:
	cargo fmt --all

clean:
	rm -rf build target .wrangler dist
