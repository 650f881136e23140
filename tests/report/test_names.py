"""Short pilot names: the per-pilot fit table fits 80 columns, a legend gives full names."""

from __future__ import annotations

from rich.console import Console

from cptopt.report.fit import fit_report
from cptopt.report.names import short_names


def test_shared_parts_are_dropped():
    names = [f"code_U_lr{x}_r25_{s}_1000" for x in ("1x", "2x") for s in ("wsd", "cos")]
    short, legend = short_names(names)
    assert short == ["lr1x_wsd", "lr1x_cos", "lr2x_wsd", "lr2x_cos"]
    assert legend[0] == "lr1x_wsd = code_U_lr1x_r25_wsd_1000"
    assert len(legend) == 4


def test_short_names_are_kept_and_long_ones_numbered_when_needed():
    assert short_names(["hf-B", "L1"]) == (["hf-B", "L1"], [])
    long = [f"{'x' * 20}_{i}_{'y' * 20}" for i in range(3)]
    assert short_names(long)[0] == ["0", "1", "2"]
    clash = ["a_very_long_name_one_x", "a_very_long_name_one_y_z_w_v_u_t_s"]
    assert short_names(clash)[0] == ["x", "y_z_w_v_u_t_s"]
    too_long = ["a_" + "b" * 30, "a_" + "c" * 30]
    short, legend = short_names(too_long)
    assert short == ["P1", "P2"] and legend == [f"P1 = {too_long[0]}", f"P2 = {too_long[1]}"]
    assert short_names(["only_one_pilot_with_a_long_name"])[0] == ["P1"]


def test_fit_table_fits_80_columns(fitted_law):
    """The bundled pilots (code_U_lr1x_r25_wsd_1000, ...) at 80 columns: one line per pilot."""
    console = Console(width=80, record=True)
    console.print(fit_report(fitted_law))
    text = console.export_text()
    table = text[text.index("fit error per pilot") :]
    for run in fitted_law.general.runs:
        assert run.name in table  # in the legend
        short = run.name.removeprefix("code_U_").removesuffix("_1000")
        (row,) = [line for line in table.splitlines() if line.startswith(f" {short} ")]
        assert row.count("%") == 6
    assert max(len(line) for line in text.splitlines()) <= 80
