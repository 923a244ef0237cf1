"""Work done with forked children (vlmbench.forked): the same results, with errors and lost children handled."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import default_signals
from vlmbench.forked import Background, map_in_two

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2, reason="forks only on Linux, two CPUs")

# What both scripts start with: the vlmbench command's own process, whose pid tells the parent's work from a child's.
PRELUDE = textwrap.dedent(
    """
    import json, os, sys, time
    from vlmbench import collector
    from vlmbench.errors import UserError
    from vlmbench.forked import Background, map_in_two

    collector.enable()  # as the vlmbench command's own process
    parent = os.getpid()
    case = sys.argv[1]
    if case == "nofork":  # the system gives no process (out of memory, a process limit)
        def fork():
            raise BlockingIOError(11, "Resource temporarily unavailable")
        os.fork = fork
    """
)

SCRIPT = PRELUDE + textwrap.dedent(
    """
    def work(item):
        if case == "error" and item == 5 and os.getpid() != parent:
            raise UserError("samples file damaged: task 5")
        if case == "lost" and os.getpid() != parent:
            os._exit(3)  # the child dies without a word
        return {"item": item, "square": item * item, "by_child": os.getpid() != parent}

    try:
        out = map_in_two(list(range(8)), work, weight=lambda i: float(i + 1))
        print(json.dumps(out))
    except UserError as exc:
        print("UserError:", exc)
    """
)


def _run(case: str) -> str:
    return subprocess.run([sys.executable, "-c", SCRIPT, case], capture_output=True, text=True, check=True, timeout=120).stdout


def test_a_child_does_about_half_and_the_results_come_back_in_order() -> None:
    out = json.loads(_run("ok"))
    assert [r["item"] for r in out] == list(range(8)) and [r["square"] for r in out] == [i * i for i in range(8)]
    by_child = [r["item"] for r in out if r["by_child"]]
    weights = {i: i + 1 for i in range(8)}
    assert by_child and len(by_child) < 8
    assert abs(sum(weights[i] for i in by_child) - 18) <= 2  # half of 36 by weight, greedily


def test_an_error_in_the_child_is_raised_by_the_parent() -> None:
    assert _run("error").strip() == "UserError: samples file damaged: task 5"


def test_a_child_that_dies_has_its_share_done_by_the_parent() -> None:
    out = json.loads(_run("lost"))
    assert [r["square"] for r in out] == [i * i for i in range(8)] and not any(r["by_child"] for r in out)


def test_without_a_process_to_be_had_the_work_is_done_here(tmp_path: Path) -> None:
    """fork() failing (EAGAIN under a process limit, ENOMEM) is no error: every piece is done by this process."""
    out = json.loads(_run("nofork"))
    assert [r["square"] for r in out] == [i * i for i in range(8)] and not any(r["by_child"] for r in out)
    handed = json.loads(_background("nofork", tmp_path))
    assert sorted(handed) == [f"task-{i}" for i in range(8)] and not any(r["by_child"] for r in handed.values())


# The child's share never ends by itself: it says where it is (its pid), then sleeps; the parent's share is quick.
STUCK_CHILD = PRELUDE + textwrap.dedent(
    """
    import signal

    folder = sys.argv[2]

    def stop(signum, frame):  # as the command's own: SIGTERM stops the run
        raise SystemExit("the parent's handler ran")

    signal.signal(signal.SIGTERM, stop)

    def work(item):
        if os.getpid() != parent:
            with open(f"{folder}/child.pid", "w") as out:
                out.write(str(os.getpid()))
            time.sleep(120)
            open(f"{folder}/child-finished", "w").close()
        else:
            open(f"{folder}/parent-done", "w").close()
        return item

    map_in_two([0, 1], work, weight=lambda i: 1.0)
    """
)


def _stuck_child(tmp_path: Path) -> tuple[subprocess.Popen[str], int]:
    """The script above started, once its child is working and the parent waits for it: (the parent, the child's pid)."""
    import time

    proc = subprocess.Popen(
        [sys.executable, "-c", STUCK_CHILD, "stuck", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signals,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ((tmp_path / "child.pid").is_file() and (tmp_path / "parent-done").is_file()):
        time.sleep(0.02)
    time.sleep(0.1)  # the parent is in its wait for the child
    return proc, int((tmp_path / "child.pid").read_text())


def _gone(pid: int) -> bool:
    """Whether process ``pid`` has ended (a child of a process that ended is reaped by init)."""
    import time

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_ctrl_c_while_waiting_for_the_child_stops_it(tmp_path: Path) -> None:
    """Ctrl-C reaching only this process (not its group) while it waits: it waited out the child's whole share."""
    import signal

    proc, child = _stuck_child(tmp_path)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert "KeyboardInterrupt" in err and _gone(child) and not (tmp_path / "child-finished").exists()


def test_a_signal_to_the_child_alone_ends_the_child_alone(tmp_path: Path) -> None:
    """The child ran the parent's SIGTERM handler, which stopped the whole run; now it ends, and the parent does its share."""
    import signal

    proc, child = _stuck_child(tmp_path)
    os.kill(child, signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "a forked process ended without its results; doing its 1 pieces of work in this one" in err, err


def test_a_child_ends_with_a_parent_that_is_killed(tmp_path: Path) -> None:
    """A parent killed outright (SIGKILL, out of memory) left its child writing into a run that was over."""
    import signal

    proc, child = _stuck_child(tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert _gone(child) and not (tmp_path / "child-finished").exists()


def test_outside_the_commands_own_process_the_work_stays_here() -> None:
    # A test process (or any program calling the library) never forks: the collector is not the command's.
    out = map_in_two(list(range(6)), lambda i: (i, os.getpid()), weight=lambda i: 1.0)
    assert out == [(i, os.getpid()) for i in range(6)]


def _comparable(run_dir: Path) -> tuple[dict, dict]:
    results = json.loads((run_dir / "results.json").read_text())
    for entry in results["tasks"].values():
        entry.pop("seconds", None)
    samples = {}
    for path in sorted((run_dir / "samples").glob("*.jsonl")):
        samples[path.name] = [
            {k: r[k] for k in ("id", "response", "parsed", "correct", "verdicts")} for r in map(json.loads, path.read_text().splitlines())
        ]
    return {"tasks": results["tasks"], "modality_gaps": results["modality_gaps"]}, samples


def test_the_command_scores_on_two_cores_with_the_numbers_of_a_serial_run(tmp_path: Path, data_cache: Path) -> None:
    """`vlmbench run` (its own process: tasks scored by two processes) writes the results and verdicts that the
    library (one process) writes for the same run."""
    from vlmbench import EvalConfig, evaluate

    args = ["--model", "random", "--tasks", "all", "--limit", "12", "--no_store"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    command = [sys.executable, "-m", "vlmbench", "run", *args, "--output_path", str(tmp_path / "command")]
    subprocess.run(command, capture_output=True, text=True, check=True, env=env, timeout=300)
    forked = _comparable(next((tmp_path / "command").glob("*/*")))
    serial = evaluate(EvalConfig(model="random", tasks="all", limit=12, use_store=False, output_path=tmp_path / "library"))
    assert len(forked[0]["tasks"]) >= 10
    assert forked == _comparable(serial.run_dir)
    # `vlmbench score` splits the run's tasks between two processes too: the same numbers and verdicts again.
    rescored = tmp_path / "rescored"
    shutil.copytree(serial.run_dir, rescored)
    subprocess.run([sys.executable, "-m", "vlmbench", "score", str(rescored)], capture_output=True, text=True, check=True, env=env, timeout=300)
    assert _comparable(rescored) == forked


def test_loading_data_with_datasets_leaves_no_thread_that_stops_forking(tmp_path: Path, data_cache: Path) -> None:
    """`datasets` shows its progress with tqdm, whose first bar (even a disabled one) starts a monitor thread for
    good; a second thread would keep the rest of the command's run from scoring in a child. A fresh cache holding
    only the generated sets makes the run load them with `datasets` (no remembered load)."""
    cache = tmp_path / "cache"
    shutil.copytree(data_cache / "builtin", cache / "builtin")
    program = PRELUDE + textwrap.dedent(
        """
        import threading
        from vlmbench import EvalConfig, evaluate, forked

        threads, can_fork = [], forked.can_fork

        def asked():  # whenever the run would hand a task to a child: which threads it has
            threads.append(sorted(t.name for t in threading.enumerate()))
            return can_fork()

        forked.can_fork = asked
        evaluate(EvalConfig(model="random", tasks="general-capability,alignment-image", limit=2, use_store=False, output_path=sys.argv[2]))
        print(json.dumps({"datasets": "datasets" in sys.modules, "asked": len(threads), "threads": sorted({n for t in threads for n in t})}))
        """
    )
    env = {**os.environ, "VLMBENCH_CACHE_DIR": str(cache), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", program, "run", str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout.splitlines()[-1])
    assert seen["datasets"] and seen["asked"] >= 1 and seen["threads"] == ["MainThread"], seen


BACKGROUND = PRELUDE + textwrap.dedent(
    """
    def work(item):
        if case == "error" and item == 0 and os.getpid() != parent:
            raise UserError("task 0 failed in a child")
        if case == "lost" and os.getpid() != parent:
            os._exit(3)
        marker = sys.argv[2] + "/parent-working"
        if os.getpid() == parent:
            open(marker, "w").close()
        elif item == 0:  # the first child stays busy until this process works on a piece itself
            deadline = time.monotonic() + 60
            while not os.path.exists(marker) and time.monotonic() < deadline:
                time.sleep(0.01)
        return {"item": item, "square": item * item, "by_child": os.getpid() != parent}

    background = Background(work)
    try:
        for item in range(8):  # handed over while "predicting" the next one
            assert background.submit(f"task-{item}", item, weight=float(item + 1))
        print(json.dumps(background.drain()))
    except UserError as exc:
        print("UserError:", exc)
    finally:
        background.close()
    """
)


def _background(case: str, folder: Path) -> str:
    command = [sys.executable, "-c", BACKGROUND, case, str(folder)]
    return subprocess.run(command, capture_output=True, text=True, check=True, timeout=120).stdout


def test_handed_pieces_are_done_by_children_and_this_process(tmp_path: Path) -> None:
    out = json.loads(_background("ok", tmp_path))
    assert sorted(out) == [f"task-{i}" for i in range(8)] and all(out[f"task-{i}"]["square"] == i * i for i in range(8))
    by_child = {key for key, result in out.items() if result["by_child"]}
    # The first piece started a child at once; the others waited while it was busy, and once this process
    # had nothing else to do it did the heaviest waiting one itself (and the child then finished).
    assert "task-0" in by_child and "task-7" not in by_child


def test_a_childs_error_is_raised_and_a_lost_childs_pieces_are_missing(tmp_path: Path) -> None:
    assert _background("error", tmp_path).strip() == "UserError: task 0 failed in a child"
    out = json.loads(_background("lost", tmp_path))
    assert not any(result["by_child"] for result in out.values())  # every result here was done by this process
    assert len(out) < 8  # the pieces of the lost children are left to the caller


def test_without_forking_drain_does_every_piece_here() -> None:
    background: Background[int, int] = Background(lambda i: i * 10)
    assert all(background.submit(f"k{i}", i, weight=1.0) for i in range(5))
    assert background.drain() == {f"k{i}": i * 10 for i in range(5)}
    assert Background(lambda i: i, allowed=False).submit("k", 1, weight=1.0) is False


# -- a run that stops early keeps every answer in its samples files --

TASKS = "alignment-text,perception-text"


def _command(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    return subprocess.run([sys.executable, "-m", "vlmbench", *args], capture_output=True, text=True, env=environment, timeout=300)


def _samples(run_dir: Path) -> dict[str, list[dict[str, object]]]:
    return {p.name: [json.loads(line) for line in p.read_text().splitlines()] for p in sorted((run_dir / "samples").glob("*.jsonl"))}


def _stored_run(tmp_path: Path, server: object, tasks: str = TASKS) -> list[str]:
    """Store the answers of ``tasks`` (limit 3), and give the arguments that reuse them."""
    args = ["--model", "openai", "--model_args", f"base_url={server.base_url},model=m", "--limit", "3", "--store", str(tmp_path / "s.sqlite")]  # type: ignore[attr-defined]
    assert _command("run", *args, "--tasks", tasks, "--output_path", str(tmp_path / "first")).returncode == 0
    return args


@pytest.mark.parametrize("stop", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_run_stopped_while_predicting_keeps_its_reused_answers(tmp_path: Path, data_cache: Path, stop: str) -> None:
    """Ctrl-C (or a scheduler's SIGTERM, a closed terminal's SIGHUP) while a later task waits for the model: the tasks
    answered from the store have every line (SIGTERM ended the process before they were written)."""
    import signal
    import time

    from vlmbench.testing.fault_server import Faults, FaultServer

    with FaultServer(Faults()) as server:
        args = _stored_run(tmp_path, server, "alignment-context-text,alignment-text")
        server.faults.latency = 60  # from now on, what is not stored hangs (the same server: the stored answers name it)
        seen = len(server.events())
        environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
        # perception-text comes last (tasks run in name order): the stored ones are done when it asks the model
        command = [sys.executable, "-m", "vlmbench", "run", *args, "--tasks", "alignment-context-text,alignment-text,perception-text"]
        command += ["--output_path", str(tmp_path / "stopped")]
        proc = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_signals)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and len(server.events()) == seen:
            time.sleep(0.05)
        proc.send_signal(getattr(signal, stop))
        _, err = proc.communicate(timeout=120)
    how = "interrupted" if stop == "SIGINT" else f"stopped by {stop}"
    assert proc.returncode == (130 if stop == "SIGINT" else 128 + getattr(signal, stop)), err
    assert err.strip().splitlines()[-1] == f"vlmbench: {how}; every response received is stored: rerun the same command to resume"
    [run_dir] = (tmp_path / "stopped").glob("*/*")
    manifest = json.loads((run_dir / "run.json").read_text())
    answered = {f"{name}.jsonl": entry["n_samples"] for name, entry in manifest["tasks"].items()}
    assert manifest["complete"] is False and sorted(answered) == ["alignment-context-text.jsonl", "alignment-text.jsonl"]
    files = _samples(run_dir)
    assert {name: len(records) for name, records in files.items() if name in answered} == answered
    assert all(r["reused"] and r["response"] for name in answered for r in files[name])


def test_a_run_whose_scoring_fails_keeps_every_answer_unscored(tmp_path: Path, data_cache: Path) -> None:
    """A model judge that cannot be reached stops scoring: the samples files still hold every answer, and the
    run can be scored again (here by the rules)."""
    from vlmbench.testing.fault_server import Faults, FaultServer

    with FaultServer(Faults()) as server:
        args = _stored_run(tmp_path, server)
        judge = ["--judge", "llm-judge", "--judge_args", "backend=openai,model=j,base_url=http://127.0.0.1:9/v1,api_key=k"]
        failed = _command("run", *args, "--tasks", TASKS, *judge, "--output_path", str(tmp_path / "judged"))
    assert failed.returncode == 2 and "127.0.0.1:9" in failed.stderr
    [run_dir] = (tmp_path / "judged").glob("*/*")
    files = _samples(run_dir)
    assert {name: len(records) for name, records in files.items()} == {"alignment-text.jsonl": 15, "perception-text.jsonl": 3}
    rescored = _command("score", str(run_dir), "--judge", "rules")
    assert rescored.returncode == 0, rescored.stderr
    assert all(r["parsed"] is not None or r["verdicts"] for records in _samples(run_dir).values() for r in records)


def test_a_lost_scoring_child_has_its_tasks_scored_by_the_run(tmp_path: Path, data_cache: Path) -> None:
    """Every scoring child dies without a word (as the out-of-memory killer would do): the run scores their tasks
    from the records it kept, and writes the results and samples a run without children writes."""
    from vlmbench.testing.fault_server import Faults, FaultServer

    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text("import os\nimport vlmbench.forked as forked\nforked._child = lambda *args: os._exit(9)\n")
    with FaultServer(Faults()) as server:
        args = _stored_run(tmp_path, server)
        lost = _command(
            "run", *args, "--tasks", TASKS, "--output_path", str(tmp_path / "lost"), env={"PYTHONPATH": f"{hook}:{os.environ.get('PYTHONPATH', '')}"}
        )
        whole = _command("run", *args, "--tasks", TASKS, "--output_path", str(tmp_path / "whole"))
    assert lost.returncode == 0 and whole.returncode == 0, lost.stderr
    assert "ended without its result" in lost.stderr
    [lost_dir], [whole_dir] = (tmp_path / "lost").glob("*/*"), (tmp_path / "whole").glob("*/*")
    assert _comparable(lost_dir) == _comparable(whole_dir)
