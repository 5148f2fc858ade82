"""README.md opens with the two commands; CI runs exactly the second one."""

from __future__ import annotations

import re

from conftest import ROOT


def readme_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return re.findall(r"```sh\n(.+?)\n```", text)[:2]


def test_readme_starts_with_an_install_and_run_command_and_a_test_command():
    head = (ROOT / "README.md").read_text().split("\n## ")[0]
    first, second = readme_commands()
    assert head.index(first) < head.index(second)
    assert "porter port fixtures/" in first
    assert "pytest" in second


def test_ci_runs_exactly_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert readme_commands()[1] in ci


def test_the_wheel_ships_every_package_porter_imports():
    """A folder of modules missing from [tool.setuptools] packages works from a checkout and
    breaks every installed porter."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "porter").rglob("*.py")}
    folders |= {"porter.templates" + "".join("." + part for part in p.parent.relative_to(ROOT / "templates").parts)
                for p in (ROOT / "templates").rglob("*.jinja")}
    assert folders <= listed, folders - listed
