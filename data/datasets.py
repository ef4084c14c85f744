"""What each supported dataset is and where it comes from.

Sources: CIFAR-10/100 (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html, archive MD5s as
published there); Fashion-MNIST (Xiao, Rasul & Vollgraf 2017, https://github.com/zalandoresearch/fashion-mnist,
file MD5s as published in its README).
"""
import dataclasses

CIFAR_HOST = "https://www.cs.toronto.edu/~kriz/"
FASHION_MNIST_HOST = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# Where Debian's dataset-fashion-mnist package installs the four IDX files.
FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"

FASHION_MNIST_FILES = {
    # split: (images file, labels file)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Static facts about one dataset: the official sizes, and for CIFAR the archive to fetch."""
    name: str
    num_classes: int
    image_shape: tuple      # (H, W, C)
    train_size: int
    test_size: int
    archive: str = ""       # CIFAR: archive file name on the official host
    md5: str = ""           # CIFAR: the archive's published MD5
    top_dir: str = ""       # CIFAR: the folder inside the archive

    @property
    def url(self):
        """The official download address of the CIFAR archive (empty for Fashion-MNIST)."""
        return CIFAR_HOST + self.archive if self.archive else ""


DATASETS = {
    "cifar10": DatasetInfo("cifar10", 10, (32, 32, 3), 50000, 10000,
                           "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                           "cifar-10-batches-py"),
    "cifar100": DatasetInfo("cifar100", 100, (32, 32, 3), 50000, 10000,
                            "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                            "cifar-100-python"),
    "fashion-mnist": DatasetInfo("fashion-mnist", 10, (28, 28, 1), 60000, 10000),
}
