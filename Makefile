# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv when missing.
# `make check` is the fast tier for working: lint and every test not marked slow or science.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DATA := data/demo-opencell
DEMO_RUN := models/cytoself/demo
DEMO_PROTEIN := ER_1
export TF_CPP_MIN_LOG_LEVEL := 3
export MPLBACKEND := Agg

.PHONY: demo demo-statcell test check lint science bench bench-gpu install clean-demo

# gallery "['FOLDER', ...]" OUT.html TITLE: one HTML page of every figure under the folders, captioned.
GALLERY = PYTHONPATH=$(CURDIR) $(PY) -c 'import ast, sys; from statcell_tf.gallery import gallery; gallery(ast.literal_eval(sys.argv[1]), sys.argv[2], sys.argv[3])'

install: $(STAMP)

$(STAMP): requirements.txt setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	test -d $(DEMO_DATA) || bin/make-synthetic-data --out $(DEMO_DATA) --format opencell --seed 0
	bin/inspect-data $(DEMO_DATA)
	bin/train-cytoself --data $(DEMO_DATA) --preset demo --out $(DEMO_RUN) --resume
	bin/feature-spectrum $(DEMO_PROTEIN) --run $(DEMO_RUN) --data $(DEMO_DATA) --heatmap
	bin/umap-cytoself $(DEMO_RUN) --data $(DEMO_DATA) --level global --color-by family --score
	$(GALLERY) "['$(DEMO_RUN)']" $(DEMO_RUN)/gallery.html "cytoself demo"
	@echo "Demo outputs: $(DEMO_RUN)/figures (reconstructions), $(DEMO_RUN)/feature_spectrum, $(DEMO_RUN)/umap; all figures: $(DEMO_RUN)/gallery.html"

# Statistical Cell on synthetic Allen-style cells: every command once, demo preset, 32×32 px.
SC_DATA := data/demo-allencell
SC_RUNS := models/statcell/demo
SC_TRAIN := --dims 2 --preset demo --epochs 40 --batch-size 16 --eval-samples 2 --resume
IC_RUNS := models/integrated_cell/demo
IC_TRAIN := --size 32 --filters 4 --batch-size 8 --quiet
VP_RUN := models/vaeplus/demo
demo-statcell: $(STAMP)
	test -d $(SC_DATA) || bin/make-synthetic-data --out $(SC_DATA) --format allencell --families 6 --cells 40 --size 32 --seed 0
	test -d $(SC_DATA)-controls || bin/add-control-structures $(SC_DATA)/manifest.csv --out $(SC_DATA)-controls
	bin/train-statcell --data $(SC_DATA)-controls/manifest.csv --model reference --beta 0.1 $(SC_TRAIN) --out $(SC_RUNS)/reference
	bin/train-statcell --data $(SC_DATA)-controls/manifest.csv --model target --beta 0.1 $(SC_TRAIN) --reference-run $(SC_RUNS)/reference --out $(SC_RUNS)/target
	bin/generate-cells $(SC_RUNS)/reference -n 8
	bin/impute-structures $(SC_RUNS)/reference $(SC_RUNS)/target --cell $$(sed -n 2p $(SC_DATA)-controls/manifest.csv | cut -d, -f1) -n 3
	bin/latent-walk $(SC_RUNS)/reference --dims top:4
	bin/latent-stats $(SC_RUNS)/reference
	bin/coupling $(SC_RUNS)/reference $(SC_RUNS)/target --data $(SC_DATA)-controls/manifest.csv
	test -d $(SC_DATA)-treated || bin/make-synthetic-data --out $(SC_DATA)-treated --format allencell --families 6 --cells 40 --size 32 --seed 1 --treatment rounding
	test -d $(SC_DATA)-vehicle || bin/make-synthetic-data --out $(SC_DATA)-vehicle --format allencell --families 6 --cells 40 --size 32 --seed 2 --treatment vehicle
	bin/perturbation-embed $(SC_RUNS)/reference $(SC_RUNS)/target --treated $(SC_DATA)-treated/manifest.csv --untreated $(SC_DATA)-vehicle/manifest.csv --permutations 200
	bin/beta-sweep --data $(SC_DATA)/manifest.csv --betas 0.1:0.9:3 --dims 2 --preset demo --epochs 20 --batch-size 16 --eval-samples 2 --out $(SC_RUNS)/beta_sweep
	# The Integrated Cell and VAE+ on the same kind of synthetic cells (a few epochs: their figures, not their science).
	bin/train-integrated-cell --data $(SC_DATA)/manifest.csv --stage reference --epochs 3 $(IC_TRAIN) --latent-dim 8 --out $(IC_RUNS)/reference --resume
	bin/train-integrated-cell --data $(SC_DATA)/manifest.csv --stage conditional --reference-run $(IC_RUNS)/reference --epochs 3 $(IC_TRAIN) --out $(IC_RUNS)/conditional --resume
	bin/classify-structures $(IC_RUNS)/conditional --data $(SC_DATA)/manifest.csv
	bin/integrate-structures $(IC_RUNS)/conditional --cell $$(sed -n 2p $(SC_DATA)/manifest.csv | cut -d, -f1)
	test -d $(SC_DATA)-68 || bin/make-synthetic-data --out $(SC_DATA)-68 --format allencell --families 3 --cells 8 --size 68 --seed 3
	bin/train-vaeplus --data $(SC_DATA)-68 --variant vaeplus --iterations 40 --steps-per-epoch 20 --sampling uniform --batch-size 8 --latent-dim 8 --validation-fraction 0.25 --out $(VP_RUN) --resume --quiet
	$(GALLERY) "['$(SC_RUNS)', '$(IC_RUNS)', '$(VP_RUN)']" $(SC_RUNS)/gallery.html "Statistical Cell, Integrated Cell and VAE+ demo"
	@echo "Statistical Cell demo outputs under $(SC_RUNS): generated/, latent_walk/, latent_stats/, target/imputed/, target/coupling/, reference/perturbation/, beta_sweep/; Integrated Cell: $(IC_RUNS); VAE+: $(VP_RUN); all figures: $(SC_RUNS)/gallery.html"

lint: $(STAMP)
	$(PY) -m ruff check statcell_tf tests bench

# pytest-xdist: one worker per core (TEST_WORKERS=1 for one process), whole files per worker so a
# file's session fixtures are built once.
TEST_WORKERS ?= 2
PYTEST := $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: lint
	$(PYTEST) --durations=15

check: lint
	$(PYTEST) -m "not slow and not science" --durations=10

science: $(STAMP)
	$(PY) -m pytest -q -m science --durations=0 -s

bench: $(STAMP)
	$(PY) bench/pipeline.py --normalize max
	@for b in bench/train_*.py; do [ -f $$b ] && $(PY) $$b || true; done

# Every model × float32/mixed_float16/mixed_bfloat16 × XLA off/on on the visible GPUs, plus
# MirroredStrategy over all of them: one table, bench-gpu.json (under 8 minutes; one line without a GPU).
bench-gpu: $(STAMP)
	$(PY) bench/gpu.py --json bench-gpu.json

clean-demo:
	rm -rf $(DEMO_DATA) $(DEMO_RUN)
