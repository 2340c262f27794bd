"""Content-hash cache of reproduced sections: ``DIR/.cache/<study>.<section>.<key>.json``.

The key of a section is the SHA-256 of (the hashes of its input files: model weights and config, SAE
weights, shipped result files; the ktlens version and a hash of the source of the modules its code
depends on; its settings). Change any of them and the section is computed again; an interrupted run
keeps every section it finished.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["file_hash", "files_hash", "code_hash", "cache_key", "SectionCache"]

_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def file_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes (memoised per path, size and mtime)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"cache input {str(path)!r} is not a file")
    st = path.stat()
    memo = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    if memo not in _FILE_HASHES:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        _FILE_HASHES[memo] = h.hexdigest()
    return _FILE_HASHES[memo]


def files_hash(paths: Iterable[str | Path]) -> dict[str, str]:
    """``{file name: hash}`` of the given files; a folder stands for its *.json and *.safetensors files."""
    out: dict[str, str] = {}
    for path in paths:
        path = Path(path)
        files = sorted(p for pattern in ("*.json", "*.safetensors") for p in path.glob(pattern)) if path.is_dir() else [path]
        for f in files:
            out[f"{f.parent.name}/{f.name}"] = file_hash(f)
    return out


def code_hash(modules: Iterable[str]) -> str:
    """SHA-256 of the ktlens version and the source text of each named module (a package: its __init__)."""
    import ktlens

    h = hashlib.sha256(ktlens.__version__.encode())
    for name in sorted(set(modules)):
        module = importlib.import_module(name)
        h.update(name.encode())
        h.update(inspect.getsource(module).encode())
    return h.hexdigest()


def cache_key(section: str, inputs: Mapping[str, str], code: str, settings: Mapping[str, Any]) -> str:
    """The content hash of one section run (see the module docstring)."""
    text = json.dumps({"section": section, "inputs": dict(inputs), "code": code, "settings": dict(settings)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class SectionCache:
    """Finished sections as JSON files in ``folder`` (usually ``DIR/.cache``)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)

    def path(self, section: str, key: str) -> Path:
        return self.folder / f"{section}.{key[:20]}.json"

    def load(self, section: str, key: str) -> dict[str, Any] | None:
        path = self.path(section, key)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:  # a file cut short by an interruption: compute again
            return None
        return data if data.get("key") == key else None

    def save(self, section: str, key: str, result: Mapping[str, Any]) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.path(section, key)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({**result, "key": key}), encoding="utf-8")
        tmp.replace(path)  # atomic: a cache file is whole or absent
        for old in self.folder.glob(f"{section}.*.json"):  # earlier keys of the same section
            if old != path:
                old.unlink()
        return path
