"""The `ktlens` command: fast start (no torch for --help, --version, kgroup), version, subcommands."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import ktlens
from ktlens.cli import main

ROOT = Path(__file__).resolve().parents[1]


def python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)


def test_kgroup_help_and_version_do_not_import_torch():
    code = (
        "import sys, contextlib, io\n"
        "import ktlens.cli\n"
        "assert ktlens.cli.main(['kgroup', '3', '2', '2']) == 0\n"
        "for argv in (['--help'], ['--version'], ['train', '--help'], ['probe', '--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            ktlens.cli.main(argv)\n"
        "        except SystemExit as exit:\n"
        "            assert exit.code == 0, argv\n"
        "heavy = sorted(m for m in ('torch', 'transformer_lens', 'plotly') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Z/9\n"


def test_version(capsys):
    with pytest.raises(SystemExit) as exit:
        main(["--version"])
    assert exit.value.code == 0
    assert capsys.readouterr().out == f"ktlens {ktlens.__version__}\n"
    assert f'version = "{ktlens.__version__}"' in (ROOT / "pyproject.toml").read_text()


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in ("demo", "kgroup", "train", "predict", "miiii-figures", "probe"):
        assert name in out


def test_no_subcommand_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit:
        main([])
    assert exit.value.code == 2 and "required" in capsys.readouterr().err
