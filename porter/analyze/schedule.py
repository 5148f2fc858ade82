"""Which files a scan parses, in which groups, on how many processes.

A tree lives only inside the task that parsed it. A task parses a group of files (the files
that may hold an init function, with the headers they include), reads their facts, which are
plain data and pickle, and lets the trees go. The parent process reads every file's directives
first (cheap, and what decides groups); then it runs the tasks, largest first, itself and on
worker processes forked from it (so that they share its view of every file without copying it):

1. one task per group of possible init files connected by the headers they include: each
   module is analysed as if it linked with no other file, and every file's link facts come back;
2. the files next to a module's init file that might link with it, and, when asked, the files
   no module needs: parsed for their link facts or their error spans only;
3. the few modules that do link with other files, analysed again with them.

Results are sorted by position, as one process would have them, whatever the order in which
tasks finish.
"""

from __future__ import annotations

import ctypes
import gc
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace

from porter.analyze.build_config import BuildConfig
from porter.analyze.index import FileIndex, build_index
from porter.analyze.macros import MacroTable
from porter.analyze.modules import find_init_functions
from porter.analyze.project import (
    Analysis,
    LinkFacts,
    ModuleContext,
    _build_names,
    _closure,
    _IncludesOnly,
    _resolve_includes,
    _silent_inits,
    _unread_init_headers,
    _unread_inits,
    analyze_root,
    built_with,
    file_facts,
    internal_error,
    link_candidates,
    link_facts,
    link_files,
    link_root,
    part_roots,
    paths_by_basename,
    tu_macros,
)
from porter.lexer import IDENTIFIER, lex
from porter.model import NO_COMPANIONS, Companions, ExtensionModule, FileFacts, FileProblem, InitFunction, Macro
from porter.parse import Source, SourceText, parse_source
from porter.preproc import Preprocessed, preprocess

# Below this many bytes to parse, worker processes cost more than they save.
PARALLEL_BYTES = 1 << 20
# A file the modules of several tasks include is parsed by each below this size.
SHARED_PARSE_BYTES = 64 << 10
# Tasks each worker holds: one it runs and the next. A worker that finishes one otherwise waits
# for this process (busy with a task of its own) to take in its result and hand it another.
TASKS_AHEAD = 2
# What this process reads of the directives, against a worker's 1.0 (`_preprocess_all`).
OWN_SHARE_WEIGHT = 1.3

Progress = Callable[[int, int], None]  # (bytes done, bytes to do)


@dataclass
class Prepared:
    """Every file's text and directives, and how files include each other: what tasks read."""

    paths: list[str]  # the files whose directives could be read, in the order given
    texts: dict[str, bytes]
    pres: dict[str, Preprocessed]
    closures: dict[str, list[str]]  # a file, then every file it includes, transitively
    includes: dict[str, list[str]]  # the files a file's quoted includes name
    includers: dict[str, list[str]]  # the files whose closure holds a file (a unity build's)
    build: BuildConfig | None = None
    possible: list[str] = field(default_factory=list)  # the files that may define init functions
    port_facts: bool = True  # also read the facts only a port needs (analyze.project._module)

    def project_macros(self, path: str) -> tuple[dict[str, Macro], bool]:
        """The #defines a file sees (its own and its headers', and in a unity build its
        includers'), first definition first; and whether <iso646.h> spells its operators."""
        closure = list(self.closures[path])
        for other in self.includers[path]:
            closure.extend(p for p in self.closures[other] if p not in closure)
        macros: dict[str, Macro] = {}
        for p in closure:
            for m in self.pres[p].macros:
                if m.active is not False:
                    macros.setdefault(m.name, m)
        iso646 = any(inc.name == "iso646.h" for p in closure for inc in self.pres[p].includes)
        return macros, iso646


def prepare(items: list[tuple[str, bytes]], problems: list[FileProblem],
            build_defines: Mapping[str, str] | None = None,
            known: Mapping[str, SourceText | Source] | None = None, jobs: int | None = 1) -> Prepared:
    """Every file's directives (those of `known` files whose text is the same are reused), read
    on up to `jobs` processes (None: one per CPU)."""
    reused: dict[str, Preprocessed] = {}
    todo = []
    for path, data in items:
        old = (known or {}).get(path)
        if old is not None and old.text is data:
            reused[path] = old.pre
        else:
            todo.append((path, data))
    read = _preprocess_all(todo, build_defines, jobs)
    pres: dict[str, Preprocessed] = {}
    texts: dict[str, bytes] = {}
    for path, data in items:  # in the order given
        got = reused[path] if path in reused else read[path]
        if isinstance(got, str):
            problems.append(FileProblem(path, got))
            continue
        pres[path] = got
        texts[path] = data
    fake = {path: _IncludesOnly(pre) for path, pre in pres.items()}
    by_name = paths_by_basename(fake)
    includes = {path: _resolve_includes(path, fake[path], fake, by_name) for path in pres}
    closures = {path: _closure(path, includes) for path in pres}
    includers: dict[str, list[str]] = {path: [] for path in pres}
    for other, closure in closures.items():
        for p in closure[1:]:
            if p != other:
                includers[p].append(other)
    return Prepared(list(pres), texts, pres, closures, includes, includers)


def _preprocess_all(items: list[tuple[str, bytes]], build_defines: Mapping[str, str] | None,
                    jobs: int | None) -> dict[str, Preprocessed | str]:
    """`preprocess` each file, or why it could not be read. With processes to spare, shares of
    similar size are read on workers forked for it while this process reads its own: the
    directives of a tree are a second or two this process would otherwise spend alone before
    any task starts, and they pickle back in a fraction of that."""
    jobs = jobs if jobs is not None else _available_cpus()
    if not _worth_forking(jobs, len(items), sum(len(data) for _, data in items)):
        return _preprocess_share(items, build_defines)
    shares: list[list[tuple[str, bytes]]] = [[] for _ in range(min(jobs, len(items)))]
    # This process takes a larger share: a worker also pickles what it read, and this process
    # unpickles it after reading its own.
    weights = [OWN_SHARE_WEIGHT] + [1.0] * (len(shares) - 1)
    sizes = [0.0] * len(shares)
    for path, data in sorted(items, key=lambda item: -len(item[1])):
        i = min(range(len(shares)), key=lambda k: (sizes[k] + len(data)) / weights[k])
        shares[i].append((path, data))
        sizes[i] += len(data)
    out: dict[str, Preprocessed | str] = {}
    with ProcessPoolExecutor(max_workers=len(shares) - 1, mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [pool.submit(_preprocess_share, share, build_defines) for share in shares[1:]]
        out.update(_preprocess_share(shares[0], build_defines))
        for share, future in zip(shares[1:], futures):
            try:
                out.update(future.result())
            except Exception:  # a worker that died, a result that does not pickle: read here
                out.update(_preprocess_share(share, build_defines))
    return out


def _preprocess_share(items: list[tuple[str, bytes]],
                      build_defines: Mapping[str, str] | None) -> dict[str, Preprocessed | str]:
    out: dict[str, Preprocessed | str] = {}
    for path, data in items:
        try:
            out[path] = preprocess(path, data, build_defines)
        except Exception as e:  # said where it happened, which a pickled exception forgets
            out[path] = internal_error("reading directives of", e)
    return out


def may_define_init(prepared: Prepared, path: str) -> bool:
    """Whether a file may define an init function: `PyInit_...(...)` not followed by `;`, `,`
    or `)` (a prototype, a call, a table entry), or `PyInit_...` as a macro's argument
    (`MOD_INIT(PyInit_x)`), or a macro of its translation unit whose body spells `PyInit`, or
    names one that does (`MOD_INIT(name)`, `#define INIT PyInit_x`). A superset of the files
    `find_init_functions` finds one in (it only reads function definitions whose name is
    `PyInit_...`, a macro that expands to one, or a macro header that expands to one); the
    other files are parsed only when a module needs them."""
    pre = prepared.pres[path]
    lexed = pre.lexed or lex(prepared.texts[path])
    code = lexed.code
    for n in pre.init_names:
        before = lexed.prev_code_byte(n.start)
        if n.may_define or (before is not None and code[before] == 0x28):  # `(`
            return True
    table = MacroTable([m for p in prepared.closures[path] for m in prepared.pres[p].macros])
    spelling = table.may_expand_to("PyInit", pasting=False)
    if not spelling:
        return False
    return any(name.decode("utf-8", "replace") in spelling for name in set(IDENTIFIER.findall(code)))


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class Task:
    files: tuple[str, ...]  # parsed, in the order given
    index: frozenset[str] = frozenset()  # indexed for their link facts
    # Files that may define init functions, each with its module's files (None: the files it
    # includes and the files it links with, found in the task).
    analyse: tuple[tuple[str, tuple[str, ...] | None], ...] = ()

    def cost(self, prepared: Prepared) -> int:
        return sum(len(prepared.texts[p]) for p in self.files)

    def work(self, prepared: Prepared) -> int:
        """What the progress report counts: bytes parsed, then bytes of the modules analysed."""
        return self.cost(prepared) + sum(_analysed_bytes(prepared, root, files) for root, files in self.analyse)


def _analysed_bytes(prepared: Prepared, root: str, files: tuple[str, ...] | None) -> int:
    return sum(len(prepared.texts[p]) for p in files or prepared.closures[root])


@dataclass
class TaskResult:
    facts: dict[str, FileFacts] = field(default_factory=dict)
    error_spans: dict[str, tuple] = field(default_factory=dict)
    links: dict[str, LinkFacts] = field(default_factory=dict)
    inits: dict[str, list[InitFunction]] = field(default_factory=dict)
    modules: dict[str, list[ExtensionModule]] = field(default_factory=dict)
    module_problems: dict[str, list[FileProblem]] = field(default_factory=dict)
    header_problems: dict[str, list[FileProblem]] = field(default_factory=dict)  # init headers not read
    linked: dict[str, list[str] | None] = field(default_factory=dict)  # what each module was read with
    parse_problems: list[FileProblem] = field(default_factory=list)


_PREPARED: Prepared | None = None  # the parent's, inherited by forked workers
_LINKS: dict[str, LinkFacts] = {}  # the link facts of the files next to modules, likewise
_PROGRESS = None  # a queue of bytes done, from workers to the parent


def run_task(task: Task, report: Callable[[int], None] | None = None) -> TaskResult:
    """Parse a task's files, read what it asks for, and let the trees go."""
    prepared = _PREPARED
    assert prepared is not None and prepared.build is not None
    build = prepared.build
    report = report or _report_to_parent
    out = TaskResult()
    sources: dict[str, Source] = {}
    indexes: dict[str, FileIndex] = {}

    # The files of the modules analysed here: for a port (the names a new identifier must not
    # take), their identifiers are read while parsing.
    analysed = {p for root, files in task.analyse for p in files or prepared.closures[root]}

    def parse(path: str) -> None:
        try:
            macros, iso646 = prepared.project_macros(path)
            src = parse_source(path, prepared.texts[path], prepared.pres[path], macros, iso646,
                               prepared.port_facts and path in analysed)
            # It keeps the lexer's reading (this process's copy, shared with the parent): the
            # analysis reads names in #if branches and initialisers from it.
            sources[path] = src
            out.facts[path] = file_facts(src, prepared.includes[path])
            out.error_spans[path] = src.error_spans
        except Exception as e:
            out.parse_problems.append(FileProblem(path, internal_error("parsing", e)))

    def index(path: str) -> None:
        if path not in indexes and path in sources:
            indexes[path] = build_index(sources[path])

    for path in task.files:
        parse(path)
        report(len(prepared.texts[path]))
    for path in task.index:
        index(path)
        if path in indexes:
            out.links[path] = link_facts(indexes[path])
    candidates = None
    for root, files in task.analyse:
        for p in files or prepared.closures[root]:
            index(p)
        if root in indexes:
            tu = tu_macros(root, prepared.closures, indexes)
            inits = find_init_functions(indexes[root], tu, _build_names(build, root))
            out.inits[root] = inits
            if inits and files is None:
                # The files it links with: from the link facts of the files next to it.
                if candidates is None:
                    candidates = link_candidates(prepared.paths, prepared.closures, prepared.possible)
                try:
                    linked = link_root(root, {**_LINKS, **out.links}, candidates, prepared.closures,
                                       built_with(build, root))
                except KeyError:  # a file porter has no link facts of: the parent decides
                    linked = None
                out.linked[root] = linked
                for p in linked or ():
                    if p not in sources:
                        analysed.add(p)
                        parse(p)
                    index(p)
                files = tuple(prepared.closures[root]) + tuple(linked or ())
            if inits:
                out.modules[root], out.module_problems[root] = analyze_root(
                    root, inits, [indexes[p] for p in files or prepared.closures[root] if p in indexes],
                    prepared.port_facts)
            else:
                out.header_problems[root] = _unread_init_headers(indexes, {root: tu}, [root], build)
        report(_analysed_bytes(prepared, root, files))
    sources.clear()
    indexes.clear()
    _give_back_memory()
    return out


def _give_back_memory() -> None:
    """Return the memory a task's trees freed to the system (glibc keeps it for the process
    otherwise): the next task may be small, and the processes run side by side."""
    if _TRIM is not None:
        _TRIM(0)


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_TRIM = _malloc_trim()


def _report_to_parent(done: int) -> None:
    if _PROGRESS is not None:
        _PROGRESS.put(done)


class Runner:
    """Runs tasks, largest first, in this process and on `jobs - 1` workers forked from it;
    reports bytes parsed."""

    def __init__(self, prepared: Prepared, jobs: int | None, progress: Progress | None):
        self.prepared = prepared
        self.jobs = jobs if jobs is not None else _available_cpus()
        self.progress = progress
        self.total = 0
        self.done = 0
        self.pool: ProcessPoolExecutor | None = None
        self.workers = 0

    def plan(self, tasks: list[Task]) -> None:
        """Tell the progress report about more bytes to parse."""
        self.total += sum(t.work(self.prepared) for t in tasks)
        self._tell(0)

    def restart(self) -> None:
        """Workers forked from now on see what the parent knows now (`_LINKS`)."""
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def run(self, tasks: list[Task]) -> list[TaskResult]:
        tasks = [t for t in tasks if t.files]
        order = sorted(range(len(tasks)), key=lambda i: -tasks[i].cost(self.prepared))
        results: list[TaskResult | None] = [None] * len(tasks)
        pool = self._pool(tasks)
        if pool is not None:
            # This process takes tasks too, next to `jobs - 1` workers: it would otherwise only
            # wait, and a process more holds its own copy of what they all share.
            todo = deque(order)
            lock = threading.Lock()
            futures: dict[int, Future[TaskResult]] = {}

            def feed(_finished: object = None) -> None:
                """Give a worker that is free the largest task left."""
                with lock:
                    if not todo:
                        return
                    i = todo.popleft()
                    try:
                        futures[i] = pool.submit(run_task, tasks[i])
                    except (BrokenProcessPool, RuntimeError):
                        return  # the pool is gone: done here, below
                futures[i].add_done_callback(feed)

            for _ in range(self.workers * TASKS_AHEAD):
                feed()
            while True:
                with lock:
                    mine = todo.popleft() if todo else None
                if mine is None:
                    break
                results[mine] = run_task(tasks[mine], self._tell)
                self._drain()
            while not all(f.done() for f in futures.values()):
                self._drain()
                time.sleep(0.005)
            self._drain()
            for i, future in futures.items():
                try:
                    results[i] = future.result()
                except BrokenProcessPool:
                    # A worker died (out of memory, a crash in the parser): finish here, and stay here.
                    self.pool = None
                    self.jobs = 1
                except Exception:  # a result that does not pickle: done again here, below
                    pass
        for i in order:
            if results[i] is None:
                results[i] = run_task(tasks[i], self._tell)
        return [r for r in results if r is not None]

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def _pool(self, tasks: list[Task]) -> ProcessPoolExecutor | None:
        if self.pool is not None:
            return self.pool
        if not _worth_forking(self.jobs, len(tasks), sum(t.cost(self.prepared) for t in tasks)):
            return None
        global _PREPARED, _PROGRESS
        context = multiprocessing.get_context("fork")
        _PROGRESS = context.SimpleQueue()
        # What exists now is never collected again, here or in a worker: the workers' collectors
        # would otherwise touch, and so copy, every page they share with this process.
        gc.freeze()
        self.workers = min(self.jobs - 1, len(tasks) - 1)
        self.pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=context)
        return self.pool

    def _drain(self) -> None:
        queue = _PROGRESS
        while queue is not None and not queue.empty():
            self._tell(queue.get())

    def _tell(self, done: int) -> None:
        self.done += done
        if self.progress is not None:
            self.progress(self.done, max(self.total, self.done))


def _worth_forking(jobs: int, pieces: int, size: int) -> bool:
    """Whether `pieces` of work, `size` bytes in all, go to forked workers: there are processes
    to spare, something to split, fork to share this process's view, and enough to parse."""
    return jobs > 1 and pieces > 1 and "fork" in multiprocessing.get_all_start_methods() and size >= PARALLEL_BYTES


def _available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# --------------------------------------------------------------------------- the scan


def scan_files(items: list[tuple[str, bytes]], problems: list[FileProblem] | None = None,
               companions: Companions = NO_COMPANIONS, build=None, *, jobs: int | None = None,
               file_facts_for: str = "all", progress: Progress | None = None, port_facts: bool = True) -> Analysis:
    """Facts for every module in `items`. `file_facts_for` says which other files' facts to
    read (their error spans): "all", "c" (the sources a table lists) or "none" (a port);
    `port_facts` whether to read the facts only a port needs too."""
    global _PREPARED
    problems = list(problems or [])
    context = ModuleContext.of(companions, build)
    prepared = prepare(items, problems, dict(context.build.defines), jobs=jobs)
    prepared.build = context.build
    prepared.port_facts = port_facts
    _PREPARED = prepared
    runner = Runner(prepared, jobs, progress)
    try:
        return _scan(prepared, runner, problems, context, file_facts_for)
    finally:
        runner.close()
        _PREPARED = None


def _scan(prepared: Prepared, runner: Runner, problems: list[FileProblem], context: ModuleContext,
          file_facts_for: str) -> Analysis:
    global _LINKS
    paths, closures = prepared.paths, prepared.closures
    possible = prepared.possible = [p for p in paths if may_define_init(prepared, p)]
    # The lexer's spans and blanked copies serve the tasks' masking too: workers share this
    # process's copy (forked), which costs less than lexing every file twice.
    # A small header several modules include (posixmodule.h) is parsed once per module: one
    # task per module is worth more than the parse it saves, on a machine with cores to spare.
    groups = _connected(possible, closures, paths, lambda p: len(prepared.texts[p]) >= SHARED_PARSE_BYTES)
    # The files that may be part of what may be a module (next to it, or sharing its header:
    # part_roots): those that may be part of one group's modules only (_io/, _sqlite/) are
    # parsed in its task, once, for their link facts and its analysis both.
    group_of_root = {root: i for i, (roots, _) in enumerate(groups) for root in roots}
    groups_of = {c: {group_of_root[r] for r in rs}
                 for c, rs in part_roots(link_candidates(paths, closures, possible), possible, closures).items()}
    nearby = list(groups_of)
    alone = {c: next(iter(g)) for c, g in groups_of.items() if len(g) == 1}
    groups = [(roots, _with_nearby(files, i, alone, prepared)) for i, (roots, files) in enumerate(groups)]
    in_groups = {p for _, files in groups for p in files}
    # 1. The other files next to what may be a module, for their link facts; and the files
    #    asked for only for their own facts.
    need_links = [p for p in paths if any(p in closures[c] for c in nearby if c not in alone)]
    asked = [p for p in paths if p not in in_groups and p not in need_links and (
        file_facts_for == "all" or (file_facts_for == "c" and p.endswith(".c")))]
    first = [Task(tuple(files), frozenset(files) & set(need_links)) for files in _chunks(need_links + asked, prepared,
                                                                                      runner.jobs)]
    # 2. The files that may define init functions, grouped by the headers they share: each
    #    module found is read with the files it links with.
    second = [Task(tuple(files), frozenset(files), tuple((r, None) for r in roots)) for roots, files in groups]
    runner.plan(first + second)
    results = runner.run(first)
    links: dict[str, LinkFacts] = {}
    for r in results:
        links.update(r.links)
    _LINKS = links
    runner.restart()
    results += runner.run(second)
    inits: dict[str, list[InitFunction]] = {}
    used: dict[str, list[str] | None] = {}
    for r in results:
        inits.update(r.inits)
        links.update(r.links)
        used.update(r.linked)
    roots = [p for p in paths if inits.get(p)]
    # 3. A module read with other files than it links with (a file that may have defined an
    #    init function but did not is one more candidate): read again.
    linked = link_files(links, paths, closures, roots, prepared.build)
    again = [Task(tuple(_module_files(r, linked)), analyse=((r, tuple(_module_files(r, linked))),))
             for r in roots if used.get(r) != linked[r]]
    runner.plan(again)
    redone = runner.run(again)
    modules: dict[str, list[ExtensionModule]] = {}
    module_problems: dict[str, list[FileProblem]] = {}
    for r in results + redone:
        modules.update(r.modules)
        module_problems.update(r.module_problems)
    _LINKS = {}
    return _assemble(prepared, results + redone, problems, roots, inits, modules, module_problems, context)


def _with_nearby(files: list[str], group: int, alone: Mapping[str, int], prepared: Prepared) -> list[str]:
    """A group's files and those of the files that may be part of its modules only (`alone`:
    each with its group), with the headers they include, in input order."""
    added = {p for c, g in alone.items() if g == group for p in prepared.closures[c]} - set(files)
    if not added:
        return files
    rank = {p: i for i, p in enumerate(prepared.paths)}
    return sorted([*files, *added], key=rank.__getitem__)


def _module_files(root: str, linked: dict[str, list[str]]) -> list[str]:
    files = list(_PREPARED.closures[root]) if _PREPARED else []
    files += [p for p in linked.get(root, []) if p not in files]
    return files


def _connected(starts: list[str], closures: Mapping[str, list[str]], paths: list[str],
               joins: Callable[[str], bool] = lambda _: True) -> list[tuple[list[str], list[str]]]:
    """Groups of `starts` whose closures share a file that `joins` (a file worth parsing once):
    each group's starts, and the files of their closures, in input order."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    roots = set(starts)
    for start in starts:
        find(start)
        for p in closures[start]:
            if p in roots or joins(p):  # a module file another includes (a unity build) always joins
                parent[find(p)] = find(start)
    heads: dict[str, list[str]] = {}
    members: dict[str, set[str]] = {}
    for start in starts:
        key = find(start)
        heads.setdefault(key, []).append(start)
        members.setdefault(key, set()).update(closures[start])
    rank = {p: i for i, p in enumerate(paths)}
    return [(heads[key], sorted(members[key], key=rank.__getitem__)) for key in heads]


def _chunks(files: list[str], prepared: Prepared, jobs: int) -> list[list[str]]:
    """Files parsed on their own, in a few tasks of about the same size (largest files first
    into the smallest task), each in input order."""
    count = max(1, min(len(files), 4 * max(jobs, 1)))
    chunks: list[list[str]] = [[] for _ in range(count)]
    sizes = [0] * count
    rank = {p: i for i, p in enumerate(prepared.paths)}
    for path in sorted(files, key=lambda p: -len(prepared.texts[p])):
        i = sizes.index(min(sizes))
        chunks[i].append(path)
        sizes[i] += len(prepared.texts[path])
    return [sorted(c, key=rank.__getitem__) for c in chunks if c]


def _assemble(prepared: Prepared, results: list[TaskResult], problems: list[FileProblem], roots: list[str],
              inits: dict[str, list[InitFunction]], modules: dict[str, list[ExtensionModule]],
              module_problems: dict[str, list[FileProblem]], context: ModuleContext) -> Analysis:
    facts: dict[str, FileFacts] = {}
    errors: dict[str, tuple] = {}
    parse_problems: dict[str, FileProblem] = {}
    for r in results:
        facts.update(r.facts)
        errors.update(r.error_spans)
        for p in r.parse_problems:
            parse_problems.setdefault(p.file, p)
    found = list(problems) + [parse_problems[p] for p in prepared.paths if p in parse_problems]
    found += _unread_inits({p: prepared.pres[p] for p in prepared.paths if p not in parse_problems},
                           {i.name for root in roots for i in inits[root]})
    headers: dict[str, list[FileProblem]] = {}
    for r in results:
        headers.update(r.header_problems)
    found += [p for path in prepared.paths for p in headers.get(path, ())]
    finished = []
    for root in roots:
        finished += [context.finish(m) for m in modules.get(root, [])]
        found += module_problems.get(root, [])
    finished.sort(key=lambda m: (m.init.file, m.init.span.start))
    sources = {p: SourceText(p, prepared.texts[p], replace(prepared.pres[p], lexed=None), errors.get(p, ()))
               for p in prepared.paths}
    found += _silent_inits({p: s for p, s in sources.items() if p not in parse_problems}, prepared.closures,
                           finished, found)
    return Analysis(tuple(finished), tuple(facts[p] for p in sorted(facts)), tuple(found), sources,
                    context.build.defines, prepared.port_facts)


def reparse(sources: Mapping[str, SourceText | Source], new_text: Mapping[str, bytes],
            build_defines: Mapping[str, str] | None = None) -> dict[str, Source]:
    """Parse the files whose text changed, each seeing the macros of the others as they are now
    (a port may have changed a header and added includes); the others are not parsed again."""
    problems: list[FileProblem] = []
    items = [(path, new_text.get(path, src.text)) for path, src in sources.items()]
    items += [(path, text) for path, text in new_text.items() if path not in sources]  # a file the port made
    prepared = prepare(items, problems, build_defines, sources)
    out = {}
    for path in new_text:
        if path in prepared.pres:
            macros, iso646 = prepared.project_macros(path)
            out[path] = parse_source(path, prepared.texts[path], prepared.pres[path], macros, iso646)
    return out
