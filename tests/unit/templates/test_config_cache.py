"""The parse-time YAML cache can make a parse faster, never different."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlops_provider.templates import config_cache
from mlops_provider.templates.config_cache import entry_path, load_yaml_cached, text_key
from mlops_provider.templates.loader import load_config
from mlops_provider.templates.safe_yaml import ConfigTooLargeError

ROOT = Path(__file__).resolve().parents[3]
DOC = "model: {name: wine, task: classification}\nlist: [1, 2.5, true, null, 'x']\n"


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(config_cache.CACHE_ENV, str(folder))
    return folder


def test_a_parsed_document_is_kept_and_reused(cache: Path, tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "wine.yaml"
    first = load_yaml_cached(path, DOC)
    entry = entry_path(cache, path)
    assert entry.read_bytes().startswith(text_key(DOC).encode() + b"\n")
    monkeypatch.setattr(config_cache, "load_yaml", lambda text: pytest.fail("parsed again"))
    assert load_yaml_cached(path, DOC) == first


def test_an_edited_config_is_parsed_again(cache: Path, tmp_path: Path) -> None:
    path = tmp_path / "wine.yaml"
    load_yaml_cached(path, DOC)
    assert load_yaml_cached(path, DOC.replace("wine", "beer"))["model"]["name"] == "beer"
    assert load_yaml_cached(path, DOC)["model"]["name"] == "wine"


@pytest.mark.parametrize(
    "tampered",
    [
        b"",
        b"not-the-key\n{}",
        None,  # right key, broken JSON
    ],
)
def test_a_bad_entry_is_ignored_and_rewritten(cache: Path, tmp_path: Path, tampered: bytes | None) -> None:
    path = tmp_path / "wine.yaml"
    expected = load_yaml_cached(path, DOC)
    entry = entry_path(cache, path)
    key = text_key(DOC).encode()
    entry.write_bytes(tampered if tampered is not None else key + b'\n{"model": ')
    assert load_yaml_cached(path, DOC) == expected
    assert load_yaml_cached(path, DOC) == expected


def test_an_oversized_or_deeply_nested_entry_is_ignored(cache: Path, tmp_path: Path) -> None:
    path = tmp_path / "wine.yaml"
    expected = load_yaml_cached(path, DOC)
    key = text_key(DOC).encode()
    entry = entry_path(cache, path)
    entry.write_bytes(key + b"\n" + b"[" * 100_000 + b"]" * 100_000)
    assert load_yaml_cached(path, DOC) == expected
    entry.write_bytes(key + b'\n"' + b"x" * (config_cache.MAX_ENTRY_BYTES + 10) + b'"')
    assert load_yaml_cached(path, DOC) == expected


@pytest.mark.parametrize(
    "text",
    [
        "when: 2024-01-01\n",  # a date: JSON would give a string back
        "1: one\n",  # an integer key
        "x: .nan\n",
        "b: !!binary aGVsbG8=\n",
        "s: !!set {a, b}\n",
    ],
)
def test_documents_json_cannot_give_back_exactly_are_not_cached(
    cache: Path, tmp_path: Path, text: str
) -> None:
    path = tmp_path / "odd.yaml"
    first = load_yaml_cached(path, text)
    assert not entry_path(cache, path).exists()
    second = load_yaml_cached(path, text)
    assert type(second) is type(first)
    assert repr(second) == repr(first)


def test_bounds_still_apply_and_errors_are_not_cached(cache: Path, tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    bomb = "a: &a [x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}]\n" for p, c in zip("abcdefghij", "bcdefghijk", strict=True)
    )
    for _ in range(2):
        with pytest.raises(ConfigTooLargeError):
            load_yaml_cached(path, bomb)
    assert not entry_path(cache, path).exists()


def test_an_unwritable_or_disabled_cache_just_parses(tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")  # unwritable even for root
    monkeypatch.setenv(config_cache.CACHE_ENV, str(blocker / "configs"))
    for _ in range(2):
        assert load_yaml_cached(tmp_path / "a.yaml", DOC)["model"]["name"] == "wine"
    monkeypatch.setenv(config_cache.CACHE_ENV, "")
    assert config_cache.cache_dir() is None
    assert load_yaml_cached(tmp_path / "a.yaml", DOC)["model"]["name"] == "wine"


def test_the_default_folder_is_under_airflow_home(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.delenv(config_cache.CACHE_ENV, raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert config_cache.cache_dir() == tmp_path / ".mlops-cache" / "configs"


def test_a_real_config_loads_the_same_from_the_cache(cache: Path) -> None:
    path = ROOT / "dags" / "configs" / "seattle_weather.yaml"
    fresh = load_config(path)
    assert any(cache.iterdir())
    cached = load_config(path)
    assert cached.ok
    assert fresh.ok
    assert cached.raw == fresh.raw
    assert cached.config == fresh.config
    assert os.listdir(cache) == [entry_path(cache, path).name]


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o722])
def test_a_folder_others_may_write_is_not_used(tmp_path: Path, monkeypatch, mode: int) -> None:
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(mode)
    monkeypatch.setenv(config_cache.CACHE_ENV, str(folder))
    path = tmp_path / "wine.yaml"
    entry_path(folder, path).write_bytes(text_key(DOC).encode() + b'\n{"model": {"name": "planted"}}')
    assert load_yaml_cached(path, DOC)["model"]["name"] == "wine"  # the planted entry is not read


def test_a_new_folder_is_private(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "new" / "configs"
    monkeypatch.setenv(config_cache.CACHE_ENV, str(folder))
    load_yaml_cached(tmp_path / "wine.yaml", DOC)
    assert folder.stat().st_mode & 0o777 == 0o700


def test_the_key_changes_with_the_provider_version(monkeypatch) -> None:
    import mlops_provider

    before = text_key(DOC)
    monkeypatch.setattr(mlops_provider, "__version__", "99.0.0")
    assert text_key(DOC) != before
