"""Seeded, stratified splits, the sealed governance slice and the fingerprint of a data set."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
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


SEALED_BUCKETS = 10_000


def row_hashes(frame: pd.DataFrame, columns: list[str], epoch: int = 0) -> np.ndarray:
    """One 64-bit hash per row of ``columns``' values, salted by ``epoch``: the same row gets the
    same hash in every run, process and version, whatever its position; another epoch, another hash.

    pandas' ``hash_key`` only salts text columns, so the salt is mixed in here with the splitmix64
    finalizer (every output bit depends on every input bit)."""
    import numpy as np
    import pandas as pd

    salt = int.from_bytes(hashlib.sha256(f"mlops-sealed-{epoch}".encode()).digest()[:8], "little")
    h = pd.util.hash_pandas_object(frame[columns], index=False).to_numpy(dtype=np.uint64) ^ np.uint64(salt)
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return np.asarray(h ^ (h >> np.uint64(31)))


def seal(
    frame: pd.DataFrame, columns: list[str], fraction: float, epoch: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(rest, sealed)``: the rows whose salted content hash falls in the first ``fraction`` of the
    buckets are sealed. Selection by content, not position or seed, so a row sealed once stays sealed
    in every run of the epoch, and duplicates of a sealed row are sealed with it (no leak through a
    copy in training)."""
    mask = (row_hashes(frame, columns, epoch) % SEALED_BUCKETS) < int(fraction * SEALED_BUCKETS)
    return frame[~mask].reset_index(drop=True), frame[mask].reset_index(drop=True)


def subsample(frame: pd.DataFrame, target: str, fraction: float, seed: int) -> pd.DataFrame:
    """A stratified, seeded share of ``frame`` (all of it at 1.0): a deliberately weakened model."""
    if fraction >= 1.0:
        return frame
    part, _ = split(frame, target, 1.0 - fraction, seed)
    return part
