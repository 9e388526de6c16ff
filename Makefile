# Set-up and entry points. Every target installs what it needs first, so each
# works on a fresh clone: a virtual environment in .venv (git-ignored), the package
# with its extras, and any missing Debian packages (apt-get; root or sudo).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Debian packages the embedded data sources need (fonts, Unicode tables, emoji, ...).
APT_PACKAGES := unicode-data fonts-noto-core fonts-noto-cjk fonts-noto-color-emoji \
	ruby-gemojione fonts-dejavu-core fonts-dejavu-extra fonts-freefont-ttf \
	dataset-fashion-mnist openclipart-png
# Bazel, offline: Debian's bazel-bootstrap with its rules_java (see WORKSPACE).
APT_PACKAGES += bazel-bootstrap bazel-rules-java
BAZEL ?= bazel
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# TensorFlow's INFO/WARNING lines (CUDA probing on a GPU-less machine) are noise here.
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup apt demo bench bench-accelerator test lint format clean

setup: $(STAMP) apt

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[data,dev,bench,ray]"
	touch $@

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

DATA_DIR := runs/tfds
# The specialisation probes: held-out classes of every expert node (build_upstream).
PROBES := $(DATA_DIR)/embedded_probes/32px
DEMO := runs/demo
# The demo's selection needs the experts only; the expert prediction network (domain
# prediction) and the upstream classifier (label matching) serve the bench's selectors.
UPSTREAM_JOBS := baseline full adapter
DEMO_KINDS := baseline,full,adapter
EXPORT = $(BIN)/python -m hub_export.export --workdir=$(DEMO)/upstream \
	  --config.hub_root=$(DEMO)/hub

# The whole pipeline on the embedded default with the cpu preset (RESULTS.md: about 30
# min on 2 cores). Every step is cached or resumable, so a rerun only does what is missing.
demo: setup
	@mkdir -p $(DEMO) && date +%s > $(DEMO)/.started
	$(BIN)/python -m experts.models.summary --config=experts/configs/baseline.py:cpu --steps=2
	# The two data builds are mostly single-threaded rendering: run them side by side.
	$(BIN)/python -m experts.data.build_upstream --config.data_dir=$(DATA_DIR) \
	  --config.image_size=32 & \
	upstream=$$!; \
	$(BIN)/python -m vtab_eval.tasks.build --config=vtab_eval/configs/tasks.py:cpu \
	  --config.data_dir=$(DATA_DIR) --config.suite=embedded; \
	downstream=$$?; wait $$upstream && [ $$downstream = 0 ]
	for job in $(UPSTREAM_JOBS); do \
	  $(BIN)/python -m experts.train --config=experts/configs/$$job.py:cpu \
	    --workdir=$(DEMO)/upstream --config.data_dir=$(DATA_DIR) || exit 1; \
	done
	$(EXPORT) --config.kinds=$(DEMO_KINDS)
	$(BIN)/python -m hub_export.catalog --config.hub_root=$(DEMO)/hub
	$(BIN)/python -m vtab_eval.main --config=vtab_eval/configs/transfer.py:cpu \
	  --workdir=$(DEMO)/transfer --config.pool=$(DEMO)/hub --config.suite=embedded \
	  --config.data_dir=$(DATA_DIR) --config.report.dir=$(DEMO)/report --config.probes=$(PROBES)
	@echo; cat $(DEMO)/report/table.md; echo
	@echo "report: $(DEMO)/report/summary.md, numbers: $(DEMO)/report/results.json"
	@echo "demo took $$(( $$(date +%s) - $$(cat $(DEMO)/.started) ))s"

BENCH := runs/bench
BENCH_SELECTORS := baseline,random,domain,label,knn_full,knn_adapter,knn_experts,knn_nofallback,knn
# The transferability proxies that score from the cached features (vtab_eval/selection/),
# judged in the README against the oracle's screening of every module.
BENCH_PROXIES := knn_k5,knn_cosine,knn_cosine_k5,logme,hscore,hscore_shrunk,gbc,transrate,sfda,ncti,linear_probe,nleep
# Ensembles of the top experts (vtab_eval/selection/ensemble.py): ENSEMBLE=k (>= 2)
# adds the methods ensemble and ensemble_heads, combining the top k of kNN's ranking,
# to the bench's transfer runs (BENCH_SELECTORS may then name them too); 0: none.
ENSEMBLE ?= 0
BENCH_TRANSFER = $(BIN)/python -m vtab_eval.main --config=vtab_eval/configs/transfer.py:cpu \
	  --workdir=$(DEMO)/transfer --config.pool=$(DEMO)/hub --config.suite=embedded \
	  --config.data_dir=$(DATA_DIR) --config.report.dir=$(BENCH)/transfer/report \
	  --config.probes=$(PROBES) --config.ensemble=$(ENSEMBLE)
BENCH_README = $(BIN)/python -m vtab_eval.bench.readme --bench_dir=$(BENCH) \
	  --workdir=$(DEMO)/transfer

# Benchmarks on the demo's hub tree (RESULTS.md: about 2 h on 2 cores, most of it the
# oracle; resumable): the EPN and the rest of the hub tree, the specialisation probes,
# transfer quality with every selector and the oracle, the kNN kernel against
# scikit-learn and faiss, feature extraction through hub modules; runs/bench/README.md.
# The transfer runs add selectors to the demo's work directory, so the demo's features
# and fine-tuning runs are reused (same config, same seeds); their report goes to bench.
# The oracle, which fine-tunes every expert on every task (most of the time), comes
# last; the README is rewritten after each part, saying which parts are still missing.
bench: demo
	$(BIN)/python -m experts.train --config=experts/configs/epn.py:cpu \
	  --workdir=$(DEMO)/upstream --config.data_dir=$(DATA_DIR)
	$(EXPORT)
	$(BIN)/python -m vtab_eval.bench.probes --pool=$(DEMO)/hub --probes=$(PROBES) \
	  --output_dir=$(BENCH)/probes --cache_dir=$(DEMO)/transfer/features
	$(BENCH_TRANSFER) --config.selectors=$(BENCH_SELECTORS)
	$(BENCH_README)
	$(BIN)/python -m vtab_eval.bench.knn_kernel --output=$(BENCH)/knn_kernel.json
	$(BIN)/python -m hub_export.bench.feature_extraction --hub_root=$(DEMO)/hub \
	  --output=$(BENCH)/feature_extraction.json
	$(BENCH_README)
	$(BENCH_TRANSFER) --config.selectors=$(BENCH_SELECTORS),$(BENCH_PROXIES),oracle
	$(BENCH_README)
	@echo "benchmarks: $(BENCH)/README.md"

# The headline over several upstream seeds (vtab_eval/report/seed_headline.py): per
# seed s, B and every expert trained again on the same data with train.seed=s (other
# initial weights and input order), exported, and the transfer run with seed s
# (SEED_RUNS fine-tuning runs per (task, module), the same run seeds for every module)
# and the bench's selectors, the random-expert control among them, each seed in
# $(SEEDS_DIR)/seed-<s>/{upstream,hub,transfer}. A seed is one resumable step (`make
# bench-seed SEED=<s>`: a rerun does only what is missing; seed.json, written last,
# records the wall time of the pass that finished it); `make bench-seeds SEEDS="0 1"` runs the given seeds one after
# the other, the oracle on ORACLE_SEEDS of them, then merges every finished seed into
# $(SEEDS_DIR)/headline.md.
SEEDS ?= 0 1 2 3 4
SEED ?= 0
SEEDS_DIR ?= $(BENCH)/seeds
SEED_PRESET ?= cpu
SEED_RUNS ?= 3
# The tasks of every seed (a suite name, or ';'-separated specs).
SEED_SUITE ?= embedded
SEED_SELECTORS ?= $(BENCH_SELECTORS)
# The ensembles' size in every seed's transfer run (ENSEMBLE above; 0: none).
SEED_ENSEMBLE ?= $(ENSEMBLE)
SEED_JOBS := baseline full adapter epn
# The seeds the oracle and the proxies run on too (bench-seed-oracle below): two, as
# screening every module on every task costs about as much as the rest of a seed.
ORACLE_SEEDS ?= $(wordlist 1,2,$(SEEDS))
SEED_DIR = $(SEEDS_DIR)/seed-$(SEED)
SEED_TRANSFER = $(BIN)/python -m vtab_eval.main --config=vtab_eval/configs/transfer.py:$(SEED_PRESET) \
	  --config.pool=$(SEED_DIR)/hub --config.suite='$(SEED_SUITE)' --config.data_dir=$(DATA_DIR) \
	  --config.seed=$(SEED) --config.ensemble=$(SEED_ENSEMBLE) \
	  --config.finetune.final_repeats=$(SEED_RUNS) --config.report.bench_headline= \
	  --workdir=$(SEED_DIR)/transfer

.PHONY: bench-seeds bench-seed bench-seed-oracle bench-seeds-merge bench-seeds-data
bench-seeds: setup bench-seeds-data
	for seed in $(SEEDS); do $(MAKE) --no-print-directory bench-seed SEED=$$seed || exit 1; done
	for seed in $(ORACLE_SEEDS); do \
	  $(MAKE) --no-print-directory bench-seed-oracle SEED=$$seed || exit 1; done
	$(MAKE) --no-print-directory bench-seeds-merge

# The upstream data and the tasks every seed shares (built once; cached).
bench-seeds-data: setup
	$(BIN)/python -m experts.data.build_upstream --config.data_dir=$(DATA_DIR) \
	  --config.image_size=32
	$(BIN)/python -m vtab_eval.tasks.build --config=vtab_eval/configs/tasks.py:cpu \
	  --config.data_dir=$(DATA_DIR) --config.suite=embedded

bench-seed:
	@if [ -f $(SEED_DIR)/seed.json ]; then \
	  echo "seed $(SEED): finished earlier ($(SEED_DIR)/seed.json)"; exit 0; fi; \
	mkdir -p $(SEED_DIR) && start=$$(date +%s) && \
	for job in $(SEED_JOBS); do \
	  $(BIN)/python -m experts.train --config=experts/configs/$$job.py:$(SEED_PRESET) \
	    --workdir=$(SEED_DIR)/upstream --config.train.seed=$(SEED) \
	    --config.data_dir=$(DATA_DIR) || exit 1; \
	done && \
	$(BIN)/python -m hub_export.export --workdir=$(SEED_DIR)/upstream \
	  --config.hub_root=$(SEED_DIR)/hub --config.skip_existing=true && \
	$(SEED_TRANSFER) --config.selectors=$(SEED_SELECTORS) && \
	seconds=$$(( $$(date +%s) - start )) && \
	echo "{\"seed\": $(SEED), \"seconds\": $$seconds}" > $(SEED_DIR)/seed.json.tmp && \
	mv $(SEED_DIR)/seed.json.tmp $(SEED_DIR)/seed.json && \
	echo "seed $(SEED) took $${seconds}s"

# The oracle and every proxy on one seed (`make bench-seed-oracle SEED=<s>`, after or
# instead of bench-seed, which it runs first): the seed's transfer run again with the
# proxies and the oracle added. It screens every module on every task (one run each, on
# seeds of their own) and fine-tunes the oracle's and the proxies' picks; everything
# else is reused, and a rerun resumes. About 2.5 h per seed on 2 cores at the cpu
# preset's 20 epochs (429 screening runs of about 16 s); the bench may run it on some
# seeds only, and the headline reports the oracle and the proxies over the seeds that
# have them. oracle.json, written last, records its wall time.
bench-seed-oracle: bench-seed
	@if [ -f $(SEED_DIR)/oracle.json ]; then \
	  echo "seed $(SEED): oracle finished earlier ($(SEED_DIR)/oracle.json)"; exit 0; fi; \
	start=$$(date +%s) && \
	$(SEED_TRANSFER) --config.selectors=$(SEED_SELECTORS),$(BENCH_PROXIES),oracle && \
	seconds=$$(( $$(date +%s) - start )) && \
	echo "{\"seed\": $(SEED), \"seconds\": $$seconds}" > $(SEED_DIR)/oracle.json.tmp && \
	mv $(SEED_DIR)/oracle.json.tmp $(SEED_DIR)/oracle.json && \
	echo "seed $(SEED): the oracle and the proxies took $${seconds}s"

bench-seeds-merge:
	$(BIN)/python -m vtab_eval.bench.seeds --config=vtab_eval/configs/bench_seeds.py:$(SEED_PRESET) \
	  --workdir=$(SEEDS_DIR)

# Train steps, the fine-tuning step and feature extraction on the devices at hand,
# images/s per device, in two tables (upstream, downstream): r50x1 at 224 px with the
# paper preset (meant for a GPU or TPU machine, as is); ACCEL_PRESET=smoke runs it
# anywhere in a few minutes. The downstream table times a fresh module of the preset's
# size, exported to $(ACCEL_MODULE) in between. ACCEL_FLAGS go to both tables' binaries
# (e.g. --strategy=mirrored).
ACCEL_PRESET ?= paper
ACCEL_FLAGS ?=
ACCEL_MODULE := $(BENCH)/accelerator_module/$(ACCEL_PRESET)
bench-accelerator: setup
	$(BIN)/python -m experts.bench.accelerator --preset=$(ACCEL_PRESET) $(ACCEL_FLAGS)
	$(BIN)/python -m hub_export.bench.accelerator_module --preset=$(ACCEL_PRESET) \
	  --out=$(ACCEL_MODULE)
	$(BIN)/python -m vtab_eval.bench.accelerator --preset=$(ACCEL_PRESET) \
	  --module=$(ACCEL_MODULE) $(ACCEL_FLAGS)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# The numerically sensitive tests (tests/conftest.py: NUMERICS) run a second time with
# one thread per pool and oneDNN off: other kernels and other summation orders than the
# first pass's, as a user's CPU may have, so a tolerance tuned to one machine fails here.
NUMERICS_ENV := TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 OMP_NUM_THREADS=1 \
	TF_ENABLE_ONEDNN_OPTS=0
NUMERICS_LOG := $(VENV)/numerics-tests.log
BAZEL_LOG := $(VENV)/bazel.log
BAZEL_SMOKE_TESTS := //experts/... //fanout/... //hub_export/... //vtab_eval/...

# Three jobs side by side, as most of the suite is single-threaded Python and two cores
# are busier with more to do: pytest runs the numerics tests (twice: as they are, then
# under NUMERICS_ENV; the first pass also runs the files tests/conftest.py sets beside
# them) in one process and the rest of the suite in another, while Bazel
# builds every target (each test file is a py_test target, so a broken BUILD fails CI)
# and runs the binaries' smoke tests. `bazel test --config=fast //...` runs the fast
# test files through Bazel.
test: lint
	@echo "numerics tests and Bazel in the background (their logs: $(NUMERICS_LOG), $(BAZEL_LOG))"
	@( $(BIN)/python -m pytest -p no:cacheprovider -m "numerics or beside_numerics" && \
	  $(NUMERICS_ENV) $(BIN)/python -m pytest -p no:cacheprovider -m numerics ) \
	  > $(NUMERICS_LOG) 2>&1 & numerics=$$!; \
	( $(BAZEL) build //... && $(BAZEL) test $(BAZEL_SMOKE_TESTS) ) > $(BAZEL_LOG) 2>&1 & \
	bazel=$$!; \
	$(BIN)/python -m pytest -m "not numerics and not beside_numerics"; rest=$$?; \
	wait $$numerics; twice=$$?; wait $$bazel; built=$$?; \
	if [ $$twice = 0 ]; then grep -E "passed|failed" $(NUMERICS_LOG); else cat $(NUMERICS_LOG); fi; \
	if [ $$built = 0 ]; then grep -E "^Executed" $(BAZEL_LOG); else cat $(BAZEL_LOG); fi; \
	[ $$rest = 0 ] && [ $$twice = 0 ] && [ $$built = 0 ]

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	[ ! -L bazel-out ] || $(BAZEL) clean --expunge
	rm -rf $(VENV) runs .pytest_cache .ruff_cache
