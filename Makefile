# make test  : create .venv from requirements-test.txt when missing or stale, lint (ruff), run the whole
#              test suite in TEST_WORKERS processes (pytest-xdist; 2 fits the 2-core CI machine)
# make test-fast : lint and the tests not marked slow (about 100 s on 2 cores), for the edit loop
# make train : create .venv from requirements.txt, then a short real Entropy-SGD run on Fashion-MNIST
PYTHON ?= python3
VENV   ?= .venv
TEST_WORKERS ?= 2
PY     := $(VENV)/bin/python

.PHONY: test test-fast train clean-venv

# The project installs in editable mode (pyproject.toml): its requirements, and its packages importable
# from bench/, tests/ and experiments/ without path edits (PYTHONWARNINGS: setuptools warns on every
# editable install that a folder named like a package shadows it, which here is the point). Said before
# the long silent part: pip -q prints nothing while it fetches TensorFlow's 570 MB wheel.
$(VENV)/.installed: requirements.txt pyproject.toml
	@echo "Installing TensorFlow and the other requirements into $(VENV):" \
	  "about 700 MB to download, 2.3 GB on disk; 1.5 min on a fast link, longer on a slow one"
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@PYTHONWARNINGS=ignore $(PY) -m pip install -q -e .
	@touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install -q -r requirements-test.txt
	touch $@

test: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m pytest -n $(TEST_WORKERS)

# The edit loop: lint, then every test but the slow ones (end-to-end training, clusters, benchmarks).
test-fast: $(VENV)/.installed-test
	$(PY) -m ruff check .
	$(PY) -m pytest -n $(TEST_WORKERS) -m "not slow"

# Fashion-MNIST comes from Debian's dataset-fashion-mnist when it is (or, as root, can be) installed;
# otherwise train.py downloads it. apt-get's output goes to APT_LOG, read only when it fails (noninteractive:
# no debconf questions or notices on the terminal). A timestamped run name lets `make train` run again.
FASHION_MNIST ?= /usr/share/datasets/fashion-mnist
APT_LOG ?= datasets/apt-get.log
train: $(VENV)/.installed
	@if [ ! -d $(FASHION_MNIST) ] && [ "$$(id -u)" = 0 ]; then \
	  echo "Installing Debian's dataset-fashion-mnist with apt-get (output in $(APT_LOG))"; \
	  mkdir -p $(dir $(APT_LOG)); \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist > $(APT_LOG) 2>&1 \
	    || echo "dataset-fashion-mnist not installed (see $(APT_LOG)): train.py will download Fashion-MNIST"; \
	fi
	$(PY) train.py -d fashion-mnist -m lenet -opt entropy-sgd -L 5 --epochs 3 --set augment=false \
	  -n quickstart-$$(date +%Y%m%d-%H%M%S)

clean-venv:
	rm -rf $(VENV)
