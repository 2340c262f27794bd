"""The cache key of a reproduced section: content hash of inputs, code and settings."""

import json

import pytest

from ktlens.analysis.reproduce import SECTIONS, Context, section_key
from ktlens.analysis.reproduce.cache import SectionCache, cache_key, code_hash, file_hash, files_hash


def test_key_changes_with_settings_inputs_and_code():
    base = cache_key("ktheory.probes", {"model.safetensors": "aa"}, "c1", {"n_max": 4000})
    assert base == cache_key("ktheory.probes", {"model.safetensors": "aa"}, "c1", {"n_max": 4000})
    assert base != cache_key("ktheory.probes", {"model.safetensors": "aa"}, "c1", {"n_max": 500})
    assert base != cache_key("ktheory.probes", {"model.safetensors": "bb"}, "c1", {"n_max": 4000})
    assert base != cache_key("ktheory.probes", {"model.safetensors": "aa"}, "c2", {"n_max": 4000})
    assert base != cache_key("ktheory.saes", {"model.safetensors": "aa"}, "c1", {"n_max": 4000})


def test_file_hash_follows_the_bytes(tmp_path):
    f = tmp_path / "w.safetensors"
    f.write_bytes(b"abc")
    first = file_hash(f)
    f.write_bytes(b"abd")
    assert file_hash(f) != first
    (tmp_path / "config.json").write_text("{}")
    assert set(files_hash([tmp_path])) == {f"{tmp_path.name}/config.json", f"{tmp_path.name}/w.safetensors"}
    with pytest.raises(ValueError, match="not a file"):
        file_hash(tmp_path / "missing.json")


def test_code_hash_depends_on_the_modules():
    assert code_hash(["ktlens.analysis.reproduce.cache"]) != code_hash(["ktlens.analysis.reproduce.figures"])
    assert code_hash(["ktlens.analysis.reproduce.cache"]) == code_hash(["ktlens.analysis.reproduce.cache"])


def test_section_key_changes_with_settings_and_fast():
    section = next(s for s in SECTIONS if s.key_name == "miiii.accuracy")
    ctx = lambda settings: Context("miiii", "miiii-small", settings, False)  # noqa: E731
    probes = next(s for s in SECTIONS if s.key_name == "ktheory.probes")
    kctx = Context("ktheory", "ktheory-small", probes.settings(False), False)
    assert section_key(probes, kctx) != section_key(probes, Context("ktheory", "ktheory-small", probes.settings(True), True))
    assert section_key(section, ctx({})) != section_key(section, ctx({"extra": 1}))
    assert section_key(section, ctx({})) == section_key(section, ctx({}))


def test_section_cache_roundtrip_and_cut_files(tmp_path):
    cache = SectionCache(tmp_path / ".cache")
    assert cache.load("miiii.accuracy", "k" * 64) is None
    path = cache.save("miiii.accuracy", "k" * 64, {"summary": {"x": 1}})
    assert cache.load("miiii.accuracy", "k" * 64)["summary"] == {"x": 1}
    assert cache.load("miiii.accuracy", "j" * 64) is None  # another key
    cache.save("miiii.accuracy", "j" * 64, {"summary": {"x": 2}})
    assert not path.exists()  # the earlier key's file is replaced
    cut = cache.path("miiii.progress", "m" * 64)
    cut.write_text(json.dumps({"key": "m" * 64})[:-3])
    assert cache.load("miiii.progress", "m" * 64) is None
