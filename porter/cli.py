"""The command line: the only place that reads or writes files and prints."""

from __future__ import annotations

import json
import os
import re
import sys
from contextlib import contextmanager
from enum import IntEnum
from pathlib import Path
from typing import Annotated, NoReturn, Optional

import typer
from rich.console import Console
from rich.table import Table

from porter import __version__

# Plain help (no boxes, no `<bool>` metavars), -h as well as --help.
_HELP = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="Port CPython C extension modules to multi-phase init with per-module state.",
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=_HELP,
)
debug_app = typer.Typer(no_args_is_help=True, help="Look at what porter's parser sees.", rich_markup_mode=None,
                        context_settings=_HELP)
app.add_typer(debug_app, name="debug")

# Messages are one line each: never wrapped, whatever the terminal (rich honours NO_COLOR).
err = Console(stderr=True, highlight=False, soft_wrap=True)


class ExitCode(IntEnum):
    """What `porter` exits with; every command maps its result here, in exit_code()."""

    OK = 0
    FAILED = 1  # a module could not be ported, or a check found something
    USAGE = 2  # bad arguments or unreadable input
    INTERNAL = 3  # a porter bug (one line on stderr, never a traceback)


EXIT_USAGE, EXIT_FAILED, EXIT_INTERNAL = ExitCode.USAGE, ExitCode.FAILED, ExitCode.INTERNAL


def exit_code(result) -> ExitCode:
    """The exit status of a port run: FAILED when any module or file failed."""
    return ExitCode.FAILED if result.failed else ExitCode.OK
PROGRESS_THRESHOLD = 40  # files; below this a progress bar is noise
PROGRESS_BYTES = 1 << 20  # unless they are this big
JobsOption = Annotated[Optional[int], typer.Option(
    "--jobs", "-j", min=1, help="Processes that parse and analyse (default: one per CPU).")]


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    err.print(f"porter: error: {message}", markup=False)
    return typer.Exit(code)


DefineOption = Annotated[Optional[list[str]], typer.Option(
    "--define", "-D", metavar="NAME[=VALUE]",
    help="A macro the build defines that its build files do not say (repeatable).")]
CPythonTreeOption = Annotated[Optional[Path], typer.Option(
    "--cpython-tree", metavar="DIR",
    help="Port as modules of the CPython source tree at DIR: its version, naming and headers "
         "(default: the tree the sources sit in, if any).")]
IncludeOption = Annotated[Optional[list[Path]], typer.Option(
    "--include-dir", "-I", metavar="DIR",
    help="A folder the build searches for headers that its build files do not say (repeatable).")]


def _read_inputs(paths: list[Path], follow_includes: bool = True, defines: list[str] | None = None,
                 include_dirs: list[Path] | None = None,
                 cpython_tree: Path | None = None):
    from porter.inputs import collect_inputs, display_path

    inputs = collect_inputs([str(p) for p in paths], follow_includes=follow_includes)
    if not inputs.files:
        reasons = "; ".join(f"{p.file}: {p.reason}" for p in inputs.problems) or "no .c or .h files"
        raise fail(f"nothing to read ({reasons})")
    for text in defines or ():
        name, _, value = text.partition("=")
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise fail(f"-D {text}: not a macro name")
        inputs.given_defines.append((name, value))
    for folder in include_dirs or ():
        if not folder.is_dir():
            raise fail(f"-I {folder}: no such folder")
        inputs.given_include_dirs.append(display_path(folder, Path.cwd()))
    if cpython_tree is not None:
        from porter.cpython import cpython_tree as tree_at

        tree = tree_at(cpython_tree) if cpython_tree.is_dir() else None
        if tree is None or tree.root != cpython_tree.resolve():
            raise fail(f"--cpython-tree {cpython_tree}: not a CPython source tree "
                       "(no Include/patchlevel.h and Tools/clinic/clinic.py there)")
        inputs.cpython_version, inputs.cpython_root = tree.version, str(tree.root)
    return inputs


def _scan(inputs, file_facts_for: str = "all", jobs: int | None = None, port_facts: bool = True):
    from porter.pipeline import scan

    files = [(f.path, f.data) for f in inputs.files]
    with _progress(files, "scanning") as progress:
        return scan(files, inputs.problems, inputs.companions(), jobs=jobs, file_facts_for=file_facts_for,
                    progress=progress, port_facts=port_facts)


@contextmanager
def _progress(files: list[tuple[str, bytes]], what: str):
    """A progress bar on stderr for a tree of files or a big file (a terminal only): bytes
    parsed, then bytes of the modules analysed."""
    size = sum(len(data) for _, data in files)
    if not err.is_terminal or (len(files) < PROGRESS_THRESHOLD and size < PROGRESS_BYTES):
        yield None
        return
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    columns = (TextColumn(f"{what} {len(files)} files, {size / 1e6:.1f} MB"), BarColumn(), TaskProgressColumn(),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


@app.callback(invoke_without_command=True)
def main_callback(
    version: Annotated[bool, typer.Option("--version", "-V", help="Print porter's version.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback behind an internal error.")] = False,
) -> None:
    global DEBUG
    DEBUG = debug
    if version:
        print(f"porter {__version__}")
        raise typer.Exit(0)


@app.command()
def scan(
    paths: Annotated[list[Path], typer.Argument(
        metavar="PATH...", help="C files or directories (searched for .c and .h).")],
    as_json: Annotated[bool, typer.Option("--json", help="Every fact as JSON (schema porter-scan/1).")] = False,
    define: DefineOption = None,
    include_dir: IncludeOption = None,
    cpython_tree: CPythonTreeOption = None,
    jobs: JobsOption = None,
) -> None:
    """Find single-phase modules, their static types, globals and blockers."""
    from porter.facts_json import analysis_to_json, dump
    from porter.pipeline import few_collections
    from porter.report import scan_rows

    inputs = _read_inputs(paths, defines=define, include_dirs=include_dir, cpython_tree=cpython_tree)
    # The table lists the sources outside every module; the JSON, every file.
    analysis = _scan(inputs, "all" if as_json else "c", jobs, port_facts=False)
    if as_json:
        # The facts are millions of small objects: the collector would walk them all, for
        # nothing, each time the document grows by a few hundred more.
        with few_collections():
            dump(analysis_to_json(analysis), sys.stdout.write)
        sys.stdout.write("\n")
        return
    _print_table(("file", "module", "init", "static types", "globals to port", "blockers", "unparsed"),
                 list(scan_rows(analysis)))


def _print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    """A boxed table on a terminal; elsewhere (a pipe, a file, a CI log) one line per row,
    columns aligned, nothing folded: what grep and diff read, for a thousandth of the time
    rich takes to measure and fold a tree's hundreds of cells."""
    if sys.stdout.isatty():
        table = Table(show_lines=False, pad_edge=False)
        for column in header:
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(*row)
        Console(highlight=False).print(table)
        return
    lines = [header, tuple("-" * len(h) for h in header)]
    lines += [tuple(" ".join(cell.split()) for cell in row) for row in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for line in lines:
        sys.stdout.write("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() + "\n")


@app.command()
def port(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH...", help="C files or directories of the module(s).")],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="Write the patch to this file instead of stdout.")] = None,
    report: Annotated[Optional[Path], typer.Option("--report", help="Write the Markdown checklist here.")] = None,
    unsafe: Annotated[bool, typer.Option("--unsafe", help="Also apply edits marked unsafe.")] = False,
    compile_check: Annotated[bool, typer.Option(
        "--compile/--no-compile",
        help="Compile every changed translation unit before and after the port (default: on).")] = True,
    keep_going: Annotated[bool, typer.Option(
        "--keep-going", help="Also emit the patch of a module whose port does not compile.")] = False,
    apply: Annotated[bool, typer.Option(
        "--apply", help="Rewrite the source files in place (atomically) instead of printing a patch.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Overwrite an existing --output or --report file (through a symlink too).")] = False,
    verify: Annotated[bool, typer.Option(
        "--verify", help="Build the patched package with its own build and import each module that compiles in "
        "isolated subinterpreters: `isolated` only when that passes.")] = False,
    smoke: Annotated[Optional[Path], typer.Option(help="With --verify: a smoke script run after each import.")] = None,
    define: DefineOption = None,
    include_dir: IncludeOption = None,
    cpython_tree: CPythonTreeOption = None,
    jobs: JobsOption = None,
) -> None:
    """Port single-phase modules to multi-phase init with module state: a unified diff."""
    from porter.diff import unified_diff
    from porter.porting import checked_port
    from porter.report import checklist
    from porter.status import summary_line
    from porter.writes import WriteRefused, patch_path, patch_root, writable_target, write_atomic

    if output is not None and report is not None and os.path.abspath(output) == os.path.abspath(report):
        raise fail("--output and --report name the same file")
    try:
        out_target = writable_target(output, "--output", force) if output is not None else None
        report_target = writable_target(report, "--report", force) if report is not None else None
    except WriteRefused as e:
        raise fail(str(e)) from None
    inputs = _read_inputs(paths, defines=define, include_dirs=include_dir, cpython_tree=cpython_tree)
    sources = {os.path.realpath(f.path) for f in inputs.files}
    for target in (out_target, report_target):
        if target is not None and os.path.realpath(target) in sources:
            raise fail(f"{target} is one of the sources; porter writes patches and reports elsewhere")
    cwd = Path.cwd()
    files = [(f.path, f.data) for f in inputs.files]
    with _progress(files, "porting") as progress:
        done = checked_port(files, unsafe=unsafe, problems=list(inputs.problems), companions=inputs.companions(),
                            compile=compile_check, cwd=cwd, jobs=jobs, progress=progress)
    if verify:
        from porter.inputs import project_root
        from porter.package_verify import is_package
        from porter.porting import verify_ports

        root = project_root(paths[0])
        if not is_package(root):
            raise fail(f"--verify builds the package, and {root} has no pyproject.toml or setup.py")
        verify_ports(done, root, cwd, smoke.read_text() if smoke else "")
    for o in done.outcomes:
        err.print(f"porter: {o.module}: {o.status.value}{': ' + o.reason if o.reason else ''}", markup=False)
    for p in done.result.problems:
        err.print(f"porter: {p.file}: {p.reason}", markup=False)
    if not done.outcomes and not done.result.problems:
        err.print("porter: no extension module found", markup=False)
    if len(done.outcomes) > 1:
        err.print(f"porter: {summary_line(done.outcomes)}", markup=False)
    code = exit_code(done)
    new_text = dict(done.new_text)
    if keep_going:
        new_text.update(done.withdrawn)
    if report_target is not None:
        write_atomic(report_target, checklist(done, _sources_of(done)).encode())
    read = {f.path for f in inputs.files}
    created = sorted(p for p in new_text if p not in read)
    if apply:
        _apply(inputs, new_text, force, created)
        raise typer.Exit(code)
    root = patch_root([f.path for f in inputs.files if f.path in new_text] + created, cwd)
    patch = b"".join(unified_diff(patch_path(f.path, root, cwd), f.data, new_text[f.path])
                     for f in inputs.files if f.path in new_text)
    patch += b"".join(unified_diff(patch_path(p, root, cwd), b"", new_text[p], created=True) for p in created)
    if root != Path(os.path.abspath(cwd)) and patch:
        err.print(f"porter: the patch's paths are relative to {root}: apply it there", markup=False)
    if out_target is not None:
        write_atomic(out_target, patch)
    else:
        sys.stdout.buffer.write(patch)
        sys.stdout.flush()
    raise typer.Exit(code)


def _sources_of(done) -> dict:
    sources = {}
    for mp in done.result.modules:
        sources.update(mp.sources)
    return sources


def _apply(inputs, new_text: dict[str, bytes], force: bool, created: list[str]) -> None:
    """--apply: each changed source rewritten atomically (through a symlink only with --force),
    and the headers porter writes created (an existing file is not overwritten without --force)."""
    from porter.writes import WriteRefused, writable_target, write_atomic

    targets = {}
    for path in created:
        try:
            targets[path] = writable_target(Path(path), "new header", force)
        except WriteRefused as e:
            raise fail(str(e)) from None
    for f in inputs.files:
        if f.path not in new_text:
            continue
        try:
            targets[f.path] = writable_target(Path(f.path), "source", force or not Path(f.path).is_symlink())
        except WriteRefused as e:
            raise fail(str(e)) from None
    for path, target in targets.items():
        write_atomic(target, new_text[path])


@app.command()
def report(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH...", help="C files or directories: a tree.")],
    as_json: Annotated[bool, typer.Option("--json", help="The table as JSON.")] = False,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write it here instead of stdout.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing --output file.")] = False,
    define: DefineOption = None,
    include_dir: IncludeOption = None,
    cpython_tree: CPythonTreeOption = None,
) -> None:
    """Every extension module of a tree: where it stands, and what a port would do."""
    from porter.report import tree_markdown, tree_rows
    from porter.rewrite.port import port as plan_ports
    from porter.writes import WriteRefused, writable_target, write_atomic

    try:
        target = writable_target(output, "--output", force) if output is not None else None
    except WriteRefused as e:
        raise fail(str(e)) from None
    inputs = _read_inputs(paths, defines=define, include_dirs=include_dir, cpython_tree=cpython_tree)
    analysis = _scan(inputs)
    rows = tree_rows(analysis, plan_ports(analysis))
    summary = tree_summary(rows)
    if as_json:
        text = json.dumps({"schema": "porter-report/1", "summary": summary, "modules": rows,
                           "problems": [{"file": p.file, "reason": p.reason} for p in analysis.problems]},
                          indent=2) + "\n"
    else:
        text = tree_markdown(rows, summary)
    if target is not None:
        write_atomic(target, text.encode())
    else:
        sys.stdout.write(text)
    err.print(f"porter: {summary}", markup=False)


def tree_summary(rows: list[dict]) -> str:
    from collections import Counter

    counts = Counter(r["status"] for r in rows)
    order = ("already isolated", "not isolated", "single-phase", "unknown")
    parts = [f"{counts[s]} {s}" for s in order if counts[s]]
    noun = "module" if len(rows) == 1 else "modules"
    return f"{len(rows)} {noun}: " + (", ".join(parts) if parts else "none")


@app.command()
def check(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH...", help="C files or directories to check.")],
    config: Annotated[Optional[Path], typer.Option(
        "--config", help="The pyproject.toml with the [tool.porter] allow-list (default: the project's).")] = None,
    define: DefineOption = None,
    include_dir: IncludeOption = None,
    cpython_tree: CPythonTreeOption = None,
) -> None:
    """CI and pre-commit: 0 when every module is isolated or allow-listed, 1 with findings, 2 on error."""
    from porter.check import AllowListError, read_allow_list
    from porter.check import check as find
    from porter.inputs import project_root

    inputs = _read_inputs(paths, defines=define, include_dirs=include_dir, cpython_tree=cpython_tree)
    pyproject = config or (project_root(paths[0]) / "pyproject.toml")
    allowed = []
    if pyproject.is_file():
        try:
            allowed = read_allow_list(str(pyproject), pyproject.read_bytes())
        except (AllowListError, OSError) as e:
            raise fail(str(e)) from None
    elif config is not None:
        raise fail(f"no such file: {config}")
    analysis = _scan(inputs, port_facts=False)  # what a module is, not how a port would change it
    findings = find(analysis, allowed)
    for f in findings:
        print(f)
    for p in analysis.problems:
        err.print(f"porter: {p.file}: {p.reason}", markup=False)
    modules = len(analysis.modules)
    err.print(f"porter: {len(findings)} finding{'s' if len(findings) != 1 else ''} in {modules} "
              f"module{'s' if modules != 1 else ''}", markup=False)
    if analysis.problems:
        raise typer.Exit(ExitCode.USAGE)
    raise typer.Exit(ExitCode.FAILED if findings else ExitCode.OK)


@app.command()
def explain(
    topic: Annotated[Optional[str], typer.Argument(
        metavar="ID", help="A step or item id from a report, e.g. gc-support.")] = None,
) -> None:
    """What a report id means: what porter does for it, why, and how safe it is."""
    from porter.explain import summary, topics

    known = topics()
    if topic is None:
        width = max(len(name) for name in known)
        for name, text in known.items():
            print(f"{name.ljust(width)}  {summary(text)}")
        return
    if topic not in known:
        raise fail(f"no such id: {topic} (one of: {', '.join(known)})")
    print(known[topic])


@app.command()
def verify(
    target: Annotated[Path, typer.Argument(
        metavar="TARGET", help="A package folder (pyproject.toml or setup.py), a fixture folder, or a C file.")],
    more: Annotated[Optional[list[Path]], typer.Argument(
        metavar="FILE...", help="More C files of the same module.")] = None,
    module: Annotated[Optional[list[str]], typer.Option(
        help="The module's import name (a package: each extension to check).")] = None,
    smoke: Annotated[Optional[Path], typer.Option(help="A smoke script run after the import.")] = None,
    tests: Annotated[Optional[str], typer.Option(
        "--tests", help="A package's own test command, run against the build (e.g. 'python -m pytest tests').")] = None,
    test_requires: Annotated[Optional[list[str]], typer.Option(
        "--test-requires", help="What the test command needs from PyPI (e.g. pytest).")] = None,
    python: Annotated[Optional[list[str]], typer.Option(help="Only this version (e.g. 3.13).")] = None,
    port: Annotated[bool, typer.Option(
        "--port",
        help="Port the sources first, verify the port and compare what Python sees with the original.")] = False,
) -> None:
    """Build with each CPython >= 3.12 and import in isolated subinterpreters."""
    from porter import verify as oracle
    from porter.package_verify import is_package, verify_package

    if is_package(target):
        if not module:
            raise fail("give --module with the import name of each extension to check")
        interpreters = _interpreters(python)
        import tempfile

        with tempfile.TemporaryDirectory(prefix="porter-verify-") as tmp:
            result = verify_package(target.resolve(), list(module), smoke.read_text() if smoke else "",
                                    interpreters, Path(tmp), tests, list(test_requires or ()))
        print(oracle.format_verification(result))
        raise typer.Exit(0 if result.ok else EXIT_FAILED)
    isolation = None
    unsafe = False
    if target.is_dir():
        try:
            fixture = oracle.load_fixture(target)
        except (oracle.FixtureError, OSError) as e:
            raise fail(str(e)) from None
        sources, name, smoke_text, isolation = list(fixture.sources), fixture.module, fixture.smoke, fixture.isolation
        unsafe, defines = fixture.unsafe, fixture.defines
    else:
        if not module or smoke is None:
            raise fail("give --module and --smoke with C files (or a fixture or package folder)")
        sources = [target, *(more or [])]
        missing = [str(s) for s in sources if not s.is_file()]
        if missing:
            raise fail(f"no such file: {', '.join(missing)}")
        name, smoke_text = module[0], smoke.read_text()
        defines = _build_defines(sources)
    interpreters = _interpreters(python)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="porter-verify-") as tmp:
        original = sources
        if port:
            sources = _ported_copy(sources, Path(tmp) / "src", unsafe)
        result = oracle.verify(sources, name, smoke_text, interpreters, isolation=isolation,
                               workdir=Path(tmp) / "build", defines=defines)
        if port:
            # What Python code can observe of the module must not change with the port.
            before = oracle.verify(original, name, smoke_text, interpreters, workdir=Path(tmp) / "original",
                                   defines=defines)
            result = oracle.with_surface_kept(result, before)
    print(oracle.format_verification(result))
    raise typer.Exit(0 if result.ok else EXIT_FAILED)


def _build_defines(sources: list[Path]) -> tuple[tuple[str, str], ...]:
    """The -D macros of the build files porter finds around `sources` (as `porter port` reads them)."""
    from porter.analyze.build_config import read_build_config
    from porter.inputs import build_files

    return read_build_config([(f.path, f.data) for f in build_files(sources, Path.cwd())]).compiler_defines


def _interpreters(python: list[str] | None):
    from porter.verify import find_interpreters

    found = [i for i in find_interpreters() if not python or i.version in python]
    if not found:
        raise fail("no CPython >= 3.12 found (pyenv versions, or PORTER_PYTHON312=/path/to/python)", EXIT_FAILED)
    return found


def _ported_copy(sources: list[Path], dest: Path, unsafe: bool) -> list[Path]:
    """Port `sources` in memory and write the results (and sibling headers) under `dest`."""
    import os

    from porter.inputs import collect_inputs
    from porter.pipeline import port_files

    inputs = collect_inputs([str(s) for s in sources])
    result = port_files([(f.path, f.data) for f in inputs.files], unsafe=unsafe,
                        companions=inputs.companions())
    if result.failed:
        reasons = [f"{mp.module.name}: {mp.reason}" for mp in result.modules if mp.status == "failed"]
        reasons += [f"{p.file}: {p.reason}" for p in result.problems]
        raise fail("; ".join(reasons), EXIT_FAILED)
    dest.mkdir(parents=True)
    base = Path(os.path.commonpath([str(s.resolve().parent) for s in sources]))
    written = {}
    for f in inputs.files:
        path = Path(f.path).resolve()
        out = dest / (path.relative_to(base) if path.is_relative_to(base) else Path(path.name))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(result.new_text.get(f.path, f.data))
        written[path] = out
    read = {f.path for f in inputs.files}
    for created in (p for p in result.new_text if p not in read):  # a header of porter's own
        path = Path(created).resolve()
        out = dest / (path.relative_to(base) if path.is_relative_to(base) else Path(path.name))
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(result.new_text[created])
    for folder in {s.resolve().parent for s in sources}:
        for h in folder.glob("*.h"):
            target = dest / h.relative_to(base)
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(h.read_bytes())
    return [written[s.resolve()] for s in sources]


@debug_app.command("tree")
def debug_tree(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A C file.")],
    masked: Annotated[bool, typer.Option("--masked", help="Also print the text tree-sitter saw.")] = False,
) -> None:
    """Print the syntax tree, with ERROR spans, masks and masked #if groups."""
    from porter.debug import render_tree

    inputs = _read_inputs([file])
    print(render_tree(_source_of(inputs, file), masked=masked))


@debug_app.command("query")
def debug_query(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A C file.")],
    query: Annotated[str, typer.Argument(
        metavar="QUERY", help="A tree-sitter query, a .scm file, or a built-in query name.")],
) -> None:
    """Print the captures of a tree-sitter query on a file."""
    from porter.debug import QueryError, render_captures

    inputs = _read_inputs([file])
    text = Path(query).read_text() if query.endswith(".scm") and Path(query).is_file() else query
    try:
        print(render_captures(_source_of(inputs, file), text))
    except QueryError as e:
        raise fail(str(e)) from None


def _source_of(inputs, file: Path):
    from porter.analyze.project import load_sources
    from porter.inputs import display_path

    sources = load_sources([(f.path, f.data) for f in inputs.files])
    wanted = display_path(file, Path.cwd())
    return next(s for s in sources if s.path == wanted)


DEBUG = False  # --debug: an internal error shows its traceback


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("porter: interrupted")
        sys.exit(130)
    except SystemExit as done:
        _exit_now(done)
    except Exception as e:  # a bug: one line, not a traceback (unless --debug)
        if DEBUG:
            import traceback

            traceback.print_exc()
        err.print(f"porter: internal error: {type(e).__name__}: {e} (please report it; --debug shows where)",
                  markup=False)
        sys.exit(EXIT_INTERNAL)


def _exit_now(done: SystemExit) -> NoReturn:
    """End the process once its output is out, without the interpreter's own exit: that frees
    every fact, tree and text one by one (a tenth of a second and more after a scan of a big
    tree), for nothing. Every file porter wrote is closed and every worker process joined by
    now. An exit code that is not a number, or output that cannot be flushed (a closed pipe),
    takes the ordinary way out."""
    if done.code is not None and not isinstance(done.code, int):
        raise done
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        raise done from None
    os._exit(done.code or 0)
