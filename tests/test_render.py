"""The report templates: one table renderer per form, escaping where it must."""

from unmixlab.render import environment, markdown_table


def test_markdown_table_escapes_pipes_and_right_aligns_numbers():
    text = markdown_table(["configuration", "SDR (dB)"], [["a|b", "2.30"], ["c", "—"]])
    assert text.splitlines() == [
        "| configuration | SDR (dB) |",
        "| --- | ---: |",
        "| a\\|b | 2.30 |",
        "| c | — |",
    ]


def test_html_table_escapes_its_cells_and_shows_code_columns():
    macros = environment().get_template("tables.html.j2").module
    html = str(macros.html_table(["run", "note"], [["abc", "<b>&"]], code_columns=(0,)))
    assert "<td><code>abc</code></td><td>&lt;b&gt;&amp;</td>" in html
    assert "<th>run</th><th>note</th>" in html
