# The project's single entry point. `make test` is what CI runs.
SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: test deps check-fmt clippy unit doc demo ha-lab bench bench-ir fuzz clean

## test: install what is missing, then format check, clippy, every test, docs
test: deps
	@mode=$$(scripts/hugepages.sh 512); echo "hugepages: $$mode"; \
	if [ "$$mode" = hugepages ]; then export NAT64_TEST_HUGEPAGES=1; fi; \
	$(MAKE) --no-print-directory check-fmt clippy unit doc

deps:
	@scripts/deps.sh

check-fmt:
	$(CARGO) fmt --all -- --check

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace

doc:
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

## demo: the appliance's main job in a namespace lab (see README.md)
demo: deps
	$(CARGO) build --release -p control
	deploy/lab/demo.sh

## ha-lab: failover of an active/standby pair with session sync (root; docs/ha.md)
ha-lab: deps
	$(CARGO) test -p control --test ha_e2e -- --nocapture

## bench: nat64d vs dpdk-testpmd, fast path on mbufs, setup rate, memory -> perf/results/latest.json, perf/README.md
bench: deps
	scripts/bench.sh

## bench-ir: only the instructions per packet (callgrind; load-independent) -> the same files
bench-ir: deps
	scripts/bench.sh --ir

## fuzz: run every fuzz target for FUZZ_SECONDS (default 30) each
fuzz:
	scripts/fuzz.sh $${FUZZ_SECONDS:-30}

clean:
	$(CARGO) clean
