"""The service's local model cache (mlops.serving.model_cache) and the manager's use of it, on a real
ONNX model from a real registry: round trip, corrupt entries ignored and counted, retention, and a
cached version confirmed, or replaced, by the registry."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from tests.support.serving import EXAMPLE, sample

from mlops import runtime
from mlops.serving.model_cache import ModelCache
from mlops.serving.model_manager import ModelManager


@pytest.fixture(scope="module")
def served(shared_settings) -> runtime.LoadedModel:
    """Version 1 of the shared registry, loaded as the service loads it (ONNX, trust checks)."""
    return runtime.load_checked(shared_settings, "iris", "1", threads=1)


def as_version(model: runtime.LoadedModel, version: str) -> runtime.LoadedModel:
    return dataclasses.replace(model, version=version)


def corrupted() -> float:
    return sample("mlops_model_cache_corrupt_total")


def test_round_trip_keeps_bytes_metadata_and_answers(served, tmp_path: Path) -> None:
    cache = ModelCache(tmp_path, "iris")
    meta_path = cache.save(served, "production")
    assert meta_path is not None and meta_path.with_suffix(".onnx").read_bytes() == served.onnx_bytes
    loaded = cache.load("production", served.name)
    assert loaded is not None and loaded.runtime == "onnx"
    for attr in ("name", "version", "run_id", "threshold", "metrics", "tags", "created_at", "onnx_bytes"):
        assert getattr(loaded, attr) == getattr(served, attr), attr
    assert loaded.spec.name == "iris"
    classes, proba = loaded.predict_rows([EXAMPLE])
    expected_classes, expected_proba = served.predict_rows([EXAMPLE])
    assert classes.tolist() == expected_classes.tolist() and np.allclose(proba, expected_proba)
    assert not list(cache.folder.glob(".tmp-*")), "a temporary file was left behind"


def test_only_the_alias_and_model_it_was_served_as(served, tmp_path: Path) -> None:
    cache = ModelCache(tmp_path, "iris")
    cache.save(served, "candidate")
    assert cache.load("production", served.name) is None
    assert cache.load("candidate", "another-model") is None
    assert ModelCache(tmp_path, "readmission").load("candidate", served.name) is None
    assert cache.load("candidate", served.name) is not None


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _not_onnx_but_recorded(path: Path) -> None:
    """Bytes ONNX Runtime cannot open, with metadata that records their sha256 (checksum passes)."""
    garbage = b"\x00not a model\xff" * 64
    path.write_bytes(garbage)
    meta_path = path.with_suffix(".json")
    meta = json.loads(meta_path.read_text())
    meta["onnx_sha256"] = hashlib.sha256(garbage).hexdigest()
    meta_path.write_text(json.dumps(meta))


def _unreadable_metadata(path: Path) -> None:
    path.with_suffix(".json").write_bytes(b'{"format": 1, "version": ')


def _missing_onnx(path: Path) -> None:
    path.unlink()


@pytest.mark.parametrize(
    "damage",
    [_flip_a_byte, _not_onnx_but_recorded, _unreadable_metadata, _missing_onnx],
    ids=lambda f: f.__name__,
)
def test_a_corrupt_entry_is_ignored_and_counted(served, tmp_path: Path, damage) -> None:
    cache = ModelCache(tmp_path, "iris")
    meta_path = cache.save(served, "production")
    assert meta_path is not None
    damage(meta_path.with_suffix(".onnx"))
    before = corrupted()
    assert cache.load("production", served.name) is None
    assert corrupted() == before + 1


def test_a_version_whose_checksum_fails_is_never_served(served, tmp_path: Path) -> None:
    """The newest entry is damaged: the one before it serves, the damaged one never does."""
    cache = ModelCache(tmp_path, "iris")
    cache.save(as_version(served, "1"), "production")
    newest = cache.save(as_version(served, "2"), "production")
    assert newest is not None
    _flip_a_byte(newest.with_suffix(".onnx"))
    before = corrupted()
    loaded = cache.load("production", served.name)
    assert loaded is not None and loaded.version == "1"
    assert corrupted() == before + 1
    _flip_a_byte(cache.save(as_version(served, "1"), "production").with_suffix(".onnx"))  # type: ignore[union-attr]
    assert cache.load("production", served.name) is None
    assert corrupted() == before + 3


def test_the_last_two_served_versions_are_kept(served, tmp_path: Path) -> None:
    cache = ModelCache(tmp_path, "iris")
    for version in ("1", "2", "3"):
        cache.save(as_version(served, version), "production")
    assert [e.meta["version"] for e in cache.entries()] == ["3", "2"]
    assert sorted(p.name for p in cache.folder.iterdir()) == [
        f"{served.name}-v{v}{suffix}" for v in ("2", "3") for suffix in (".json", ".onnx")
    ]
    cache.save(as_version(served, "1"), "production")  # served again (a rollback): newest again
    assert [e.meta["version"] for e in cache.entries()] == ["1", "3"]
    assert cache.load("production", served.name).version == "1"  # type: ignore[union-attr]


def test_only_verified_onnx_versions_are_cached(served, tmp_path: Path) -> None:
    """A native model needs the registry (skops file, allow-list); bytes that are not the ones the
    registry recorded are never written."""
    cache = ModelCache(tmp_path, "iris")
    assert cache.save(dataclasses.replace(served, runtime="native", onnx_bytes=None), "production") is None
    assert cache.save(dataclasses.replace(served, onnx_bytes=b"other bytes"), "production") is None
    assert cache.entries() == []


def test_the_setting_turns_it_off(shared_settings) -> None:
    assert ModelCache.from_settings(shared_settings.model_copy(update={"model_cache": False}), "iris") is None
    manager = ModelManager(shared_settings.model_copy(update={"model_cache": False}), "iris", "production")
    assert manager.cache is None


def cache_another_copy(served: runtime.LoadedModel, root: Path) -> bytes:
    """Cache valid ONNX that is not the registry's file (``served`` re-serialized with another doc
    string) as if it had been served; returns its bytes."""
    import onnx

    graph = onnx.load_from_string(served.onnx_bytes)
    graph.doc_string = "not what training registered"
    other = graph.SerializeToString()
    tags = {**served.tags, "onnx_sha256": hashlib.sha256(other).hexdigest()}
    ModelCache(root, "iris").save(dataclasses.replace(served, onnx_bytes=other, tags=tags), "production")
    return other


def _manager(settings, cache_root: Path, **update) -> ModelManager:
    """The service's manager over ``settings`` with its cache under ``cache_root`` (not the shared
    state folder, which other tests' services start from)."""
    manager = ModelManager(settings.model_copy(update=update), "iris", "production")
    manager.cache = ModelCache(cache_root, "iris")
    return manager


async def _started(manager: ModelManager) -> dict:
    await manager.start()
    try:
        return manager.state()
    finally:
        await manager.stop()


def test_the_manager_saves_what_it_serves_and_starts_from_it(shared_settings, tmp_path: Path) -> None:
    loaded = asyncio.run(_manager(shared_settings, tmp_path).check(patient=True))
    assert loaded["source"] == "registry" and loaded["registry_confirmed"]
    assert [e.meta["version"] for e in ModelCache(tmp_path, "iris").entries()] == ["1"]

    closed = "http://127.0.0.1:9"  # nothing listens on the discard port: the registry is down
    manager = _manager(shared_settings, tmp_path, tracking_uri=closed, poll_interval_s=3600.0)
    state = asyncio.run(_started(manager))  # stopped before its first poll could confirm anything
    assert state["model_loaded"] and state["model_version"] == "1"
    assert state["source"] == "cache" and not state["registry_confirmed"]
    assert manager.current is not None and manager.current.predict_rows([EXAMPLE])[0].shape == (1,)


def test_the_first_poll_confirms_the_cached_version(shared_settings, served, tmp_path: Path) -> None:
    ModelCache(tmp_path, "iris").save(served, "production")
    manager = _manager(shared_settings, tmp_path, poll_interval_s=3600.0)

    async def run() -> dict:
        await manager.start()
        assert sample("mlops_model_served_from_cache") == 1
        try:
            return await manager.check()
        finally:
            await manager.stop()

    state = asyncio.run(run())
    assert state["source"] == "cache" and state["registry_confirmed"] and state["model_version"] == "1"
    assert sample("mlops_model_served_from_cache") == 0


def test_a_cached_copy_that_differs_from_the_registry_is_replaced(shared_settings, served, tmp_path) -> None:
    """Valid ONNX that is not the registry's file (re-serialized with other metadata): it may serve
    while the registry is away, the first poll that reaches it swaps in the registry's copy."""
    other = cache_another_copy(served, tmp_path)
    manager = _manager(shared_settings, tmp_path, poll_interval_s=3600.0)
    before = corrupted()

    async def run() -> dict:
        await manager.start()
        assert manager.current is not None and manager.current.onnx_bytes == other
        try:
            return await manager.check()
        finally:
            await manager.stop()

    state = asyncio.run(run())
    assert state["source"] == "registry" and state["registry_confirmed"]
    assert manager.current is not None and manager.current.onnx_bytes == served.onnx_bytes
    assert corrupted() == before + 1
    assert ModelCache(tmp_path, "iris").entries()[0].meta["onnx_sha256"] == served.tags["onnx_sha256"]


def test_a_differing_copy_stops_serving_when_the_registry_copy_fails_too(
    settings, registered_iris, corrupt_version, tmp_path: Path
) -> None:
    """Fail closed: the cached bytes are not the registry's, and the registry's own file is broken:
    neither is a copy the registry vouches for, so nothing serves."""
    cache_another_copy(runtime.load_checked(settings, "iris", "1", threads=1), tmp_path)
    corrupt_version(settings, "iris", "1")
    manager = _manager(settings, tmp_path, poll_interval_s=3600.0)

    async def run() -> dict:
        await manager.start()
        assert manager.state()["model_loaded"]
        try:
            return await manager.check()
        finally:
            await manager.stop()

    state = asyncio.run(run())
    assert not state["model_loaded"] and state["source"] is None and state["rejected_versions"] == ["1"]
    assert sample("mlops_model_served_from_cache") == 0 and sample("mlops_model_loaded") == 0
