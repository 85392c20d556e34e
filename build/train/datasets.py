"""Datasets are derivations: fetched once by the controller, verified, converted, stored.

``dataset=NAME`` picks one of DATASETS (a recipe in recipes/ whose output holds one
.npz file the job scripts read); ``dataset=PATH`` ships an existing file as is.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

from ..errors import FetchError, TrainingError


@dataclass(frozen=True)
class DatasetInfo:
    recipe: str
    filename: str      # the file inside the store entry that jobs read
    manual: str        # how to supply the source by hand when no URL answers


DATASETS: Dict[str, DatasetInfo] = {
    "mnist": DatasetInfo(
        "dataset-mnist", "mnist.npz",
        "download https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz on a machine "
        "with internet and copy it to ~/.keras/datasets/mnist.npz (piforge checks its sha256), "
        "or train offline on dataset=fashion_mnist"),
    "fashion_mnist": DatasetInfo(
        "dataset-fashion-mnist", "fashion_mnist.npz",
        "install Debian's dataset-fashion-mnist package (scripts/setup-host.sh does), which puts "
        "the files in /usr/share/datasets/fashion-mnist/"),
    "cats_vs_dogs": DatasetInfo(
        "dataset-cats-vs-dogs", "cats_vs_dogs.npz",
        "download kagglecatsanddogs_3367a.zip (Microsoft Download Center, 'Kaggle Cats and Dogs "
        "Dataset') and put it in ~/Downloads/, or pass dataset=/path/to/prepared.npz"),
}


def dataset_file(name: str, report: Optional[Callable[[str], None]] = None) -> Path:
    """The local file to ship for ``name``: built (or reused) in the store, or a given path."""
    given = Path(name).expanduser()
    if name not in DATASETS:
        if given.is_file():
            return given.resolve()
        raise TrainingError(f"dataset={name!r}: not a known dataset ({', '.join(DATASETS)}) "
                            "and no such file")
    info = DATASETS[name]
    from ..derivation import derive
    from ..realise import realise
    from ..recipe import load_recipes

    drv = derive(load_recipes(), info.recipe)
    try:
        path = realise(drv, **({"report": report} if report else {}))  # type: ignore[arg-type]
    except FetchError as error:
        raise TrainingError(f"dataset {name}: {error.message}", hint=info.manual) from None
    target = path / info.filename
    if not target.is_file():
        raise TrainingError(f"dataset {name}: store entry {path} has no {info.filename}")
    return target
