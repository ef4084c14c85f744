# make test  : create .venv from requirements-test.txt when missing or stale, lint (ruff), run the whole
#              test suite in TEST_WORKERS processes (pytest-xdist; 2 fits the 2-core CI machine)
# make test-fast : lint and the tests not marked slow (under 90 s on 2 cores), for the edit loop
# make train : create .venv from requirements.txt, then a short real Entropy-SGD run on Fashion-MNIST
PYTHON ?= python3
VENV   ?= .venv
TEST_WORKERS ?= 2
PY     := $(VENV)/bin/python

.PHONY: test test-fast train clean-venv

# The project installs in editable mode (pyproject.toml): its requirements, and its packages importable
# from bench/, tests/ and experiments/ without path edits.
$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e .
	touch $@

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
# otherwise train.py downloads it. A timestamped run name lets `make train` run again.
FASHION_MNIST := /usr/share/datasets/fashion-mnist
train: $(VENV)/.installed
	@test -d $(FASHION_MNIST) || [ "$$(id -u)" != 0 ] || apt-get install -y -q dataset-fashion-mnist \
	  || echo "dataset-fashion-mnist not installed: train.py will download Fashion-MNIST"
	$(PY) train.py -d fashion-mnist -m lenet -opt entropy-sgd -L 5 --epochs 3 --set augment=false \
	  -n quickstart-$$(date +%Y%m%d-%H%M%S)

clean-venv:
	rm -rf $(VENV)
