"""Labels and the train / holdout split (pure: DataFrames in, arrays and DataFrames out).

Labels are trained as class *indices* (position in the contract's ``label.classes``); a
regression label is its float64 value. :class:`TrainingDataError` is the error family of
unusable training data.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from mlops_onprem.contracts import Contract, Task
from mlops_onprem.errors import ModelError


class TrainingDataError(ModelError):
    """There is no usable training data (no validated batches, no label, a missing class)."""


def encode_labels(values: pd.Series, contract: Contract) -> np.ndarray:
    """Class indices (classification, int64) or float64 values (regression).

    Raises TrainingDataError for missing labels or labels outside the contract's classes.
    """
    label = contract.label
    if label is None:
        raise TrainingDataError(f"contract {contract.dataset!r} declares no label: cannot train")
    if values.isna().any():
        raise TrainingDataError(
            f"label column {label.name!r} has {int(values.isna().sum())} missing values"
        )
    if label.task == Task.REGRESSION:
        return values.to_numpy(dtype=np.float64)
    classes = list(label.classes or ())
    lookup = {c: i for i, c in enumerate(classes)} | {str(c): i for i, c in enumerate(classes)}
    encoded = values.map(lambda v: lookup.get(v, lookup.get(str(v), -1))).to_numpy(dtype=np.int64)
    if (encoded < 0).any():
        bad = values[encoded < 0].iloc[0]
        bad = bad.item() if isinstance(bad, np.generic) else bad
        raise TrainingDataError(
            f"label column {label.name!r} has value {bad!r} outside contract classes {classes}"
        )
    return encoded


def _class_counts(frame: pd.DataFrame, label: str) -> dict[str, int]:
    return {str(k): int(v) for k, v in frame[label].value_counts().sort_index().items()}


def split_train_holdout(
    frame: pd.DataFrame, contract: Contract, *, holdout_fraction: float, seed: int,
    method: str = "auto",
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """Split rows into train and holdout.

    ``method`` "time" (the latest ``holdout_fraction`` of rows by the contract's timestamp, ties
    broken by row key), "stratified" / "random" (seeded), or "auto": time when the contract names
    a timestamp, else stratified random for classification. Returns ``(train, holdout,
    method)``. Raises TrainingDataError if either side would be empty, and, for
    classification, when a class of the data is missing from the holdout or the training side
    (e.g. data ordered by class under a time split): the error gives the class counts of both
    sides and names the spec's ``split`` option, instead of an undefined metric at the gate.
    """
    n_holdout = int(round(len(frame) * holdout_fraction))
    if n_holdout < 1 or n_holdout >= len(frame):
        raise TrainingDataError(
            f"{len(frame)} rows cannot be split with holdout fraction {holdout_fraction}"
        )
    classification = contract.label is not None and contract.label.task != Task.REGRESSION
    if method == "time" or (method == "auto" and contract.timestamp):
        if not contract.timestamp:
            raise TrainingDataError(f"split 'time' needs a timestamp; contract {contract.dataset!r} "
                                    "names none")
        ordered = frame.sort_values([contract.timestamp, contract.row_key], kind="stable")
        cut = len(ordered) - n_holdout
        train, holdout, used = ordered.iloc[:cut], ordered.iloc[cut:], f"time ({contract.timestamp})"
    else:
        stratify = None
        if classification and method != "random":
            counts = frame[contract.label.name].value_counts()
            if counts.min() >= 2:  # stratification needs two rows per class
                stratify = frame[contract.label.name]
        train, holdout = train_test_split(
            frame, test_size=n_holdout, random_state=seed, shuffle=True, stratify=stratify
        )
        used = "stratified random" if stratify is not None else "random"
    if classification:
        classes = set(frame[contract.label.name].unique())
        missing_holdout = classes - set(holdout[contract.label.name].unique())
        missing_train = classes - set(train[contract.label.name].unique())
        if missing_holdout or missing_train:
            raise TrainingDataError(
                f"the {used} split of {len(frame)} rows leaves class(es) "
                f"{sorted(map(str, missing_holdout | missing_train))} out of the "
                f"{'holdout' if missing_holdout else 'training side'} (train "
                f"{_class_counts(train, contract.label.name)}, holdout "
                f"{_class_counts(holdout, contract.label.name)}): the holdout metric would be "
                "undefined or biased; set `split: stratified` (or `random`) in the model spec, "
                "or land data covering every class in the latest period")
    return train, holdout, used


