"""`ktlens features` and `ktlens dashboard` on a tiny run folder."""

import json

from ktlens.cli import main


def test_features_json_and_dashboard(ktheory_run, tmp_path, capsys):
    assert main(["features", "--model", str(ktheory_run), "--hook", "blocks.0.mlp.hook_post", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"units", "coverage"} and out["units"][0]["unit"] == 0
    assert main(["features", "--model", str(ktheory_run), "--hook", "blocks.9.mlp.hook_post"]) == 2
    assert "blocks.9.mlp.hook_post" in capsys.readouterr().err
    assert main(["dashboard", "--model", str(ktheory_run), "--hook", "blocks.0.mlp.hook_post", "--out", str(tmp_path / "d")]) == 0
    assert (tmp_path / "d" / "index.html").exists() and (tmp_path / "d" / "assets" / "plotly.min.js").exists()


def test_sae_and_hook_exclude_each_other(ktheory_run, capsys):
    assert main(["features", "--model", str(ktheory_run), "--sae", "x", "--hook", "blocks.0.mlp.hook_post"]) == 2
    assert "--hook and --sae" in capsys.readouterr().err


def test_sae_features_and_dashboard_on_a_bounded_model_with_scratch_positions(tmp_path, capsys):
    from ktlens.checkpoint import save_checkpoint
    from ktlens.models.encoder_decoder import KTheoryTransformer
    from ktlens.tasks.ktheory_data import KTheoryGridSpec
    from ktlens.tasks.ktheory_spec import KTheoryTaskSpec

    grid = KTheoryGridSpec(n_primes=2, r_max=6, e_max=5, split="random", test_fraction=0.25, seed=0, re_max=12)
    model = KTheoryTransformer.create(KTheoryTaskSpec.of_grid(grid, "descending", scratch=("re", "quotients")),
                                      d_model=16, n_layers=1, n_heads=2, d_mlp=32)
    folder = save_checkpoint(tmp_path / "model", model)
    sae = tmp_path / "sae"
    assert main(["sae", "train", "--model", str(folder), "--hook", "blocks.0.mlp.hook_post", "--set", "sae.d_sae=16", "sae.k=2",
                 "train.steps=4", "train.eval_every=2", "store.batch_rows=32", "store.buffer_examples=8", "init_rows=64",
                 "eval_rows=64", "--out", str(sae), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["features", "--model", str(folder), "--sae", str(sae), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["positions"] == model.position_labels() and out["positions"][1] == "re/p" and len(out["units"]) == 16
    assert main(["dashboard", "--model", str(folder), "--sae", str(sae), "--out", str(tmp_path / "d")]) == 0
    pages = "".join(p.read_text() for p in (tmp_path / "d" / "units").glob("*.html"))
    assert "re/p^2" in pages and "(writes " in pages  # scratch positions named, with the value written there
