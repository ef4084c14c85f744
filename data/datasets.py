"""What each supported dataset is and where it comes from.

Sources: CIFAR-10/100 (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html, archive MD5s as
published there); MNIST (LeCun et al. 1998, http://yann.lecun.com/exdb/mnist/, the files' MD5s as
torchvision checks them); Fashion-MNIST (Xiao, Rasul & Vollgraf 2017,
https://github.com/zalandoresearch/fashion-mnist, file MD5s as published in its README).
"""
import dataclasses

CIFAR_HOST = "https://www.cs.toronto.edu/~kriz/"

# MNIST and Fashion-MNIST: four gzipped IDX files each, with the same names.
IDX_FILES = {
    # split: (images file, labels file)
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


@dataclasses.dataclass(frozen=True)
class IdxSource:
    """Where the four IDX files of an MNIST-format dataset come from, and its class names."""
    host: str               # base address of the four files
    md5: dict               # file name -> its published MD5, checked on every download
    classes: tuple
    mirror: str = ""        # another address of the four files, for the advice when the host fails
    system_dir: str = ""    # a Debian package's folder that may hold them


FASHION_MNIST = IdxSource(
    host="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    md5={"train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
         "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
         "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
         "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310"},
    classes=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
             "Ankle boot"),
    mirror="https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
    system_dir="/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist package

MNIST = IdxSource(
    # PyTorch's copy: yann.lecun.com, the original host, refuses most downloads now. Every file is
    # checked against its MD5 whatever the host.
    host="https://ossci-datasets.s3.amazonaws.com/mnist/",
    md5={"train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
         "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
         "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
         "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c"},
    classes=tuple(str(digit) for digit in range(10)),
    mirror="https://storage.googleapis.com/cvdf-datasets/mnist/")  # the copy TensorFlow's tutorials used


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
    idx: IdxSource = None   # MNIST and Fashion-MNIST: their four IDX files
    flips: bool = True      # a left-right mirror keeps the label (not a digit's): augmentation may flip

    @property
    def url(self):
        """The official download address of the CIFAR archive (empty for the IDX datasets)."""
        return CIFAR_HOST + self.archive if self.archive else ""


DATASETS = {
    "cifar10": DatasetInfo("cifar10", 10, (32, 32, 3), 50000, 10000,
                           "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a",
                           "cifar-10-batches-py"),
    "cifar100": DatasetInfo("cifar100", 100, (32, 32, 3), 50000, 10000,
                            "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85",
                            "cifar-100-python"),
    "mnist": DatasetInfo("mnist", 10, (28, 28, 1), 60000, 10000, idx=MNIST, flips=False),
    "fashion-mnist": DatasetInfo("fashion-mnist", 10, (28, 28, 1), 60000, 10000, idx=FASHION_MNIST),
}
