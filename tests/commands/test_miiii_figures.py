"""`ktlens miiii-figures --model M --out DIR`: offline HTML figures of a MIIII model."""

from ktlens.cli import main

FIGURES = {"training_curves.html", "embedding_fourier.html", "neuron_grids.html", "key_frequency_timeline.html",
           "polar.html", "task_spectra.html"}


def test_run_folder_writes_offline_html(miiii_run, tmp_path, capsys):
    out = tmp_path / "figs"
    assert main(["miiii-figures", "--model", str(miiii_run), "--out", str(out),
                 "--snapshots", str(miiii_run / "snapshots")]) == 0
    printed = capsys.readouterr().out.split()
    names = {p.name for p in out.iterdir()}
    assert FIGURES <= names
    assert sorted(printed) == sorted(str(p) for p in out.iterdir() if p.suffix == ".html" and p.name != "index.html")
    html = (out / "embedding_fourier.html").read_text()
    assert '<script src="http' not in html and '<script src="plotly.min.js">' in html  # the bundle beside it: offline
    assert (out / "plotly.min.js").stat().st_size > 1_000_000 and len(html) < 1_000_000  # written once


def test_wrong_model_or_snapshot_folder_exits_2(miiii_run, ktheory_run, tmp_path, capsys):
    assert main(["miiii-figures", "--model", str(ktheory_run), "--out", str(tmp_path / "a")]) == 2
    assert "is a 'ktheory' model, not a miiii model" in capsys.readouterr().err
    assert main(["miiii-figures", "--model", str(miiii_run / "model"), "--out", str(tmp_path / "b"),
                 "--snapshots", str(tmp_path / "nope")]) == 2
    assert f"snapshot folder {tmp_path / 'nope'} does not exist" in capsys.readouterr().err
