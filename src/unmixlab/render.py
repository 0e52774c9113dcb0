"""Reports as text: the Jinja2 templates shipped in ``unmixlab/templates/``.

Every table of every report (markdown or HTML) goes through one macro per form, in
``tables.md.j2`` and ``tables.html.j2``: a header and rows of text, the first column left
aligned, the others right aligned. Templates ending ``.html.j2`` escape what they insert.
"""

import base64
import functools
import re
from collections.abc import Sequence

import jinja2
from markupsafe import Markup, escape


@functools.cache
def environment() -> jinja2.Environment:
    """The templates' environment (loaded once per process)."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("unmixlab", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["md_cell"] = md_cell
    env.filters["emphasis"] = emphasis
    env.filters["b64"] = lambda data: base64.b64encode(data).decode("ascii")
    return env


def render(template: str, **context: object) -> str:
    """Render ``unmixlab/templates/<template>`` with ``context``."""
    return environment().get_template(template).render(**context)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A markdown table of text cells (``|`` escaped), numbers right aligned; ends in a newline."""
    return (
        str(environment().get_template("tables.md.j2").module.markdown_table(header, rows)) + "\n"
    )


def md_cell(text: object) -> str:
    """A markdown table cell: ``|`` escaped, line breaks as spaces."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def emphasis(text: str) -> Markup:
    """Escape ``text`` for HTML and turn ``*word*`` into ``<em>word</em>``."""
    return Markup(re.sub(r"\*([^*]+)\*", r"<em>\1</em>", str(escape(text))))
