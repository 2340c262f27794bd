"""The probe table: one row per result, every score printed to 3 decimals, '-' for a missing one."""

from ktlens.analysis.probes import ProbeResult, results_table


def rows():
    return [
        ProbeResult("u", "blocks.0.hook_resid_post", "0", "class", "accuracy", 0.98765, 0.5, 0.51, 0.6, 1.0, 30, 10, 32, 3),
        ProbeResult("re", "hook_src", "flatten", "scalar", "r2", 0.5, 0.0, None, None, 0.6, 30, 10, 96, None),
    ]


def test_text_table():
    lines = results_table(rows()).splitlines()
    assert lines[0].split() == ["target", "hook", "pos", "metric", "probe", "random", "model", "shuffled", "baseline", "selectivity"]
    assert lines[2].split() == ["u", "blocks.0.hook_resid_post", "0", "accuracy", "0.988", "0.600", "0.510", "0.500", "0.478"]
    assert lines[3].split() == ["re", "hook_src", "flatten", "r2", "0.500", "-", "-", "0.000", "-"]


def test_markdown_table():
    lines = results_table(rows(), markdown=True).splitlines()
    assert lines[0].startswith("| target | hook |") and lines[1].startswith("|---|")
    assert lines[2] == "| `u` | `blocks.0.hook_resid_post` | 0 | accuracy | 0.988 | 0.600 | 0.510 | 0.500 | 0.478 |"
    assert len(lines) == 4
