"""The library entry point: ``evaluate(EvalConfig(...))`` runs tasks on a model and returns the results.

This is the one orchestration path: the ``vlmbench run`` command, the tests, the benchmarks and
the leaderboard's sample site all call it. A run predicts every task (each response stored the
moment it arrives), writes the manifest as it goes, then scores through the one scoring path.

    from vlmbench import EvalConfig, evaluate
    result = evaluate(EvalConfig(model="random", tasks="perception-image", limit=10, output_path="results"))
    print(result.results["tasks"]["perception-image"]["metrics"]["accuracy"])
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vlmbench.errors import UserError
from vlmbench.records import Results, RunManifest

if TYPE_CHECKING:  # imported when a run starts, not with the library
    from vlmbench.runner import TaskPrediction
    from vlmbench.store import ResponseStore

DEFAULT_DATA = "builtin"


@dataclass(frozen=True)
class EvalConfig:
    """Everything that decides what a run does. Field names follow the CLI flags.

    ``model_args`` takes a mapping or lm-eval's ``"k=v,k2=v2"`` text; ``tasks`` takes a list or a
    comma-separated text of task names, group names and globs. ``gen_kwargs`` (a mapping or
    ``"k=v,..."`` text) and ``system_instruction`` override every task's settings, over those of
    ``protocol`` (``default``: the tasks' own; ``paper``: the study's seeded sampling); see
    :mod:`vlmbench.overrides`.
    """

    model: str
    model_args: Mapping[str, str] | str = field(default_factory=dict)
    tasks: Sequence[str] | str = "all"
    include_path: Sequence[Path | str] = ()
    limit: int | float | None = None  # documents per task, or a fraction (0 < x < 1) of each task's
    seed: int = 0
    batch_size: int | str | None = None
    data: str = DEFAULT_DATA
    data_files: Mapping[str, str] = field(default_factory=dict)
    options_file: Path | str | None = None
    output_path: Path | str = "results"
    store: Path | str | None = None
    use_store: bool = True
    reuse_sampled: bool = False
    predict_only: bool = False
    gen_kwargs: Mapping[str, Any] | str = field(default_factory=dict)  # over each task's generation_kwargs
    protocol: str = "default"  # default | paper (temperature 1.0, top_p 0.9, max_new_tokens 512, seeded)
    system_instruction: str | None = None
    judge: Sequence[str] | str | None = None
    judge_args: Mapping[str, str] | str = field(default_factory=dict)


@dataclass(frozen=True)
class RunResult:
    """What a run produced: its folder, its manifest and (unless predict-only) its results."""

    run_dir: Path
    manifest: RunManifest
    results: Results | None

    @property
    def requests_sent(self) -> int:
        """Requests sent to the model in this run (all tasks)."""
        return sum(t["requests"]["sent"] for t in self.manifest.get("tasks", {}).values())

    @property
    def requests_reused(self) -> int:
        """Answers reused from the response store (all tasks)."""
        return sum(t["requests"]["reused"] for t in self.manifest.get("tasks", {}).values())


def parse_key_values(text: str | Mapping[str, str] | None, flag: str = "--model_args") -> dict[str, str]:
    """``k=v,k2=v2`` (the value of ``flag``) into a dict; a bare word, an empty key or a key given twice
    is a one-line error that never shows a value (it may be a secret). A mapping passes through."""
    if isinstance(text, Mapping):
        return {str(k): str(v) for k, v in text.items()}
    from vlmbench.redact import is_secret_name

    args: dict[str, str] = {}
    previous = ""
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            if is_secret_name(previous):  # most likely the rest of a secret holding a comma: never shown
                raise UserError(f"{flag}: the part after {previous}=... is not key=value (not shown); a value cannot hold a comma")
            raise UserError(f"{flag}: '{item}' is not key=value; write e.g. pretrained=org/model,dtype=bfloat16")
        previous = key.strip()
        if previous in args:
            raise UserError(f"{flag}: '{previous}' is given twice; give each setting once")
        args[previous] = value.strip()
    return args


def parse_data_files(values: Sequence[str] | None) -> dict[str, str]:
    """``--data_files HUB_ID=LOCAL_PATH`` values (repeatable) as a mapping; a malformed one is a one-line error."""
    mapping: dict[str, str] = {}
    for item in values or []:
        hub_id, sep, local = item.partition("=")
        if not sep or not hub_id or not local:
            raise UserError(f"--data_files: '{item}' is not HUB_ID=LOCAL_PATH")
        if hub_id in mapping:
            raise UserError(f"--data_files: '{hub_id}' is given twice ({mapping[hub_id]} and {local}); give each dataset one copy")
        mapping[hub_id] = local
    return mapping


# The local copies of hub datasets (--data_files) are this process's while a run reads them: two runs in two threads
# of one program take turns, so that neither reads the other's copies.
_ONE_RUN_AT_A_TIME = threading.RLock()


def evaluate(config: EvalConfig) -> RunResult:
    """Run ``config``: predict every selected task (storing each response), then score.

    Raises :class:`~vlmbench.errors.UserError` for anything the user can fix, a field of ``config`` of the
    wrong type or value included (before anything is written). Under data parallelism every process calls
    this; non-main processes return a result without scores. Calls from several threads run one at a time.
    """
    from vlmbench.configcheck import checked_config

    config = checked_config(config)
    with _ONE_RUN_AT_A_TIME:
        return _evaluate(config)


def _evaluate(config: EvalConfig) -> RunResult:
    from vlmbench.backend import (
        BackendOptions,
        GenerationSettings,
        backend_cacheable,
        backend_error_summary,
        backend_identity,
        build_backend,
        close_backend,
    )
    from vlmbench.cache import check_cache_dir
    from vlmbench.data.sources import Loaded
    from vlmbench.distributed import processes
    from vlmbench.errors import TaskSkipped
    from vlmbench.forked import Background
    from vlmbench.overrides import apply_overrides, is_default_protocol, parse_gen_kwargs, protocol_generation
    from vlmbench.pluginmanager import backend_spec
    from vlmbench.progress import log as progress_log
    from vlmbench.progress import request_plan, throughput
    from vlmbench.redact import hash_secrets
    from vlmbench.results import (
        ScoredTask,
        manifest_task,
        now,
        provenance,
        redact_args,
        redact_identity,
        score_run,
        scoring_cost,
        write_json,
    )
    from vlmbench.runfolder import MANIFEST
    from vlmbench.runner import RunContext, predict_task, prepare
    from vlmbench.scoring.judging import judged_in_process
    from vlmbench.scoring.relative_judge import require_judge
    from vlmbench.store import ResponseStore, default_store_path

    started = time.perf_counter()
    check_cache_dir()  # generated data, kept hashes and remembered loads go there: a bad one is one line now, not a traceback later
    _use_data_files(config.data_files)
    gen_kwargs = parse_gen_kwargs(config.gen_kwargs, protocol_generation(config.protocol))
    options_file = _options_file(config.options_file)
    options_path = options_file["path"] if options_file else None
    tasks = apply_overrides(select_tasks(config), gen_kwargs, config.system_instruction, config.protocol, options_path)
    _check_data_files_are_read(config, tasks)
    for task in tasks:  # settings no backend can use are refused before anything runs
        GenerationSettings.from_mapping(task.get("generation_kwargs", {}))
    model_args = parse_key_values(config.model_args)
    spec = backend_spec(config.model)
    judge_names, judge_args = _checked_judges(config, tasks)  # before the model is loaded: a mistake there costs nothing
    group = processes()
    options = BackendOptions(batch_size=config.batch_size, seed=config.seed, rank=group.rank, world_size=group.world, local_rank=group.local_rank)
    backend = build_backend(spec, model_args, options)
    store: ResponseStore | None = None
    # A task whose records the run kept is handed over to be scored (by a child process while the next task is
    # predicted, when that is safe: vlmbench.forked), or by this process once every task is predicted.
    background: Background[tuple[Any, ...], ScoredTask] = Background(_score_handed, allowed=group.world == 1 and not config.predict_only)
    predictions: list[Any] = []
    try:
        named = backend_identity(backend, config.model, model_args)
        identity = redact_identity(named)
        versions = provenance()
        if config.use_store and backend_cacheable(backend):
            store = ResponseStore(Path(config.store) if config.store else default_store_path(), provenance=versions)
        judging = _judging(config, judge_names, judge_args, store.path if store else None)
        label = config.model + ("_" + (model_args.get("pretrained") or model_args.get("model") or "") if model_args else "")
        run_dir = Path(group.share(str(new_run_dir(Path(config.output_path) / slug(label))) if group.is_main else None))
        group.wait()
        ctx = RunContext(
            backend=backend,
            backend_name=config.model,
            model_identity=identity,
            key_identity=hash_secrets(named),  # not the redacted one: "***" would make models with different arguments one
            seed=config.seed,
            limit=config.limit,
            store=store,
            reuse_sampled=config.reuse_sampled,
            shard=(group.rank, group.world),
        )
        if config.predict_only:  # nothing scores the records: none is kept
            ctx.keep_written = 0
        manifest: RunManifest = {
            "schema_version": 1,
            "vlmbench_version": _version(),
            "created": now(),
            "model": {"backend": config.model, "args": redact_args(model_args), "identity": identity},
            "config": {
                "tasks": [t.name for t in tasks],
                "seed": config.seed,
                "limit": config.limit,
                "gen_kwargs": gen_kwargs,
                "protocol": config.protocol,
                "default_protocol": is_default_protocol(config.protocol, gen_kwargs, config.system_instruction),
                "system_instruction": config.system_instruction or None,
                "options_file": options_file,
                "data": config.data,
                "batch_size": config.batch_size,
                "processes": group.world,
                "store": str(store.path) if store else None,
                "judges": list(judging.names),
                "judge_args": redact_args(judging.args),
                "judge_store": str(judging.options.store) if judging.options.store else None,
            },
            "provenance": versions,
            "tasks": {},
            "complete": False,
        }
        prepared: list[tuple[list[Any], Any]] = []
        skipped: dict[str, str] = {}
        selected, tasks = tasks, []
        loaded: Loaded = {}  # tasks that read the same dataset share one load
        for task in selected:
            try:
                require_judge(task, judging)  # answers only a model judge can score, and none configured
                prepared.append(prepare(task, ctx.seed, ctx.limit, ctx.overrides, loaded))
            except TaskSkipped as exc:  # e.g. no captions for a text task on the hub data: the others run
                skipped[task.name] = str(exc)
                progress_log.warning("%s", exc)
                continue
            tasks.append(task)
            if prepared[-1][1].safe_controls_missing:
                progress_log.warning("%s", prepared[-1][1].safe_controls_missing)
        del loaded  # each task's table holds what it reads: a dataset is let go once its last task is answered
        if not tasks:
            raise UserError("no task left to run: " + "; ".join(skipped.values()))
        manifest["config"]["tasks"] = [t.name for t in tasks]
        manifest["config"]["skipped_tasks"] = skipped
        manifest["config"]["safe_controls_missing"] = {
            t.name: table.safe_controls_missing for t, (_, table) in zip(tasks, prepared) if table.safe_controls_missing
        }
        if group.is_main:
            write_json(run_dir / MANIFEST, manifest)  # from the start: a run killed in its first task is a partial run folder
            progress_log.info("%s", request_plan(tasks, [len(samples) for samples, _ in prepared], config.limit))
        for position, task in enumerate(tasks):
            name = f"{task.name}.jsonl" if group.world == 1 else f"{task.name}.rank{group.rank}.jsonl"
            ready, prepared[position] = prepared[position], ([], None)  # its data is let go once answered (memory maps too)
            prediction = predict_task(task, ctx, run_dir / "samples" / name, ready)
            predictions.append(prediction)
            del ready
            group.wait()
            if group.is_main:
                if group.world > 1:
                    _merge_shards(prediction, run_dir / "samples", group.world)
                manifest["tasks"][task.name] = manifest_task(prediction, run_dir, list(judging.names) or None)
                write_json(run_dir / MANIFEST, manifest)
                if prediction.written is not None and judged_in_process(manifest["tasks"][task.name], judging):
                    entry = json.loads(json.dumps(manifest["tasks"][task.name]))  # as scoring reads it back from run.json
                    # The run keeps the records too: a lost child's task is scored again from them, and a run that
                    # stops before scoring writes their deferred lines (complete_samples_file).
                    background.submit(task.name, (entry, run_dir, judging, prediction.written), scoring_cost(entry))
        if errors := backend_error_summary(backend):
            manifest["errors"] = errors
        if group.is_main and store is not None and (reused_from := _reused_provenance(predictions, store)):
            manifest["reused_provenance"] = reused_from
    except BaseException:
        background.close()
        _complete_samples(predictions)
        raise
    finally:
        close_backend(backend)
        if store is not None:  # now, not whenever it is collected: its write-ahead log is folded back into the file
            store.close()
    if not group.is_main:
        return RunResult(run_dir, manifest, None)
    manifest["complete"] = True
    manifest["seconds"] = round(time.perf_counter() - started, 3)
    write_json(run_dir / MANIFEST, manifest)
    progress_log.info("%s", throughput(manifest["tasks"]))
    if config.predict_only:
        return RunResult(run_dir, manifest, None)
    written = {p.task.name: p.written for p in predictions if p.written is not None}
    try:
        return RunResult(run_dir, manifest, score_run(run_dir, judging, written, background))  # waits for the last child
    except BaseException:  # scoring failed (a judge, Ctrl-C): a child still working is stopped, and the samples
        background.close()  # files keep every answer, unscored
        _complete_samples(predictions)
        raise


def _complete_samples(predictions: Sequence[Any]) -> None:
    """Write the deferred lines of every predicted task whose samples file lacks them (a run stopping early)."""
    from vlmbench.runner import complete_samples_file

    for prediction in predictions:
        if prediction.written:
            with contextlib.suppress(OSError):
                complete_samples_file(prediction.samples_file, prediction.written)


def _score_handed(item: tuple[Any, ...]) -> Any:
    """Score a task handed to a child process: (manifest entry, run folder, judging, kept records)."""
    from vlmbench.results import score_task_file

    return score_task_file(*item)


def _check_data_files_are_read(config: EvalConfig, tasks: Sequence[Any]) -> None:
    """A one-line error for a ``--data_files`` dataset that no selected task reads: a mistyped id, or a local copy
    of a hub dataset given to a run on the built-in data, would otherwise be ignored."""
    from vlmbench.data.sources import datasets_read

    read = sorted({name for task in tasks for name in datasets_read(task) if not name.startswith("builtin:")})
    for hub_id in config.data_files:
        if hub_id not in read:
            hint = f"the selected tasks read {', '.join(read)}" if read else "the selected tasks read no dataset by name"
            if config.data != "hub":
                hint += " (--data hub reads the hub datasets)"
            raise UserError(f"--data_files {hub_id}: no selected task reads this dataset; {hint}; check the id")


def _use_data_files(data_files: Mapping[str, str]) -> None:
    """Serve the hub datasets of ``--data_files`` from their local copies (this call's only, never an earlier call's)."""
    from vlmbench.data.sources import use_local_copies

    use_local_copies(dict(data_files))


def task_documents(config: EvalConfig, task: str, step_args: Mapping[str, Mapping[str, Any]] | None = None) -> tuple[Any, list[Any], Any]:
    """One task of ``config`` as a run would see it, without a model: its config, its samples (all of them:
    ``config.limit`` is not applied) and its data table (images decoded on demand).

    ``step_args`` overrides document-step arguments by step name. For tools built on the library:
    ``vlmbench align`` reads the study's training split of ``alignment-test-split`` this way.
    """
    import dataclasses

    from vlmbench.configcheck import checked_config
    from vlmbench.runner import prepare

    config = checked_config(config)
    if not isinstance(task, str):
        raise UserError(f"task_documents: task = {task!r:.60}: expected the name of one task")
    with _ONE_RUN_AT_A_TIME:
        _use_data_files(config.data_files)
        selected = select_tasks(dataclasses.replace(config, tasks=task))
        if len(selected) != 1 or selected[0].name != task:
            raise UserError(f"task_documents: '{task}' selects {', '.join(t.name for t in selected)}; name one task")
        overrides = _checked_step_args(selected[0], step_args or {})
        samples, table = prepare(selected[0], config.seed, None, overrides)
    return selected[0], samples, table


def _checked_step_args(task: Any, step_args: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """``step_args`` for ``task``'s document steps, each naming a step the task uses, with arguments its schema takes
    (merged over the task's own); else a one-line error (a mistyped step or argument was ignored)."""
    from vlmbench.pluginmanager import doc_step_specs
    from vlmbench.taskconfig import _step_args_error

    used = {
        (step if isinstance(step, str) else next(iter(step))): ({} if isinstance(step, str) else dict(next(iter(step.values())) or {}))
        for step in task.get("process_docs", [])
    }
    overrides: dict[str, dict[str, Any]] = {}
    for name, args in step_args.items():
        if name not in used:
            raise UserError(
                f"task_documents: step_args names step {name!r:.60}, which task {task.name} does not use; its steps: {', '.join(used) or 'none'}"
            )
        if not isinstance(args, Mapping):
            raise UserError(f"task_documents: step_args[{name!r}] = {args!r:.60}: expected a mapping of the step's arguments")
        error = _step_args_error(doc_step_specs()[name].args_schema, {**used[name], **args})
        if error is not None:
            where = ".".join([name, *(str(p) for p in error.absolute_path)])
            raise UserError(f"task_documents: step_args {where}: {error.message[:160]}")
        overrides[name] = dict(args)
    return overrides


def score(
    run_dir: Path | str,
    judge: Sequence[str] | str | None = None,
    judge_args: Mapping[str, str] | str | None = None,
    store: Path | str | None = None,
    use_store: bool = True,
) -> Results:
    """Score a run folder's stored responses again (no model is called) and rewrite results.json.

    Without ``judge``, the judges the run recorded score it again when they read text (the rule judges); a model
    judge it recorded must be named again. With ``judge``, those judges (``judge_args`` as in :class:`EvalConfig`).

    A run folder may come from elsewhere, so nothing that could send a request, load a checkpoint or code, or
    supply a judge's answers is taken from it: a model judge the run recorded is used only when ``judge`` names it
    again, judges' arguments come only from ``judge_args``, and judges' calls go to ``store`` or the default
    store, never one the folder names."""
    from vlmbench.backend import inert_line
    from vlmbench.configcheck import check_score_args
    from vlmbench.results import recorded_judging, score_run
    from vlmbench.runfolder import read_manifest
    from vlmbench.scoring.base import ScorerOptions
    from vlmbench.scoring.judging import JudgeConfig, parse_judge_names

    check_score_args(run_dir, judge, judge_args, store, use_store)
    manifest = read_manifest(Path(run_dir))
    recorded = recorded_judging(manifest)
    names = parse_judge_names(judge) or recorded.names
    task_judges = [str(n) for entry in manifest["tasks"].values() for n in entry.get("judges") or ()]
    _check_recorded_scorers(Path(run_dir), manifest, () if judge else (*recorded.names, *task_judges))
    if judge_args:  # the judges that will read them: those named, else each task's own (as the run recorded them)
        args = parse_key_values(judge_args, "--judge_args")
        _check_args_are_read(names or sorted({str(n) for entry in manifest["tasks"].values() for n in entry.get("judges") or ["rules"]}), args)
    elif recorded.args and not judge:  # the run's own judges, which took arguments
        shown = inert_line(",".join(f"{k}={v}" for k, v in recorded.args.items()), 200)
        raise UserError(
            f"{Path(run_dir) / 'run.json'}: its judges took arguments ({shown}), which are not used from a run folder (one from elsewhere could "
            "name any server, key or code); check them and pass them with --judge_args"
        )
    else:
        args = {}
    if store:
        store_path = Path(store).expanduser()
    else:
        from vlmbench.store import default_store_path

        store_path = default_store_path()
    options = ScorerOptions(store=store_path if use_store else None, seed=recorded.options.seed)
    return score_run(Path(run_dir), JudgeConfig(names, args, options))


def _check_recorded_scorers(run_dir: Path, manifest: Mapping[str, Any], judges: Sequence[str]) -> None:
    """Refuse what a run folder records that would make a model judge run: one of the run's ``judges`` (those the
    command did not name again), or a task's scorer, that calls a model (:attr:`ScorerSpec.calls_model`), and a
    task's scorer other than a rule scorer with recorded arguments. From a folder from elsewhere those could call
    any server, fetch and load any checkpoint, or run a plugin's judge with arguments of the folder's choosing."""
    from vlmbench.backend import inert_line
    from vlmbench.pluginmanager import scorer_specs
    from vlmbench.scoring.aggregate import recorded_scorer
    from vlmbench.scoring.scorers import rule_scorer_specs

    specs, rules = scorer_specs(), {spec.name for spec in rule_scorer_specs()}
    where = run_dir / "run.json"
    for name in judges:
        spec = specs.get(name)
        if spec is not None and spec.calls_model:
            raise UserError(
                f"{where}: the run was judged by model judge '{inert_line(name, 80)}', which is not run from what a run folder records (one "
                "from elsewhere could make it call any server or load any checkpoint); name it again with --judge and its --judge_args, or "
                "pass --judge rules"
            )
    for task, entry in manifest["tasks"].items():
        scorer = recorded_scorer(entry)
        spec = specs.get(scorer)
        model = spec is not None and spec.calls_model
        if model or (entry.get("scorer_args") and scorer not in rules):
            raise UserError(
                f"{where}: task '{inert_line(task, 80)}' records scorer '{inert_line(scorer, 80)}' "
                f"{'(a model judge)' if model else 'with arguments'}, which is not run from what a "
                "run folder records (one from elsewhere could name any server or code); rerun the task with `vlmbench run` (its stored answers "
                "are reused)"
            )


OPTIONS_FILE_BYTES = 64 * 2**20
"""The largest ``--options_file`` read (the study's holds a line per image, a few hundred kilobytes)."""


def _options_file(path: Path | str | None) -> dict[str, str] | None:
    """``--options_file`` as recorded: its absolute path and the sha256 of its content."""
    if not path:
        return None
    from vlmbench.safefiles import FileRefused, read_regular_file

    resolved = Path(path).expanduser().resolve()
    try:  # a regular file of an options file's size only: a FIFO or /dev/zero must not hang or exhaust a run
        digest = hashlib.sha256(read_regular_file(resolved, OPTIONS_FILE_BYTES, "--options_file")).hexdigest()
    except FileRefused as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"--options_file: cannot read {resolved} ({exc.strerror}); check the path") from None
    return {"path": str(resolved), "sha256": digest}


def _checked_judges(config: EvalConfig, tasks: Sequence[Any]) -> tuple[tuple[str, ...], dict[str, str]]:
    """The judges ``--judge`` names and ``--judge_args``, each name registered and the arguments of each judge
    the run will use checked (:attr:`~vlmbench.scoring.base.ScorerSpec.check_args`: a prompt file, a backend's
    arguments): those ``--judge`` names, else the ``tasks``' own judges that ``--judge_args`` configures (one
    it does not configure skips its task)."""
    from vlmbench.pluginmanager import did_you_mean, scorer_specs
    from vlmbench.scoring.judging import JudgeConfig, parse_judge_names

    names = parse_judge_names(config.judge)
    specs = scorer_specs()
    for name in names:
        if name not in specs:
            raise UserError(f"--judge: unknown judge '{name}'{did_you_mean(name, specs)}; registered: {', '.join(sorted(specs))}")
    args = parse_key_values(config.judge_args, "--judge_args")
    if config.predict_only:  # no judge runs here: `vlmbench score` checks them where they run (its key may be there only)
        return names, args
    judging = JudgeConfig(names, args)
    task_judges = sorted({name for task in tasks for name in task.judges if name in specs})
    _check_args_are_read(names or task_judges, args)
    for name in names or [name for name in task_judges if judging.args_for(name)]:
        check = specs[name].check_args
        if check is not None:
            check(judging.args_for(name))
    return names, args


def _check_args_are_read(names: Sequence[str], args: Mapping[str, str]) -> None:
    """A one-line error for ``--judge_args`` that no judge named reads: the rule judges take no arguments
    (a model judge meant but not named would otherwise pass unnoticed)."""
    from vlmbench.scoring.scorers import rule_scorer_specs

    rules = {spec.name for spec in rule_scorer_specs()}
    if args and all(name in rules for name in names):
        named = f"the judges {', '.join(names)} take" if len(names) > 1 else f"the judge {names[0] if names else 'rules'} takes"
        raise UserError(f"--judge_args is set, but {named} no arguments; name a model judge (e.g. --judge llm-judge) or leave out --judge_args")


def _judging(config: EvalConfig, names: tuple[str, ...], args: dict[str, str], store: Path | None) -> Any:
    """The run's judges; model judges cache their calls in the run's store (or the default one)."""
    from vlmbench.scoring.base import ScorerOptions
    from vlmbench.scoring.judging import JudgeConfig
    from vlmbench.store import default_store_path

    if store is None and config.use_store:
        store = Path(config.store).expanduser() if config.store else default_store_path()
    return JudgeConfig(names, args, ScorerOptions(store=store if config.use_store else None, seed=config.seed))


def judge_skip_reason(task: Any, judging: Any) -> str | None:
    """Why ``task`` is skipped by a run with these judges (its answers need a model judge that is not
    configured), or None. ``leaderboard verify`` uses it to accept exactly the skips a run must make."""
    from vlmbench.errors import TaskSkipped
    from vlmbench.scoring.relative_judge import require_judge

    try:
        require_judge(task, judging)
    except TaskSkipped as exc:
        return str(exc)
    return None


def select_tasks(config: EvalConfig) -> list[Any]:
    """The configured tasks, at the configured data variant, in selection order."""
    from vlmbench.pluginmanager import did_you_mean
    from vlmbench.registry import discover

    registry = discover([Path(p) for p in config.include_path])
    spec = config.tasks if isinstance(config.tasks, str) else ",".join(config.tasks)
    names = registry.select(spec)
    variants = {DEFAULT_DATA} | {v for n in names for v in registry.tasks[n].get("variants", {})}
    if config.data not in variants:
        raise UserError(
            f"--data: unknown data variant '{config.data}'{did_you_mean(config.data, variants)}; "
            f"the selected tasks offer: {', '.join(sorted(variants))}"
        )
    return [registry.tasks[n].with_variant(config.data) for n in names]


MAX_SLUG = 100
"""The longest folder name :func:`slug` makes (file systems take 255 bytes; the run's own folders go inside)."""


def slug(text: str) -> str:
    """Text safe as one folder name; a long one is cut, with a hash of the whole text, so that names stay apart."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"
    if len(cleaned) <= MAX_SLUG:
        return cleaned
    return f"{cleaned[: MAX_SLUG - 13]}_{hashlib.sha256(text.encode('utf-8', 'surrogateescape')).hexdigest()[:12]}"


def new_run_dir(parent: Path) -> Path:
    """A fresh run folder named by the time; a suffix keeps two runs started in the same second apart."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        folder = parent / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            if not folder.is_dir():
                break
        except OSError as exc:
            raise UserError(f"--output_path: cannot create {folder} ({exc.strerror}); choose a writable folder") from None
    raise UserError(f"--output_path: cannot create a run folder under {parent} (a file is in the way?); choose another folder")


def _version() -> str:
    import vlmbench

    return vlmbench.__version__


def _reused_provenance(predictions: Sequence[TaskPrediction], store: ResponseStore) -> dict[str, dict[str, Any] | None]:
    """The provenance (versions) of the runs that produced the answers this run reused, by the digest
    their records name (``produced_with``); None for a digest the store does not know. This run's own
    digest (answers it shared between identical requests) names its own provenance."""
    digests = sorted({digest for prediction in predictions for digest in prediction.reused_from})
    known: dict[str, dict[str, Any] | None] = dict(store.provenance_of(digests))
    if store.produced_with is not None:
        known[store.produced_with] = store.provenance
    return {digest: known.get(digest) for digest in digests}


def _merge_shards(prediction: Any, samples_dir: Path, world: int) -> None:
    """Concatenate the per-process sample files of a task into one, and count every process's requests."""
    import json

    from vlmbench.runfolder import jsonl_lines

    target = samples_dir / f"{prediction.task.name}.jsonl"
    prediction.sent = prediction.reused = 0
    prediction.usage = {}
    prediction.reused_from = set()
    with open(target, "w", encoding="utf-8") as out:
        for rank in range(world):
            shard = samples_dir / f"{prediction.task.name}.rank{rank}.jsonl"
            text = shard.read_text(encoding="utf-8")
            out.write(text)
            for record in map(json.loads, jsonl_lines(text)):
                prediction.reused += record["reused"]
                if record["reused"] and isinstance(record.get("produced_with"), str):
                    prediction.reused_from.add(record["produced_with"])
                prediction.sent += not record["reused"] and record["error"] is None  # as one process counts: answers received
                for name, value in (record["usage"] or {}).items() if not record["reused"] else ():
                    prediction.usage[name] = prediction.usage.get(name, 0) + int(value)
            shard.unlink()
    prediction.samples_file = target
