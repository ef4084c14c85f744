# make test  : create .venv from requirements-test.txt when missing or stale, run the whole test suite
#              in TEST_WORKERS processes (pytest-xdist; 2 fits the 2-core CI machine)
# make train : create .venv from requirements.txt, then a short real Entropy-SGD run on Fashion-MNIST
PYTHON ?= python3
VENV   ?= .venv
TEST_WORKERS ?= 2
PY     := $(VENV)/bin/python

.PHONY: test train clean-venv

$(VENV)/.installed: requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed requirements-test.txt
	$(PY) -m pip install -q -r requirements-test.txt
	touch $@

test: $(VENV)/.installed-test
	$(PY) -m pytest -n $(TEST_WORKERS)

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
