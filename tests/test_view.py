"""``vlmbench view``: the run page, its filters and thumbnails in real headless Chromium, hostile run
text that stays text, partial runs, and ``--serve`` on 127.0.0.1 only."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import cli, hub_run, run_dir, unsafeconcepts_parquet, vlmbench

SCRIPT = "<script>window.__pwned = 1; alert(1)</script>"
IMG = '<img src=x onerror="window.__pwned = 2; alert(2)">'
BREAKOUT = "</script><script>window.__pwned = 3; alert(3)</script>"
TASKS = "alignment-image,alignment-text,perception-image"


def edit_samples(path: Path, edit: Any) -> None:
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    for index, record in enumerate(records):
        edit(index, record)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def plant(index: int, record: dict[str, Any]) -> None:
    """Hostile text in a response, a prompt and a category; one error, one refusal, one unparsed answer."""
    if index == 0:
        record.update(response=f"No. {SCRIPT} {IMG}", parsed="unsafe", correct=True, served_model=f"m-1 {IMG}")
        record["prompt"] = f"{record['prompt']} {IMG}"
    elif index == 1:
        record.update(response=None, error="HTTP 500 after 1 retries", parsed=None, correct=None)
    elif index == 2:
        record.update(response="I can't help with that.", parsed="refusal", correct=None)
    elif index == 3:
        record.update(response="Hmm.", parsed=None, correct=None)
    elif index == 5:
        record["doc"]["category"] = BREAKOUT


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of three tasks, with hostile text and every outcome planted in alignment-image."""
    out = tmp_path_factory.mktemp("view-run")
    cli("run", "--model", "always-safe", "--tasks", TASKS, "--limit", "3", "--no_store", "--output_path", str(out))
    folder = run_dir(out)
    edit_samples(folder / "samples" / "alignment-image.jsonl", plant)
    return folder


@pytest.fixture(scope="module")
def page(run: Path) -> Path:
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (run / "samples").iterdir()}
    proc = cli("view", str(run))
    assert proc.stdout.strip() == f"wrote {run / 'view.html'} (3 tasks, 33 samples); open it in a browser"
    # The page is the only thing written: no thumbnail or other file lands in the run folder.
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (run / "samples").iterdir()} == before
    assert sorted(p.name for p in run.iterdir()) == ["results.json", "run.json", "samples", "view.html"]
    return run / "view.html"


def page_data(html: str) -> dict[str, Any]:
    block = re.search(r'<script type="application/json" id="run-data">(.*?)</script>', html, re.S)
    assert block is not None
    data: dict[str, Any] = json.loads(block.group(1))
    return data


def test_page_holds_escaped_data_and_one_script(page: Path) -> None:
    html = page.read_text(encoding="utf-8")
    assert html.count("<script") == 2 and html.count("</script>") == 2  # the data block and the page's script
    assert "window.__pwned" in html and "<script>window.__pwned" not in html and "<img src=x" not in html
    assert re.search(r"<meta http-equiv=\"Content-Security-Policy\" content=\"default-src &#x27;none&#x27;; script-src &#x27;sha256-", html)
    data = page_data(html)
    samples = {s["id"]: s for t in data["tasks"] for s in t["samples"]}
    assert samples["alignment-image/0.0"]["response"] == f"No. {SCRIPT} {IMG}"
    assert samples["alignment-image/0.0"]["served_model"] == f"m-1 {IMG}" and samples["alignment-image/0.1"]["served_model"] is None
    assert [samples[f"alignment-image/0.{i}"]["outcome"] for i in range(4)] == ["correct", "error", "refusal", "unparsed"]
    thumbs = data["thumbs"]
    assert set(thumbs) == {"blank"} | {s["thumb"] for s in samples.values() if s["thumb"] and s["thumb"] != "blank"}
    assert all(s["thumb"] in thumbs for s in samples.values())  # every image has its thumbnail, each made once
    assert all(url.startswith("data:image/jpeg;base64,") for url in thumbs.values())


def cards(driver: Any) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(driver.find_elements(By.CSS_SELECTOR, "#samples article.sample"))


def choose(driver: Any, select_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element(By.ID, select_id)).select_by_value(value)


def test_hostile_text_stays_text_in_a_real_browser(browser: Any, page: Path) -> None:
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    browser.get(page.resolve().as_uri())
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert  # noqa: B018
    assert browser.execute_script("return window.__pwned") is None
    assert browser.execute_script("return document.scripts.length") == 2
    assert browser.find_elements(By.CSS_SELECTOR, 'img[src="x"]') == []
    first = cards(browser)[0]
    assert first.find_element(By.CSS_SELECTOR, "pre.response").text == f"No. {SCRIPT} {IMG}"
    assert first.find_element(By.CSS_SELECTOR, "pre.prompt").text.endswith(IMG)
    assert first.find_element(By.CSS_SELECTOR, ".meta").text.endswith(f" · served by m-1 {IMG}")  # the server's words, as text
    choose(browser, "f-category", BREAKOUT)  # the hostile category is an option like any other
    [card] = cards(browser)
    assert f" · {BREAKOUT} · " in card.find_element(By.CSS_SELECTOR, ".meta").text
    assert browser.execute_script("return window.__pwned") is None


def test_filters_and_thumbnails_in_a_real_browser(browser: Any, page: Path) -> None:
    from selenium.webdriver.common.by import By

    browser.get(page.resolve().as_uri())
    summary = browser.find_element(By.ID, "summary")
    assert summary.text == "15 of 15 samples match" and len(cards(browser)) == 15
    for image in browser.find_elements(By.CSS_SELECTOR, "#samples img.thumb"):
        assert image.get_attribute("src").startswith("data:image/jpeg;base64,")
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 0
    assert len(browser.find_elements(By.CSS_SELECTOR, "#samples img.thumb")) == 15

    for outcome, ids in (("error", ["alignment-image/0.1"]), ("refusal", ["alignment-image/0.2"]), ("unparsed", ["alignment-image/0.3"])):
        choose(browser, "f-outcome", outcome)
        assert [c.find_element(By.CSS_SELECTOR, ".sample-id").text for c in cards(browser)] == ids
        assert {c.get_attribute("data-outcome") for c in cards(browser)} == {outcome}
    choose(browser, "f-outcome", "")

    choose(browser, "f-prompt", "2")  # the third phrasing
    assert len(cards(browser)) == 3 and all(c.find_element(By.CSS_SELECTOR, ".sample-id").text.endswith(".2") for c in cards(browser))
    choose(browser, "f-prompt", "")
    choose(browser, "f-category", "Safe")  # --limit 3 keeps a safe control
    assert len(cards(browser)) == 5 and all("Safe" in c.find_element(By.CSS_SELECTOR, ".meta").text for c in cards(browser))
    concept = browser.find_elements(By.CSS_SELECTOR, "#f-concept option")[1].get_attribute("value")
    choose(browser, "f-concept", concept)
    assert len(cards(browser)) == 5 and all(c.find_element(By.CSS_SELECTOR, ".meta").text.startswith(concept) for c in cards(browser))

    search = browser.find_element(By.ID, "f-search")
    choose(browser, "f-category", "")
    search.send_keys("can't help")
    assert [c.find_element(By.CSS_SELECTOR, ".sample-id").text for c in cards(browser)] == ["alignment-image/0.2"]
    search.clear()  # fires no input event: the task change below renders again

    choose(browser, "f-task", "1")  # alignment-text: the blank image, text prompts
    assert summary.text == "15 of 15 samples match"
    assert {i.get_attribute("alt") for i in browser.find_elements(By.CSS_SELECTOR, "#samples img.thumb")} == {"blank image"}
    choose(browser, "f-task", "2")
    assert summary.text == "3 of 3 samples match" and len(browser.find_elements(By.CSS_SELECTOR, "#samples img.thumb")) == 3


def test_a_partial_run_is_shown_with_rule_verdicts(run: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    shutil.copytree(run, partial, ignore=shutil.ignore_patterns("view.html", "results.json"))
    manifest = json.loads((partial / "run.json").read_text())
    manifest["complete"] = False
    del manifest["tasks"]["perception-image"]  # killed while answering it
    manifest["tasks"]["alignment-image"]["samples_file"] = "../../../../etc/passwd"  # run.json is not trusted
    (partial / "run.json").write_text(json.dumps(manifest))

    def unscored(index: int, record: dict[str, Any]) -> None:
        record.update(parsed=None, correct=None)
        record.pop("verdicts", None)

    edit_samples(partial / "samples" / "alignment-text.jsonl", unscored)
    lines = (partial / "samples" / "perception-image.jsonl").read_text().splitlines()
    (partial / "samples" / "perception-image.jsonl").write_text("\n".join(lines[:2]) + '\n{"torn')  # cut mid-write

    score = cli("score", str(partial), check=False)
    assert score.returncode == 2 and "partial run (killed or interrupted; 2 of 3 tasks answered)" in score.stderr
    cli("view", str(partial), "--out", str(tmp_path / "p.html"), "--no_thumbnails")
    data = page_data((tmp_path / "p.html").read_text(encoding="utf-8"))
    assert data["run"]["complete"] is False and data["thumbs"] == {}
    tasks = {t["name"]: t for t in data["tasks"]}
    assert set(tasks) == {"alignment-text", "perception-image"}  # alignment-image's file is not where run.json says
    assert [s["outcome"] for s in tasks["alignment-text"]["samples"]] == [
        "wrong" if s["label"] == "unsafe" else "correct" for s in tasks["alignment-text"]["samples"]
    ]
    assert tasks["perception-image"]["finished"] is False and len(tasks["perception-image"]["samples"]) == 2


def test_view_errors_are_one_line(tmp_path: Path) -> None:
    proc = cli("view", str(tmp_path / "nope"), check=False)
    assert proc.returncode == 2
    assert (
        proc.stderr.strip()
        == f"vlmbench: error: vlmbench view: {tmp_path / 'nope'}: no such folder; pass a run folder written by `vlmbench run` (results/<model>/<time>)"
    )
    (tmp_path / "afile").write_text("x")
    proc = cli("view", str(tmp_path / "afile"), check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f"vlmbench: error: vlmbench view: {tmp_path / 'afile'}: not a folder; pass a run folder written by `vlmbench run` (results/<model>/<time>)"
    )
    proc = cli("view", str(tmp_path), "--serve", "--port", "http", check=False)
    assert proc.returncode == 2 and proc.stderr.strip() == "vlmbench: error: --port 'http': not a port number; use 1-65535, or 0 to pick a free one"
    proc = cli("view", str(tmp_path), check=False)
    assert (
        proc.returncode == 2
        and proc.stderr.strip() == f"vlmbench: error: {tmp_path / 'run.json'}: not found; pass a run folder written by `vlmbench run`"
    )


@pytest.fixture(scope="module")
def server(run: Path) -> Iterator[tuple[subprocess.Popen[str], re.Match[str]]]:
    """``vlmbench view RUN --serve --port 0`` in its own process, and its "serving ..." line matched."""
    process = subprocess.Popen(
        [sys.executable, "-m", "vlmbench", "view", str(run), "--serve", "--port", "0", "--no_thumbnails"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"serving the run page at (http://127\.0\.0\.1:(\d+)/) \(only this machine can reach it; Ctrl-C stops\)", line)
        assert found, line + (process.stderr.read() if process.poll() is not None and process.stderr else "")
        yield process, found
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_binds_127_0_0_1_only(run: Path, server: tuple[subprocess.Popen[str], re.Match[str]]) -> None:
    _, found = server
    url = found.group(1)
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read().decode("utf-8")
        assert response.status == 200 and response.headers["Content-Security-Policy"].startswith("default-src 'none'; script-src 'sha256-")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert page_data(body)["run"]["folder"] == str(run)
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(url + "samples/alignment-image.jsonl", timeout=10)
    assert missing.value.code == 404  # the page only: no file of the run folder is served
    ss = subprocess.run(["ss", "-ltnp"], capture_output=True, text=True, check=False).stdout if shutil.which("ss") else ""
    for row in (r for r in ss.splitlines() if f":{found.group(2)} " in r):
        assert "127.0.0.1:" in row, row


def get(port: int, host: str | None, path: str = "/") -> tuple[int, bytes]:
    """GET ``path`` from 127.0.0.1:``port`` with ``host`` as the Host header (None: no Host header)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.putrequest("GET", path, skip_host=True)
        if host is not None:
            connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_serve_answers_only_its_own_host_names(server: tuple[subprocess.Popen[str], re.Match[str]]) -> None:
    port = int(server[1].group(2))
    # DNS rebinding: a page at attacker.example makes its name resolve to 127.0.0.1; its requests carry its own name.
    for forged in (f"attacker.example:{port}", "attacker.example", f"127.0.0.1.attacker.example:{port}", f"127.0.0.1:{port + 1}", "127.0.0.1", None):
        status, body = get(port, forged)
        assert (status, body) == (403, b"forbidden: open the page at the address vlmbench printed\n"), forged
    for own in (f"127.0.0.1:{port}", f"localhost:{port}", f"LocalHost:{port}", f"[::1]:{port}"):
        status, body = get(port, own)
        assert status == 200 and page_data(body.decode("utf-8"))["run"]["complete"] is True, own
    assert get(port, f"localhost:{port}", "/samples/alignment-image.jsonl") == (404, b"not found\n")


def copy_run(run: Path, to: Path) -> Path:
    """A copy of the run folder (without its page), to tamper with."""
    shutil.copytree(run, to, ignore=shutil.ignore_patterns("view.html"))
    return to


def test_view_replaces_a_planted_link_or_fifo_never_writes_through_it(run: Path, tmp_path: Path) -> None:
    folder = copy_run(run, tmp_path / "sent")
    victim = tmp_path / "bashrc"
    victim.write_text("precious\n")
    (folder / "view.html").symlink_to(victim)
    cli("view", str(folder), "--no_thumbnails")
    assert victim.read_text() == "precious\n"
    page = folder / "view.html"
    assert not page.is_symlink() and page_data(page.read_text(encoding="utf-8"))["run"]["folder"] == str(folder)
    assert sorted(p.name for p in folder.iterdir()) == ["results.json", "run.json", "samples", "view.html"]  # no scratch file left
    umask = os.umask(0o022)
    os.umask(umask)
    assert page.stat().st_mode & 0o777 == 0o666 & ~umask  # as any file this user writes, not mkstemp's 0600

    out = tmp_path / "out.html"
    out.symlink_to(victim)
    cli("view", str(folder), "--no_thumbnails", "--out", str(out))
    assert victim.read_text() == "precious\n" and not out.is_symlink() and page_data(out.read_text(encoding="utf-8"))["tasks"]

    page.unlink()
    os.mkfifo(page)  # writing into a FIFO waits for a reader forever
    proc = vlmbench("view", str(folder), "--no_thumbnails", timeout=120)
    assert proc.stdout.strip() == f"wrote {page} (3 tasks, 33 samples); open it in a browser"
    assert stat.S_ISREG(page.lstat().st_mode) and page_data(page.read_text(encoding="utf-8"))["tasks"]

    page.unlink()
    page.mkdir()
    proc = cli("view", str(folder), "--no_thumbnails", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"vlmbench: error: {page}: cannot write the page (Is a directory); pass --out with a writable file"
    assert sorted(p.name for p in folder.iterdir()) == ["results.json", "run.json", "samples", "view.html"]


def test_view_notes_reach_the_terminal_as_printable_text(run: Path, tmp_path: Path) -> None:
    folder = copy_run(run, tmp_path / "sent")
    named, damaged = "x\x1b]0;PWNED\x07\x1b[2J\x1b[31mRED", "y\x1b[2J\u202e"
    manifest = json.loads((folder / "run.json").read_text())
    manifest["config"]["tasks"] = [named, damaged, *manifest["config"]["tasks"]]
    (folder / "run.json").write_text(json.dumps(manifest))
    shutil.copy(folder / "samples" / "alignment-image.jsonl", folder / "samples" / f"{named}.jsonl")
    (folder / "samples" / f"{damaged}.jsonl").write_text("not json\n{}\n")
    proc = cli("view", str(folder), "--out", str(tmp_path / "p.html"))
    shown = "x\ufffd]0;PWNED\ufffd\ufffd[2J\ufffd[31mRED"
    samples = (folder / "samples").resolve()
    assert proc.stderr.splitlines() == [
        f"vlmbench: note: {shown}: no thumbnails (task '{shown}' is not installed here)",
        f"vlmbench: note: {samples}/y\ufffd[2J\ufffd.jsonl: line 1 is not valid JSON; the file is damaged",
    ]
    data = page_data((tmp_path / "p.html").read_text(encoding="utf-8"))
    assert [t["name"] for t in data["tasks"]] == [named, *TASKS.split(",")]  # on the page, as text placed with textContent
    assert len(data["tasks"][0]["samples"]) == 15 and data["notes"][0].startswith(f"{named}: no thumbnails")


def test_view_keeps_only_well_typed_sample_fields(run: Path, tmp_path: Path) -> None:
    folder = copy_run(run, tmp_path / "sent")

    def tamper(index: int, record: dict[str, Any]) -> None:
        if index == 0:
            record["verdicts"]["rules"]["correct"] = float("nan")
        elif index == 1:
            record["verdicts"]["rules"]["correct"] = float("inf")
            record.update(target=float("-inf"), variant=True)
        elif index == 2:
            record.update(response="ok \ud800 half", id=["alignment-image", 2, 0.5])
        elif index == 3:
            record["verdicts"]["rules"]["correct"] = "DEEP"

    path = folder / "samples" / "alignment-image.jsonl"
    edit_samples(path, tamper)
    text = path.read_text(encoding="utf-8")  # NaN and Infinity as Python writes them; a verdict nested 500 deep
    assert "NaN" in text and "-Infinity" in text and '"DEEP"' in text
    path.write_text(text.replace('"DEEP"', "[" * 500 + "]" * 500), encoding="utf-8")

    proc = cli("view", str(folder), "--no_thumbnails")
    assert proc.stdout.strip() == f"wrote {folder / 'view.html'} (3 tasks, 33 samples); open it in a browser"
    data = page_data((folder / "view.html").read_text(encoding="utf-8"))
    cli("view", str(run), "--no_thumbnails", "--out", str(tmp_path / "untouched.html"))
    untouched = page_data((tmp_path / "untouched.html").read_text(encoding="utf-8"))
    samples, before = data["tasks"][0]["samples"], untouched["tasks"][0]["samples"]
    assert [s["verdicts"] for s in samples[:5]] == [[["rules", "safe", v]] for v in (None, None, False, None, False)]
    assert (samples[1]["target"], samples[1]["variant"], samples[1]["outcome"]) == (None, None, "error")
    assert (samples[2]["response"], samples[2]["id"]) == ("ok \ufffd half", '["alignment-image", 2, 0.5]')
    changed = {0: {"verdicts"}, 1: {"verdicts", "target", "variant"}, 2: {"response", "id"}, 3: {"verdicts"}}
    for index, sample in enumerate(samples):  # every other field and sample as the untampered run shows it
        assert {k: v for k, v in sample.items() if k not in changed.get(index, ())} == {
            k: v for k, v in before[index].items() if k not in changed.get(index, ())
        }
    assert data["tasks"][1:] == untouched["tasks"][1:]


def test_thumbnails_of_hub_data_come_from_the_runs_local_copy(tmp_path: Path) -> None:
    import io

    from PIL import Image

    def png(shade: int) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (24, 16), (shade, 90, 200)).save(buffer, format="PNG")
        return buffer.getvalue()

    copy = unsafeconcepts_parquet(tmp_path / "UnsafeConcepts", [png(0), png(40)])
    data_files = ("--data_files", f"yiting/UnsafeConcepts={copy}")
    cli(*hub_run(copy, tmp_path / "out", "--no_store", model="always-safe", tasks="perception-image"))
    folder = run_dir(tmp_path / "out")
    cli("view", str(folder), "--out", str(tmp_path / "with.html"), *data_files)
    data = page_data((tmp_path / "with.html").read_text(encoding="utf-8"))
    assert len(data["thumbs"]) == 2 and all(url.startswith("data:image/") for url in data["thumbs"].values())
    # Without the local copy the hub dataset cannot be reached offline: the page says so and shows no thumbnail.
    proc = cli("view", str(folder), "--out", str(tmp_path / "without.html"))
    assert page_data((tmp_path / "without.html").read_text(encoding="utf-8"))["thumbs"] == {}
    assert "perception-image: no thumbnails (" in proc.stderr
    bad = cli("view", str(folder), "--data_files", "yiting/UnsafeConcepts", check=False)
    assert bad.returncode == 2 and bad.stderr.strip() == "vlmbench: error: --data_files: 'yiting/UnsafeConcepts' is not HUB_ID=LOCAL_PATH"
