"""Seeded, stratified splits and the fingerprint of a data set."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


def split(frame: pd.DataFrame, target: str, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    counts = frame[target].value_counts()
    stratify = frame[target] if counts.min() >= 2 else None
    train, holdout = train_test_split(frame, test_size=test_size, random_state=seed, stratify=stratify)
    return train.reset_index(drop=True), holdout.reset_index(drop=True)


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of the rows (order-sensitive), stable across processes and machines."""
    import pandas as pd

    digest = hashlib.sha256()
    digest.update(",".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()
