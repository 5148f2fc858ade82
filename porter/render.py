"""The Jinja environment over templates/: generated C and reports come from named templates."""

from __future__ import annotations

from functools import cache
from importlib import resources

import jinja2


def _load(name: str) -> str:
    # templates/ is installed as the package porter.templates (see pyproject.toml).
    return resources.files("porter.templates").joinpath(name).read_text(encoding="utf-8")


@cache
def environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FunctionLoader(_load),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=False,
    )


def render(template: str, **context) -> str:
    """Render templates/<name>; names and values are computed by the caller, not the template."""
    return environment().get_template(template).render(**context)
