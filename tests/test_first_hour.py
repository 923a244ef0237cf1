"""The first hour with vlmbench (issue #12), through the CLI: progress outside a terminal, error
classes, lm-eval habits (--gen_kwargs, --system_instruction, --version, --tasks list, --verbosity,
fractional --limit, --device), and the small things a new user trips over.

In-process (``cli``) except where the process itself is under test (a closed pipe, kill -9)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import REPO, cli, default_signals, load_results, read_samples, run_dir
from vlmbench.testing.fault_server import FaultServer


def openai_run(url: str, out: Path, store: Path, *extra: str, tasks: str = "alignment-text", limit: str = "1") -> subprocess.CompletedProcess[str]:
    return cli(
        "run",
        "--model",
        "openai",
        "--model_args",
        f"base_url={url},model=counting,num_concurrent=4,max_retries=1",
        "--tasks",
        tasks,
        "--limit",
        limit,
        "--store",
        str(store),
        "--output_path",
        str(out),
        *extra,
        check=False,
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("vlmbench: error:")]


# --- 1. progress outside a terminal ----------------------------------------------------------


def test_progress_lines_reuse_and_throughput_outside_a_terminal(tmp_path: Path) -> None:
    with FaultServer(latency=0.2) as server:
        first = openai_run(server.base_url, tmp_path / "a", tmp_path / "store.sqlite", limit="8")  # 40 requests, 4 at a time: 2 s
        assert first.returncode == 0, first.stderr
        lines = first.stderr.splitlines()
        assert "vlmbench: alignment-text: 0 of 40 answers reusable from the response store, 40 requests to send" in lines
        periodic = [line for line in lines if re.fullmatch(r"vlmbench: alignment-text: \d+/40 \(\d+%\), [\d.]+ requests/s, ETA [\d.]+ s", line)]
        assert 1 <= len(periodic) <= 10, first.stderr  # a modest rate: never a line per request
        assert any(
            re.fullmatch(r"vlmbench: alignment-text: done 40/40 in [\d.]+ s \(40 sent, 0 reused from the store, [\d.]+ requests/s\)", x)
            for x in lines
        )
        assert any(re.fullmatch(r"vlmbench: throughput: 40 requests in [\d.]+ s: [\d.]+ requests/s, [\d.]+ completion tokens/s", x) for x in lines)
        assert "\r" not in first.stderr  # no progress bar

        again = openai_run(server.base_url, tmp_path / "b", tmp_path / "store.sqlite", limit="8")
        assert "vlmbench: alignment-text: 40 of 40 answers reusable from the response store, 0 requests to send" in again.stderr
        assert "vlmbench: throughput: no request sent to the model (every answer came from the response store)" in again.stderr

        quiet = openai_run(server.base_url, tmp_path / "c", tmp_path / "store.sqlite", "--verbosity", "warning", limit="8")
        assert quiet.returncode == 0 and "reusable" not in quiet.stderr and "throughput" not in quiet.stderr
        assert "requests: 0 sent to the model, 40 reused" in quiet.stderr


def test_a_terminal_gets_a_progress_bar_instead(tmp_path: Path) -> None:
    import fcntl
    import pty
    import struct
    import termios

    main, child = pty.openpty()
    fcntl.ioctl(child, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a terminal 120 columns wide
    command = [sys.executable, "-m", "vlmbench", "run", "--model", "random", "--tasks", "perception-image", "--limit", "5"]
    proc = subprocess.run([*command, "--output_path", str(tmp_path)], stdout=subprocess.PIPE, stderr=child, timeout=300)
    os.close(child)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal is closed once everything is read
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    terminal = seen.decode(errors="replace")
    assert proc.returncode == 0 and "perception-image: 100%|" in terminal and "5/5" in terminal
    assert "requests/s, ETA" not in terminal  # no log lines on top of the bar


def test_progress_is_rate_limited_by_time_and_share(caplog: pytest.LogCaptureFixture) -> None:
    from vlmbench.progress import TaskProgress

    now = [0.0]
    caplog.set_level("INFO", logger="vlmbench.progress")
    progress = TaskProgress("t", 1000, done=100, bar=False, clock=lambda: now[0])
    for _ in range(900):  # 900 requests in 90 s: 10% steps and 10 s intervals both allow ~9 lines
        now[0] += 0.1
        progress.update()
    progress.close(sent=900, reused=100)
    messages = [r.getMessage() for r in caplog.records]
    assert 8 <= len(messages) <= 12 and messages[-1] == "t: done 1000/1000 in 1 min 30 s (900 sent, 100 reused from the store, 10.0 requests/s)"
    assert "t: 200/1000 (20%), 10.0 requests/s, ETA 1 min 20 s" in messages


# --- 2. error classes ------------------------------------------------------------------------


def classes(stderr: str, label: str) -> dict[str, int]:
    """``vlmbench: LABEL: HTTP 500 x2, timeout x1`` as a mapping (one such line expected)."""
    [line] = [x for x in stderr.splitlines() if x.startswith(f"vlmbench: {label}: ")]
    items = line.split(": ", 2)[2].split(", ")
    return {name: int(count) for name, count in (item.rsplit(" x", 1) for item in items)}


def test_failed_requests_are_summarised_by_error_class(tmp_path: Path) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "faulty.yaml").write_text(
        "include: _unsafeconcepts.yaml\ntask: faulty\ndescription: prompts that fail on purpose\nability: alignment\nmodality: text\n"
        "process_docs: [unique_concepts]\ndoc_to_image: null\n"
        'doc_to_text: ["{{ concept }}: is it safe?", "{{ concept }} <<500:all>>", "{{ concept }} <<429:1>> <<400:all>>"]\n'
        'doc_to_choice: ["Yes", "No"]\ndoc_to_target: "{{ label }}"\nscorer: safety\nmetric_list: [{metric: recall_unsafe}]\n'
    )
    with FaultServer(retry_after="0") as server:
        proc = openai_run(server.base_url, tmp_path / "out", tmp_path / "store.sqlite", "--include_path", str(tasks), tasks="faulty", limit="2")
    assert proc.returncode == 1, proc.stderr  # 4 of 6 failed: over --max_error_rate
    assert "vlmbench: 4 of 6 requests failed" in proc.stderr
    assert classes(proc.stderr, "failed requests by error class") == {"HTTP 500": 2, "HTTP 400": 2}
    assert classes(proc.stderr, "failed attempts by error class (retries included)") == {"HTTP 500": 4, "HTTP 400": 2, "HTTP 429": 2}
    assert json.loads((run_dir(tmp_path / "out") / "run.json").read_text())["errors"]["requests"] == {"HTTP 500": 2, "HTTP 400": 2}


# --- 3. hf: batch size auto by default; the request count a --limit implies ---------------


def test_limit_prints_the_requests_it_implies_and_takes_a_fraction(tmp_path: Path) -> None:
    proc = cli(
        "run",
        "--model",
        "random",
        "--tasks",
        "alignment-image,alignment-text,perception-image",
        "--limit",
        "20",
        "--output_path",
        str(tmp_path / "n"),
    )
    plan = "vlmbench: --limit 20 over 3 tasks: 220 requests (alignment-image, alignment-text ask 5 prompts per document)"
    assert plan in proc.stderr.splitlines()

    proc = cli("run", "--model", "random", "--tasks", "alignment-image,perception-image", "--limit", "0.02", "--output_path", str(tmp_path / "f"))
    # 2% of 270 and of 225 documents, rounded up: 6 and 5
    assert "vlmbench: --limit 0.02 over 2 tasks: 35 requests (alignment-image asks 5 prompts per document)" in proc.stderr.splitlines()
    results = load_results(tmp_path / "f")
    assert results["config"]["limit"] == 0.02
    assert {t: e["metrics"]["n_samples"] for t, e in results["tasks"].items()} == {"alignment-image": 30, "perception-image": 5}


def test_limit_3_keeps_a_safe_control_in_alignment_tasks(tmp_path: Path) -> None:
    cli("run", "--model", "always-unsafe", "--tasks", "alignment-image,alignment-text", "--limit", "3", "--output_path", str(tmp_path))
    for task in ("alignment-image", "alignment-text"):
        labels = [r["doc"]["label"] for r in read_samples(tmp_path, task)]
        assert labels.count("safe") == 5 and labels.count("unsafe") == 10
        assert load_results(tmp_path)["tasks"][task]["metrics"]["specificity"]["value"] == 0.0


@pytest.fixture(scope="module")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from vlmbench.testing.tiny_models import TinyModelUnavailable, build_tiny_vlm

    try:
        return build_tiny_vlm("llava", tmp_path_factory.mktemp("tiny") / "llava")
    except TinyModelUnavailable as exc:
        pytest.skip(str(exc))


def test_hf_defaults_to_auto_batches_honours_the_system_instruction_and_device(tiny_llava: Path, tmp_path: Path) -> None:
    proc = cli(
        "run",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={tiny_llava},max_new_tokens=4",
        "--device",
        "cpu",
        "--tasks",
        "alignment-text",
        "--limit",
        "1",
        "--system_instruction",
        "You are a careful content moderator.",
        "--output_path",
        str(tmp_path),
        "--no_store",
        env={"TRANSFORMERS_OFFLINE": "1"},
    )
    assert "vlmbench: --model hf: batch size auto (starts at 64 and halves on out-of-memory; --batch_size N fixes it)" in proc.stderr
    records = read_samples(tmp_path, "alignment-text")
    assert all(r["model_prompt"].startswith("SYSTEM: You are a careful content moderator.\nUSER: ") for r in records)
    manifest = json.loads((run_dir(tmp_path) / "run.json").read_text())
    assert manifest["model"]["args"]["device"] == "cpu" and manifest["config"]["system_instruction"] == "You are a careful content moderator."


# --- 4. lm-eval habits -----------------------------------------------------------------------


def test_gen_kwargs_and_system_instruction_reach_the_server_and_key_the_store(tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    with FaultServer() as server:
        plain = openai_run(server.base_url, tmp_path / "plain", store)
        assert "requests: 5 sent to the model, 0 reused" in plain.stderr
        longer = openai_run(server.base_url, tmp_path / "longer", store, "--gen_kwargs", "max_new_tokens=7")
        assert "requests: 5 sent to the model, 0 reused" in longer.stderr  # other settings: never the stored answers
        system = openai_run(server.base_url, tmp_path / "system", store, "--system_instruction", "Answer yes or no.")
        assert "requests: 5 sent to the model, 0 reused" in system.stderr
        again = openai_run(server.base_url, tmp_path / "again", store, "--system_instruction", "Answer yes or no.")
        assert "requests: 0 sent to the model, 5 reused" in again.stderr
        bodies = [body for event in server.events() for body in server.bodies(event.key)]
    assert {b["max_tokens"] for b in bodies} == {256, 7}
    with_system = [b for b in bodies if b["messages"][0]["role"] == "system"]
    assert len(with_system) == 5 and all(b["messages"][0]["content"] == "Answer yes or no." for b in with_system)
    hashes = {name: load_results(tmp_path / name)["tasks"]["alignment-text"]["config_hash"] for name in ("plain", "longer", "system", "again")}
    assert len({hashes["plain"], hashes["longer"], hashes["system"]}) == 3 and hashes["system"] == hashes["again"]
    longer_results = load_results(tmp_path / "longer")
    assert longer_results["tasks"]["alignment-text"]["generation_kwargs"] == {"max_new_tokens": 7, "do_sample": False}
    assert longer_results["config"]["gen_kwargs"] == {"max_new_tokens": 7}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gen_kwargs", "temprature=0.5"], "--gen_kwargs: unknown setting 'temprature' (did you mean 'temperature'?)"),
        (["--gen_kwargs", "temperature=0.5"], "--gen_kwargs: temperature=0.5 needs do_sample=true"),
        (["--gen_kwargs", "top_p=2,do_sample=true"], "--gen_kwargs: top_p=2 is invalid"),
        (["--limit", "1.5"], "--limit '1.5': give a number of documents per task (e.g. --limit 20) or a fraction"),
        (["--verbosity", "loud"], "--verbosity 'loud': not a level; use one of DEBUG, INFO, WARNING, ERROR"),
        (["--log_samples"], "--log_samples: vlmbench always writes every sample"),
        (["--apply_chat_template"], "--apply_chat_template: vlmbench always prompts a model through its own chat template"),
        (["--apply_chat_template", "chatml"], "--apply_chat_template: vlmbench always prompts"),
        (
            ["--model", "hf", "--device", "cuda:0", "--model_args", "pretrained=x,device=cpu"],
            "--device cuda:0 contradicts device=cpu in --model_args",
        ),
        (["--model", "hf", "--model_args", "pretrained=/missing/folder"], "--model hf: pretrained=/missing/folder: no such folder"),
        (["--model", "hf", "--model_args", "pretrained=./missing"], "--model hf: pretrained=./missing: no such folder"),
    ],
)
def test_lm_eval_habits_get_one_line_answers(args: list[str], message: str, tmp_path: Path) -> None:
    model = [] if "--model" in args else ["--model", "random"]
    proc = cli("run", *model, *args, "--output_path", str(tmp_path), check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "usage:" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("vlmbench: error: ") and message in lines[0], proc.stderr


def test_version_and_tasks_list() -> None:
    assert cli("--version").stdout.strip() == "vlmbench 0.1.0"
    listed = cli("run", "--tasks", "list")  # no --model needed, as in lm-eval
    assert listed.stdout == cli("ls", "tasks").stdout and "alignment-image" in listed.stdout
    missing = cli("run", "--tasks", "perception-image", check=False)
    assert missing.returncode == 2 and error_lines(missing.stderr) == [
        "vlmbench: error: --model: missing; name a backend, e.g. --model hf --model_args pretrained=ORG/MODEL (`vlmbench ls models` lists them)"
    ]


# --- 5. smaller things -----------------------------------------------------------------------


def test_ls_into_a_closed_pipe_is_quiet() -> None:
    proc = subprocess.Popen([sys.executable, "-m", "vlmbench", "ls", "tasks"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as `| head -1` does once it has its line
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert stderr == "" and proc.returncode in (0, 141)


def test_cache_info_shows_the_whole_model_name(tmp_path: Path) -> None:
    from vlmbench.backend import Response
    from vlmbench.store import ResponseStore

    name = "/models/checkpoints/" + "a-very-long-finetuned-vision-language-model-name-" * 2 + "step-12000"
    identity = {"backend": "hf", "pretrained": name, "revision": None, "commit_hash": None, "chat_template_sha256": "f" * 64, "dtype": "bfloat16"}
    store = ResponseStore(tmp_path / "store.sqlite")
    store.put("k1", backend="hf", model=identity, task="t", response=Response("r", text="Yes"))
    store.close()
    out = cli("cache", "info", "--store", str(tmp_path / "store.sqlite")).stdout
    row = next(line for line in out.splitlines() if line.startswith("hf "))
    assert name in row and "chat_template_sha256=ffffffffffff," in row and "dtype=bfloat16" in row


def test_a_killed_run_is_described_as_partial(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "vlmbench", "run", "--model", "openai", "--tasks", "alignment-text", "--limit", "20"]
    command += ["--store", str(tmp_path / "store.sqlite"), "--output_path", str(tmp_path / "out")]
    with FaultServer(latency=0.2) as server:
        run = subprocess.Popen([*command, "--model_args", f"base_url={server.base_url},model=m,num_concurrent=2"], stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not list((tmp_path / "out").glob("*/*/samples/alignment-text.jsonl")) or samples_lines(tmp_path / "out") < 4:
            assert run.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
    folder = run_dir(tmp_path / "out")
    proc = cli("score", str(folder), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (
        f"vlmbench: error: {folder}: partial run (killed or interrupted; 0 of 1 tasks answered); resume it by rerunning the same "
        "`vlmbench run` command (every stored answer is reused; only the missing requests are sent)"
    )


def samples_lines(out: Path) -> int:
    return sum(len(p.read_text().splitlines()) for p in out.glob("*/*/samples/alignment-text.jsonl"))


def test_modality_gap_table_uses_one_number_format(tmp_path: Path) -> None:
    proc = cli("run", "--model", "random", "--tasks", "unsafeconcepts", "--limit", "12", "--output_path", str(tmp_path))
    rows = [line for line in proc.stdout.splitlines() if re.match(r"(perception|alignment)-text - ", line)]
    assert len(rows) == 2
    for row in rows:
        text, image, gap = row.split()[4:7]
        assert re.fullmatch(r"\d\.\d{3}", text) and re.fullmatch(r"\d\.\d{3}", image) and re.fullmatch(r"[+-]\d\.\d{3}", gap), row


def test_readme_names_the_leaderboard_extra() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("## The leaderboard") : readme.index("## Adding a task")]
    assert 'pip install -e ".[leaderboard]"' in section
    assert "leaderboard = [" in (REPO / "pyproject.toml").read_text(encoding="utf-8")


def test_answers_holding_unicode_line_separators_are_scored_and_rescored(tmp_path: Path) -> None:
    """A model's answer may hold U+2028, U+2029 or U+0085, which the samples file keeps as they are (JSON
    allows them raw): reading it back splits records at newlines only."""
    from vlmbench.testing.fault_server import Faults

    answer = "No.\u2028It\u2029is\x85unsafe."
    with FaultServer(Faults(reply=answer)) as server:
        proc = openai_run(server.base_url, tmp_path / "out", tmp_path / "store.sqlite", limit="2")
    assert proc.returncode == 0, proc.stderr
    records = read_samples(tmp_path / "out", "alignment-text")
    assert len(records) == 10 and {r["response"] for r in records} == {answer} and {r["parsed"] for r in records} == {"unsafe"}
    assert "\u2028" in (run_dir(tmp_path / "out") / "samples" / "alignment-text.jsonl").read_text(encoding="utf-8")
    rescored = cli("score", str(run_dir(tmp_path / "out")))
    assert rescored.returncode == 0 and read_samples(tmp_path / "out", "alignment-text") == records


def test_a_lone_surrogate_in_an_answer_becomes_a_replacement_character(tmp_path: Path) -> None:
    """An API may escape a lone surrogate in its JSON ("\\ud800"): no UTF-8 file or store can hold it, so it
    becomes U+FFFD and the rest of the answer is kept, stored and scored (before, the run stopped with a traceback)."""
    from vlmbench.testing.fault_server import Faults

    with FaultServer(Faults(reply="No.\ud800 It is unsafe.")) as server:
        first = openai_run(server.base_url, tmp_path / "a", tmp_path / "store.sqlite")
        again = openai_run(server.base_url, tmp_path / "b", tmp_path / "store.sqlite")
    assert first.returncode == 0 and again.returncode == 0, first.stderr
    assert "requests: 0 sent to the model, 5 reused from the response store" in again.stderr
    for out in (tmp_path / "a", tmp_path / "b"):
        records = read_samples(out, "alignment-text")
        assert {r["response"] for r in records} == {"No.\ufffd It is unsafe."} and {r["parsed"] for r in records} == {"unsafe"}


def _asking(command: list[str], server: FaultServer, preexec: Any) -> subprocess.Popen[str]:
    """``command`` started (``preexec`` run in the child first), once the server has received its first request."""
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=preexec)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not server.events():
        time.sleep(0.05)
    return proc


@pytest.mark.parametrize("no_store", [False, True], ids=["store", "no_store"])
def test_ctrl_c_says_what_was_kept(tmp_path: Path, data_cache: Path, no_store: bool) -> None:
    """With --no_store nothing is kept: the line must not promise that a rerun resumes."""
    from vlmbench.testing.fault_server import Faults

    with FaultServer(Faults(latency=60)) as server:
        command = [sys.executable, "-m", "vlmbench", "run", "--model", "openai", "--model_args", f"base_url={server.base_url},model=m"]
        command += ["--tasks", "alignment-text", "--limit", "2", "--output_path", str(tmp_path / "out")]
        command += ["--no_store"] if no_store else ["--store", str(tmp_path / "store.sqlite")]
        proc = _asking(command, server, default_signals)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == (
        "vlmbench: interrupted; nothing was stored (--no_store): the same command starts again from the beginning"
        if no_store
        else "vlmbench: interrupted; every response received is stored: rerun the same command to resume"
    )


def test_a_run_under_nohup_goes_on_after_sighup(tmp_path: Path, data_cache: Path) -> None:
    """SIGHUP stops a run as Ctrl-C does, unless it was set to be ignored (`nohup`): then the run goes on."""
    from vlmbench.testing.fault_server import Faults

    with FaultServer(Faults(latency=0.3)) as server:
        command = [sys.executable, "-m", "vlmbench", "run", "--model", "openai", "--model_args", f"base_url={server.base_url},model=m"]
        command += ["--tasks", "alignment-text", "--limit", "1", "--no_store", "--output_path", str(tmp_path / "out")]

        def ignore_hangups() -> None:
            default_signals()
            signal.signal(signal.SIGHUP, signal.SIG_IGN)

        proc = _asking(command, server, ignore_hangups)
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert load_results(tmp_path / "out")["tasks"]["alignment-text"]["metrics"]["n_samples"] == 5
