"""Shared fixtures: a hermetic environment, one built-in data cache per test session, and ways to
call the CLI (in-process, or as a real subprocess where the process itself is under test).

The suite runs in parallel (pytest-xdist, configured in pyproject.toml): everything a test writes
goes under its own temporary folder, caches included, and no test relies on a fixed port.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Any accidental hub call fails fast instead of hanging.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
# Library caches go to a folder of this test process, never the user's ~/.cache: Hugging Face's (datasets'
# Arrow caches of loaded parquet files, the hub cache) and matplotlib's. Set before anything imports them.
_CACHES = tempfile.mkdtemp(prefix="vlmbench-tests-caches-")
os.environ["HF_HOME"] = os.path.join(_CACHES, "huggingface")
os.environ["MPLCONFIGDIR"] = os.path.join(_CACHES, "matplotlib")
os.environ.pop("HF_DATASETS_CACHE", None)
os.environ.pop("HF_HUB_CACHE", None)

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("VLMBENCH_SHARED", REPO.parent / "shared"))
PLUGIN = REPO / "tests" / "plugin_example"


def require_modules(*names: str) -> None:
    """Skip the calling test module unless every module in ``names`` is installed; checked without importing
    them (importing torch, transformers or trl at collection costs every worker seconds)."""
    import importlib.util

    missing = [name for name in names if importlib.util.find_spec(name) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}", allow_module_level=True)


def pytest_unconfigure(config: pytest.Config) -> None:
    shutil.rmtree(_CACHES, ignore_errors=True)


def pytest_runtest_logfinish(nodeid: str, location: tuple[str, int | None, str]) -> None:
    """After each test, its garbage is collected and every object still alive is kept out of the
    collector's later full passes (``gc.freeze``). A worker holds torch, transformers, datasets and the
    module fixtures: hundreds of thousands of objects that each full pass walked again, 12 to 19% of a
    worker's CPU (measured with ``gc.callbacks``). The code under test is not changed, only how often
    the collector looks at what earlier tests left."""
    gc.collect()
    gc.freeze()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Parallel runs (``--dist loadgroup``) spread the tests one by one over the workers, except that the
    tests of a module that share a module-scoped fixture (a model run, tiny models, a server) stay on
    one worker, so that the fixture is built once."""
    for item in items:
        fixtures = getattr(item, "_fixtureinfo", None)
        module = getattr(item, "module", None)
        if fixtures is None or module is None:
            continue
        if any(defs[-1].scope == "module" for defs in fixtures.name2fixturedefs.values() if defs):
            item.add_marker(pytest.mark.xdist_group(module.__name__))


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """Say so when the grouping above is not in effect (pytest-xdist marks a grouped test's node id with
    ``@group``; it cannot with pytest 9.2's node ids, pytest-dev/pytest-xdist#1386): each worker would then
    build the module-scoped fixtures again."""
    if not session.config.getoption("loadgroup", default=False):
        return
    grouped = [item for item in session.items if item.get_closest_marker("xdist_group")]
    if grouped and not any("@" in item.nodeid for item in grouped):
        warnings.warn(pytest.PytestConfigWarning("--dist loadgroup is not grouping tests (pytest-xdist#1386): use pytest < 9.2"), stacklevel=1)


def _session_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder shared by every worker of this test session (under xdist, the parent of the workers' own)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session", autouse=True)
def data_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One generated-data cache for the whole session, shared by the parallel workers: the built-in
    sets are generated once (by a small run, the way a user's first run does), by whichever worker
    comes first, while the others wait for it."""
    from filelock import FileLock

    root = _session_root(tmp_path_factory)
    path = root / "vlmbench-cache"
    os.environ["VLMBENCH_CACHE_DIR"] = str(path)
    with FileLock(str(root / "vlmbench-cache.lock")):
        if not (path / "builtin").is_dir():
            scratch = Path(tempfile.mkdtemp(prefix="first-run-", dir=root))
            # Not checked: should it fail, the tests that need the data generate it, and say what fails.
            # builtin:typographic (the concepts, and over-refusal's benign scenes) and builtin:shapes-vqa: every set the
            # `all` tasks read, so that no two workers generate one at the same time (the generator takes no lock)
            tasks = "alignment-image,general-capability,over-refusal"
            cli("run", "--model", "random", "--tasks", tasks, "--limit", "1", "--no_store", "--output_path", str(scratch), check=False)
            shutil.rmtree(scratch, ignore_errors=True)
    return path


@pytest.fixture(scope="session")
def random_run(data_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of one complete run of the `random` baseline (`--tasks all`, no response store): what a
    leaderboard bundle must hold. Made once per test session, by whichever worker needs it first, and shared;
    tests read it (a test that changes a run folder works on its own copy)."""
    from filelock import FileLock

    root = _session_root(tmp_path_factory)
    output = root / "random-run-all"
    with FileLock(str(root / "random-run-all.lock")):
        if not (output / "complete").is_file():  # a worker's failed try is made again, and fails the test that needs it
            shutil.rmtree(output, ignore_errors=True)
            cli("run", "--model", "random", "--tasks", "all", "--no_store", "--output_path", str(output))
            (output / "complete").touch()
    return run_dir(output)


@pytest.fixture(scope="session")
def shared_reference() -> Path:
    """The study's reference files beside the project; the test skips when they are absent."""
    path = SHARED / "reference" / "unsafeconcepts"
    if not (path / "metadata.jsonl").is_file():
        pytest.skip(f"reference data not found at {path}")
    return path


# ---------------------------------------------------------------------------------------------------
# Calling the CLI


def vlmbench(*args: str, check: bool = True, env: dict[str, str] | None = None, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m vlmbench ARGS`` in a subprocess (the real CLI, entry points included).

    For tests of the process itself: its exit code, what a fresh interpreter sees (installed plugins,
    missing packages), signals. Everything else calls :func:`cli`, which is the same code in-process."""
    proc = subprocess.run(
        [sys.executable, "-m", "vlmbench", *args], capture_output=True, text=True, env={**os.environ, **(env or {})}, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"vlmbench {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@contextlib.contextmanager
def environment(env: dict[str, str] | None) -> Iterator[None]:
    """``os.environ`` updated with ``env`` for the duration, then restored exactly."""
    saved = {name: os.environ.get(name) for name in env or {}}
    os.environ.update(env or {})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def cli(*args: str, check: bool = True, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``vlmbench ARGS`` in this process (``vlmbench.cli.main``), with stdout and stderr captured;
    returns what :func:`vlmbench` returns, so a test reads exit code and output alike."""
    out, err = io.StringIO(), io.StringIO()
    with environment(env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        from vlmbench.cli import main

        try:
            code = main(list(args))
        except SystemExit as exc:  # argparse's own usage errors
            code = exc.code if isinstance(exc.code, int) else 1
    proc = subprocess.CompletedProcess(["vlmbench", *args], code, out.getvalue(), err.getvalue())
    if check and proc.returncode != 0:
        raise AssertionError(f"vlmbench {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def hub_run(data: Path, output: Path, *extra: str, model: str = "always-unsafe", tasks: str = "perception-image,alignment-image") -> list[str]:
    """The arguments of a ``vlmbench run`` on the hub variant, with ``data`` as the local copy of yiting/UnsafeConcepts."""
    return [
        "run",
        "--model",
        model,
        "--tasks",
        tasks,
        "--data",
        "hub",
        "--data_files",
        f"yiting/UnsafeConcepts={data}",
        "--output_path",
        str(output),
        *extra,
    ]


HUB_CONCEPTS = [("Swastika", "Hate"), ("Gun violence", "Violence"), ("Knife attacks", "Violence"), ("sexual harassment", "Harassment")]


def unsafeconcepts_parquet(folder: Path, images: list[bytes], mode: str | None = None) -> Path:
    """A copy of yiting/UnsafeConcepts in its published format (parquet, image bytes inside the file), one row
    per encoded image, the concepts of :data:`HUB_CONCEPTS` in turn; written over an earlier copy in ``folder``.
    ``mode``: the colour mode its image feature has images converted to."""
    import datasets

    rows = [
        {"image": {"bytes": data, "path": None}, "unsafe_concept": concept, "category": category}
        for data, (concept, category) in zip(images, HUB_CONCEPTS * len(images))
    ]
    features = datasets.Features(
        {"image": datasets.Image(mode=mode), "unsafe_concept": datasets.Value("string"), "category": datasets.Value("string")}
    )
    (folder / "data").mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(rows, features=features).to_parquet(str(folder / "data" / "train-00000-of-00001.parquet"))
    return folder


def bundle_members(path: Path) -> dict[str, bytes]:
    """A leaderboard bundle's members (name: bytes), in archive order: a fresh dict the caller may change, of the
    bytes read once per version of the file (tests read the same pristine bundle again and again)."""
    stat = path.stat()
    return dict(_bundle_members(path, stat.st_size, stat.st_mtime_ns))


@functools.lru_cache(maxsize=4)
def _bundle_members(path: Path, size: int, mtime_ns: int) -> dict[str, bytes]:
    import tarfile

    with tarfile.open(path) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive.getmembers()}  # type: ignore[union-attr]


def run_dir(output: Path) -> Path:
    """The single run folder a `vlmbench run --output_path output` created."""
    runs = sorted(p.parent for p in output.glob("*/*/run.json"))
    assert len(runs) == 1, runs
    return runs[0]


def default_signals() -> None:
    """For ``subprocess.Popen(preexec_fn=...)`` in tests that stop the command with a signal: SIGINT, SIGTERM and
    SIGHUP as a terminal gives them. A shell that starts the tests in the background (``pytest &``) or ``nohup``
    sets some to be ignored, and the command keeps a signal it inherits as ignored."""
    import signal

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def load_results(output: Path) -> dict[str, Any]:
    """The results.json of the single run under ``output``."""
    results: dict[str, Any] = json.loads((run_dir(output) / "results.json").read_text())
    return results


def read_samples(output: Path, task: str) -> list[dict[str, Any]]:
    """The per-sample records of ``task`` in the single run under ``output``."""
    lines = (run_dir(output) / "samples" / f"{task}.jsonl").read_text(encoding="utf-8").split("\n")[:-1]
    return [json.loads(line) for line in lines]


@dataclass(frozen=True)
class Run:
    """One finished ``vlmbench run``: its exit code, what it printed, and what it wrote."""

    returncode: int
    stdout: str
    stderr: str
    output: Path  # the --output_path

    @property
    def run_dir(self) -> Path:
        """The run folder (``output/<model>/<timestamp>``)."""
        return run_dir(self.output)

    @property
    def results(self) -> dict[str, Any]:
        """results.json."""
        return load_results(self.output)

    @property
    def manifest(self) -> dict[str, Any]:
        """run.json."""
        manifest: dict[str, Any] = json.loads((self.run_dir / "run.json").read_text())
        return manifest

    def samples(self, task: str) -> list[dict[str, Any]]:
        """The per-sample records of ``task``."""
        return read_samples(self.output, task)

    def metrics(self, task: str) -> dict[str, Any]:
        """The headline metrics of ``task``."""
        metrics: dict[str, Any] = self.results["tasks"][task]["metrics"]
        return metrics


RunModel = Callable[..., Run]


@contextlib.contextmanager
def plugged_in(plugin: object) -> Iterator[None]:
    """``plugin`` (an object with ``@vlmbench.hookimpl`` methods) registered for the block, as an installed
    plugin's module is, and unregistered after it."""
    from vlmbench.pluginmanager import plugin_manager

    plugin_manager().register(plugin, name=f"test-plugin-{type(plugin).__qualname__}")
    try:
        yield
    finally:
        plugin_manager().unregister(plugin)


@pytest.fixture
def run_model(tmp_path: Path) -> RunModel:
    """``run_model(model, tasks, *flags, limit=, seed=, model_args=, output=, env=, check=, subprocess=)``:
    ``vlmbench run`` into a fresh folder under the test's tmp_path; returns a :class:`Run`.

    In-process by default (``vlmbench.cli.main``, the code the command runs); ``subprocess=True``
    runs ``python -m vlmbench`` where a separate interpreter is what the test is about."""
    count = 0

    def run(
        model: str,
        tasks: str,
        *flags: str,
        limit: int | None = None,
        seed: int | None = None,
        model_args: str | None = None,
        output: Path | None = None,
        env: dict[str, str] | None = None,
        check: bool = True,
        subprocess: bool = False,
    ) -> Run:
        nonlocal count
        count += 1
        output = output or tmp_path / f"run-{count}"
        args = ["run", "--model", model, "--tasks", tasks, "--output_path", str(output)]
        for flag, value in (("--limit", limit), ("--seed", seed), ("--model_args", model_args)):
            if value is not None:
                args += [flag, str(value)]
        proc = (vlmbench if subprocess else cli)(*args, *flags, check=check, env=env)
        return Run(proc.returncode, proc.stdout, proc.stderr, output)

    return run


# ---------------------------------------------------------------------------------------------------
# The example third-party plugin


def install_into_target(source: Path, target: Path) -> None:
    """pip-install a package folder into ``target`` (never the live environment), building from a
    copy so that no build/ or egg-info folder is left in the source tree."""
    copy = target.parent / f"{source.name}-src"
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--disable-pip-version-check",
            "-q",
            "install",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(copy),
        ],
        check=True,
        capture_output=True,
        cwd=copy,
    )


def with_path(*folders: Path) -> dict[str, str]:
    """Environment for a subprocess that also imports from ``folders`` (plugins installed into a target)."""
    extra = os.pathsep.join(str(f) for f in folders)
    return {"PYTHONPATH": extra + (os.pathsep + os.environ["PYTHONPATH"] if os.environ.get("PYTHONPATH") else "")}


@pytest.fixture(scope="session")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example third-party plugin (tests/plugin_example), pip-installed into a temporary target folder
    once per session (the parallel workers share it)."""
    from filelock import FileLock

    root = _session_root(tmp_path_factory)
    target = root / "example-plugin" / "site"
    with FileLock(str(root / "example-plugin.lock")):
        if not target.is_dir():
            target.parent.mkdir(parents=True, exist_ok=True)
            install_into_target(PLUGIN, target)
    return target


@pytest.fixture(scope="session")
def installed_plugin(plugin_site: Path) -> dict[str, str]:
    """The environment that makes a ``vlmbench`` subprocess see the example plugin; the user's
    environment is never touched."""
    return with_path(plugin_site)


@pytest.fixture
def plugin_in_process(plugin_site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The example plugin visible to in-process runs for one test: its target folder on ``sys.path``
    (where entry points are discovered) and a fresh plugin manager; both are undone afterwards."""
    from vlmbench.pluginmanager import plugin_manager

    monkeypatch.syspath_prepend(str(plugin_site))
    plugin_manager.cache_clear()
    yield plugin_site
    monkeypatch.undo()
    plugin_manager.cache_clear()


# ---------------------------------------------------------------------------------------------------
# Pages in a real headless browser

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless Chromium (1400 x 1000) through selenium, one per test module; skips without it."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER} (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(arg)
    options.binary_location = str(CHROMIUM)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()
