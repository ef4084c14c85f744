"""bench.models knows an input shape for every model it benchmarks by default."""
from bench.models import IMAGE_SHAPES
from models import MODEL_NAMES


def test_every_model_has_a_benchmark_image_shape():
    assert set(IMAGE_SHAPES) == set(MODEL_NAMES)
