"""Every field of both shipped checkpoints' config.json, deleted, mistyped or out of range: the checkpoint
either fails to load with a ValueError naming the file and the field, or loads and answers exactly as the
original does. No other exception, no silent wrong answer. The shipped files are only read."""

import json
import shutil

import numpy as np
import pytest

from ktlens.checkpoint import PRETRAINED_DIR, load_checkpoint

MODELS = ("ktheory-small", "miiii-small")
DELETE = object()


def shipped_config(name):
    return json.loads((PRETRAINED_DIR / name / "config.json").read_text())


def leaf_fields(data, prefix=""):
    """(dotted name, key path, value) of every field, nested objects included (and the objects themselves)."""
    for key, value in data.items():
        path = (*prefix, key) if prefix else (key,)
        yield ".".join(path), path, value
        if isinstance(value, dict):
            yield from leaf_fields(value, path)


def bad_values(value):
    """(variant name, replacement) pairs: deleted, mistyped, out of range."""
    out = [("deleted", DELETE)]
    if isinstance(value, bool):
        out += [("mistyped_str", str(value).lower()), ("mistyped_int", int(value))]
    elif isinstance(value, int):
        out += [("mistyped_str", str(value)), ("mistyped_float", float(value)), ("mistyped_list", [value])]
        out += [("out_of_range_negative", -1), ("out_of_range_plus_one", value + 1), ("out_of_range_huge", 10**6)]
    elif isinstance(value, float):
        out += [("mistyped_str", str(value)), ("mistyped_list", [value]), ("mistyped_nan", float("nan"))]
        out += [("out_of_range_negative", -1.0), ("out_of_range_two", 2.0)]
    elif isinstance(value, str):
        out += [("mistyped_int", 1), ("mistyped_list", [value]), ("out_of_range", "bogus")]
    elif value is None:
        out += [("mistyped_str", "null"), ("mistyped_list", []), ("out_of_range_negative", -1), ("out_of_range_zero", 0)]
    elif isinstance(value, list):
        out += [("mistyped_str", ",".join(map(str, value))), ("mistyped_float_items", [float(v) for v in value] or [2.5])]
        out += [("out_of_range_empty", []), ("out_of_range_non_prime", [4]), ("out_of_range_dropped_last", value[:-1])]
    elif isinstance(value, dict):
        out += [("mistyped_list", list(value)), ("mistyped_str", "x"), ("out_of_range_empty", {})]
    return out


def cases():
    for name in MODELS:
        config = shipped_config(name)
        for dotted, path, value in leaf_fields(config):
            for variant, replacement in bad_values(value):
                yield pytest.param(name, dotted, path, replacement, id=f"{name}-{dotted}-{variant}")
        for section in ("", "model_config", "task_spec", "task_spec.grid"):
            path = tuple(section.split(".")) if section else ()
            node = config
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if isinstance(node, dict):
                dotted = f"{section}.colour" if section else "colour"
                yield pytest.param(name, dotted, (*path, "colour"), "blue", id=f"{name}-{dotted}-unknown")


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    """A copy of each shipped weights file and the original model's answers on a fixed sample."""
    root = tmp_path_factory.mktemp("shipped")
    out = {}
    for name in MODELS:
        shutil.copy(PRETRAINED_DIR / name / "model.safetensors", root / f"{name}.safetensors")
        model = load_checkpoint(PRETRAINED_DIR / name)
        out[name] = (root / f"{name}.safetensors", answers(model))
    return out


def answers(model):
    if model.model_type == "miiii":
        return model.predict(np.arange(model.p**2))  # the whole domain
    rng = np.random.default_rng(0)
    primes = list(model.spec.primes)
    p, r, e = rng.choice(primes, 300), rng.integers(1, model.spec.r_max + 1, 300), rng.integers(1, model.spec.e_max + 1, 300)
    return model.predict(p, r, e)


@pytest.mark.parametrize("name, dotted, path, replacement", list(cases()))
def test_malformed_config_fails_loudly_or_answers_the_same(shipped, tmp_path, name, dotted, path, replacement):
    weights, expected = shipped[name]
    config = shipped_config(name)
    node = config
    for key in path[:-1]:
        node = node[key]
    if replacement is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = replacement
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "model.safetensors").symlink_to(weights)
    try:
        model = load_checkpoint(folder)
    except ValueError as err:
        message = str(err)
        assert "config.json" in message, message
        assert dotted in message, message
        return
    got = answers(model)
    if isinstance(expected, np.ndarray):
        np.testing.assert_array_equal(got, expected)
    else:
        assert got == expected


def test_every_field_is_covered():
    ids = {p.id for p in cases()}
    for name in MODELS:
        for dotted, _, _ in leaf_fields(shipped_config(name)):
            assert any(i.startswith(f"{name}-{dotted}-") for i in ids), dotted
    assert "ktheory-small-task_spec.label_order-deleted" in ids
    assert "ktheory-small-task_spec.grid.seed-mistyped_str" in ids
