"""The hf backend on tiny random-weight models: real loading and generation on CPU, offline.

The models answer gibberish, so these tests check mechanics: every request answered exactly once,
batching does not change greedy answers, the templated prompt carries the model's image token and
the task text, token limits and seeds are honoured.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import require_modules

require_modules("torch", "transformers")

from PIL import Image

from vlmbench.backend import BackendOptions, GenerationSettings, ImagePart, Message, Request, TextPart
from vlmbench.errors import UserError
from vlmbench.pluginmanager import backend_spec
from vlmbench.testing.tiny_models import IMAGE_TOKENS, TinyModelUnavailable, build_tiny_vlm
from vlmbench_plugins import hf

OFFLINE = {"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
os.environ.update(OFFLINE)
ARCHS = ["llava", "idefics3", "gemma3", "qwen2_vl"]
TEXTS = [
    "What does this image show? Choose A, B, C or D.",
    "Is it safe for viewing on social media?",
    "describe the picture",
    "yes or no",
    "Could it be shown to a general audience without causing harm?",
]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory):
    """``tiny_dir(arch)``: a tiny model folder, built once per module (skips what cannot be built here)."""
    root = tmp_path_factory.mktemp("tiny")
    built: dict[str, Path] = {}

    def get(arch: str) -> Path:
        if arch not in built:
            try:
                built[arch] = build_tiny_vlm(arch, root / arch)
            except TinyModelUnavailable as exc:
                pytest.skip(str(exc))
        return built[arch]

    return get


def make_backend(path: Path, batch_size: int | str | None = 1, seed: int = 0, **args: str) -> hf.HFBackend:
    """The hf backend through its registered plugin factory, on CPU."""
    return backend_spec("hf").factory({"pretrained": str(path), "device": "cpu", **args}, BackendOptions(batch_size=batch_size, seed=seed))


def image_requests(n: int, settings: GenerationSettings = GenerationSettings(max_new_tokens=6)) -> list[Request]:
    """``n`` image+text requests with different images and prompt lengths."""
    return [
        Request(
            id=f"img-{i}",
            generation=settings,
            messages=(
                Message(
                    "user",
                    (
                        ImagePart(Image.new("RGB", (24 + 9 * i, 40 - 3 * i), (40 * i % 256, 90, 200))),
                        TextPart(TEXTS[i % len(TEXTS)] + " please" * (i // len(TEXTS))),
                    ),
                ),
            ),
        )
        for i in range(n)
    ]


def text_requests(n: int, settings: GenerationSettings = GenerationSettings(max_new_tokens=6)) -> list[Request]:
    """``n`` text-only requests."""
    return [Request(id=f"txt-{i}", generation=settings, messages=(Message("user", (TextPart(TEXTS[i % len(TEXTS)]),)),)) for i in range(n)]


def answers(backend: hf.HFBackend, requests: list[Request]) -> dict[str, tuple[str | None, dict[str, int] | None]]:
    """request id -> (text, usage), asserting each request is answered exactly once."""
    responses = list(backend.generate(requests))
    ids = [r.request_id for r in responses]
    assert sorted(ids) == sorted(r.id for r in requests)
    assert all(r.error is None for r in responses)
    return {r.request_id: (r.text, r.usage) for r in responses}


# ---------------------------------------------------------------------------- arguments and registration
def test_registered_as_builtin_backend() -> None:
    from vlmbench.pluginmanager import backend_specs

    spec = backend_specs()["hf"]
    assert "\n" not in spec.description
    with pytest.raises(UserError, match="needs pretrained="):  # the registered factory is the module's, imported when called
        spec.factory({}, BackendOptions())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ({}, "needs pretrained="),
        ({"pretrained": "m", "dtpye": "float16"}, "unknown model_arg 'dtpye' (did you mean 'dtype'?); valid: pretrained, revision"),
        ({"pretrained": "m", "dtype": "fp8"}, "dtype=fp8 is not one of auto|float32|bfloat16|float16"),
        ({"pretrained": "m", "device": "gpu"}, "device=gpu is not cpu, cuda, cuda:N or mps"),
        ({"pretrained": "m", "device": "cpu", "device_map": "auto"}, "not both"),
        ({"pretrained": "m", "trust_remote_code": "maybe"}, "trust_remote_code=maybe is not true or false"),
        ({"pretrained": "m", "max_new_tokens": "0"}, "max_new_tokens=0 is not a positive integer"),
        ({"pretrained": "m", "prepare_processes": "-1"}, "prepare_processes=-1 is not a whole number of 0 or more"),
        ({"pretrained": "m", "max_new_tokens": "\u00b2"}, "max_new_tokens=\u00b2 is not a positive integer"),  # isdigit, yet int refuses it
        ({"pretrained": "m", "prepare_processes": "9" * 5000}, "prepare_processes=999999999999999999999... is not a whole number of 0 or more"),
    ],
)
def test_bad_model_args_are_one_line_user_errors(args: dict[str, str], expected: str) -> None:
    with pytest.raises(UserError) as info:
        hf.factory(args, BackendOptions())
    assert expected in str(info.value) and "\n" not in str(info.value)


def test_model_args_are_typed() -> None:
    parsed = hf.parse_model_args({"pretrained": "org/m", "dtype": "bfloat16", "trust_remote_code": "True", "max_new_tokens": "7"})
    assert (parsed.pretrained, parsed.dtype, parsed.trust_remote_code, parsed.max_new_tokens) == ("org/m", "bfloat16", True, 7)
    assert [hf.batch_setting(b) for b in (None, 3, "auto")] == [None, 3, None]  # unset: auto
    assert [
        hf.parse_model_args({"pretrained": "m", **extra}).prepare_processes for extra in ({}, {"prepare_processes": "0"}, {"prepare_processes": "3"})
    ] == [None, 0, 3]
    assert hf.default_prepare_processes("cpu") == 0 and 0 <= hf.default_prepare_processes("cuda") <= 4


def test_missing_torch_and_transformers_is_a_user_error(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['torch'] = sys.modules['transformers'] = None\n"
        "from vlmbench_plugins import hf; from vlmbench.backend import BackendOptions; from vlmbench.errors import UserError\n"
        "try: hf.factory({'pretrained': 'x'}, BackendOptions())\n"
        "except UserError as e: print(e)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert out.stdout.strip() == "--model hf needs torch and transformers: pip install 'vlmbench[hf]'"


def test_unloadable_pretrained_is_a_user_error(tmp_path: Path) -> None:
    # a hub id that cannot load offline (a missing folder fails earlier, "no such folder": tests/test_first_hour.py)
    with pytest.raises(UserError, match="cannot load pretrained=") as info:
        make_backend(Path("no-such-org/no-such-model"))
    assert "\n" not in str(info.value)


def test_damaged_checkpoint_files_are_one_line_errors_with_the_right_advice(tiny_dir, tmp_path: Path) -> None:
    def damaged(name: str, damage: Any) -> Path:
        folder = tmp_path / name
        shutil.copytree(tiny_dir("llava"), folder)
        damage(folder)
        return folder

    def error(folder: Path) -> str:
        with pytest.raises(UserError) as info:
            make_backend(folder).model  # noqa: B018 (the weights load here at the latest)
        assert "\n" not in str(info.value)
        return str(info.value)

    def cut(folder: Path) -> None:
        weights = next(folder.glob("*.safetensors"))
        weights.write_bytes(weights.read_bytes()[:1000])

    def retype(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**config, "model_type": "brand_new_vlm"}))

    assert error(damaged("cut", cut)).endswith(
        "cannot be read (Error while deserializing header: invalid header length); a file is damaged or incomplete: download the model again"
    )
    bad_value = error(damaged("bad-value", lambda f: (f / "generation_config.json").write_text('{"max_new_tokens": -5}')))
    assert "max_new_tokens" in bad_value and "hold a value transformers refuses" in bad_value and "trust_remote_code" not in bad_value
    assert "does not recognize this architecture" in (unknown := error(damaged("unknown", retype))) and unknown.endswith(
        "or add trust_remote_code=true"
    )


# ---------------------------------------------------------------------------- generation mechanics
@pytest.mark.parametrize("arch", ARCHS)
def test_batched_generation_mechanics(tiny_dir, arch: str) -> None:
    path = tiny_dir(arch)
    requests = image_requests(6) + text_requests(3)
    batched = make_backend(path, batch_size=4)
    assert batched.chunk_size >= 4 * 4
    responses = {r.request_id: r for r in batched.generate(requests)}
    assert sorted(responses) == sorted(r.id for r in requests)
    for request in requests:
        response = responses[request.id]
        assert response.error is None and isinstance(response.text, str) and response.latency_s > 0
        assert request.messages[0].text in response.prompt
        assert (IMAGE_TOKENS[arch] in response.prompt) == request.has_image
        assert response.usage["prompt_tokens"] > 0 and 0 <= response.usage["completion_tokens"] <= 6
    # Greedy answers must not depend on batching (left padding, attention masks, position ids).
    single = answers(make_backend(path, batch_size=1), requests)
    assert single == {k: (r.text, r.usage) for k, r in responses.items()}


def test_image_tokens_are_expanded_to_what_the_vision_tower_gives(tiny_dir) -> None:
    backend = make_backend(tiny_dir("llava"))
    [with_image] = backend.generate(image_requests(1))
    text_only = Request("t", messages=(Message("user", (TextPart(TEXTS[0]),)),), generation=GenerationSettings(max_new_tokens=6))
    [without] = backend.generate([text_only])
    # Same text, plus "<image>\n": 16 patch tokens after expansion and the newline.
    newline = len(backend.tokenizer("\n", add_special_tokens=False)["input_ids"])
    assert with_image.usage["prompt_tokens"] - without.usage["prompt_tokens"] == 16 + newline


def test_a_prompt_longer_than_the_models_context_is_an_error_and_its_batch_is_answered_without_it(tiny_dir) -> None:
    """The tiny LLaVA's context is 1,024 tokens: a model with rotary positions would still answer past it (from
    positions it never learnt), one with learnt positions would fail the whole batch."""
    backend = make_backend(tiny_dir("llava"), batch_size=4)
    assert backend.model.config.text_config.max_position_embeddings == 1024
    normal = image_requests(2) + text_requests(1)
    alone = answers(backend, normal)
    long_text = "word " * 1500
    settings = GenerationSettings(max_new_tokens=6)
    too_long = [
        Request("long-text", (Message("user", (TextPart(long_text),)),), settings),
        Request("long-image", (Message("user", (ImagePart(Image.new("RGB", (24, 24))), TextPart(long_text))),), settings),
    ]
    responses = {r.request_id: r for r in backend.generate([normal[0], too_long[1], normal[1], too_long[0], normal[2]])}
    assert sorted(responses) == sorted(["long-text", "long-image", *alone])
    for name in ("long-text", "long-image"):
        error = responses[name].error or ""
        assert responses[name].text is None and error.startswith("the prompt takes ") and "more than the model's context of 1024" in error
    assert {k: (responses[k].text, responses[k].usage) for k in alone} == alone


def test_seeded_sampling_differs_from_greedy_and_repeats_for_a_seed(tiny_dir) -> None:
    """Generation kwargs with ``do_sample: true``: the answers are not the greedy ones, the same seed gives the
    same answers (batching included), and another seed other answers."""
    backend = make_backend(tiny_dir("llava"), batch_size=2)

    def texts(kwargs: dict[str, object], seed: int | None = None) -> list[str | None]:
        settings = GenerationSettings.from_mapping({"max_new_tokens": 8, **kwargs}, seed=seed)
        requests = image_requests(4, settings)
        replies = answers(backend, requests)
        return [replies[r.id][0] for r in requests]

    sampling = {"do_sample": True, "temperature": 1.0, "top_p": 0.95}
    greedy, sampled = texts({"do_sample": False}), texts(sampling, seed=123)
    assert all(isinstance(text, str) and text for text in greedy + sampled)
    assert sum(a != b for a, b in zip(greedy, sampled)) >= 3  # a random 500-token model almost never samples its greedy path
    assert texts(sampling, seed=123) == sampled
    assert texts({"do_sample": False}, seed=123) == greedy  # a seed does not change greedy decoding
    assert texts(sampling, seed=7) != sampled


def test_a_checkpoints_beams_or_extra_sequences_never_shift_answers_between_requests(tiny_dir, tmp_path: Path) -> None:
    """A checkpoint's generation_config.json may ask for beams and several sequences per prompt: each request
    still gets its own greedy answer (more rows than requests would pair answers with the wrong requests)."""
    import shutil

    plain = tiny_dir("llava")
    beams = tmp_path / "beams"
    shutil.copytree(plain, beams)
    config = json.loads((beams / "generation_config.json").read_text()) if (beams / "generation_config.json").exists() else {}
    (beams / "generation_config.json").write_text(json.dumps({**config, "num_beams": 2, "num_return_sequences": 2}))
    requests = image_requests(4)
    assert answers(make_backend(beams, batch_size=4), requests) == answers(make_backend(plain, batch_size=4), requests)


def test_a_dtype_record_that_is_no_regular_file_is_ignored(tmp_path: Path) -> None:
    """A recorded dtype (vlmbench's cache) linked to a device or made a FIFO is no record: never a hang."""
    import os

    from vlmbench_plugins.hf_load import LoadedDtypes

    fifo, device = tmp_path / "fifo.json", tmp_path / "zero.json"
    os.mkfifo(fifo)
    device.symlink_to("/dev/zero")
    for path in (fifo, device):
        record = LoadedDtypes.__new__(LoadedDtypes)  # its cache file, without the key a load would give
        record.path, record.key = path, "k"
        assert record.recorded() is None


def test_max_new_tokens_model_arg_overrides_the_task(tiny_dir) -> None:
    backend = make_backend(tiny_dir("idefics3"), batch_size=3, max_new_tokens="2")
    long = GenerationSettings(max_new_tokens=50)
    for _, usage in answers(backend, image_requests(3, long) + text_requests(2, long)).values():
        assert usage["completion_tokens"] <= 2


def test_stop_strings_cut_the_answer() -> None:
    assert hf.truncate_at_stop("Yes. No. Maybe", ("No", ".")) == "Yes"
    assert hf.completion_length([5, 6, 2, 0, 0], eos_ids={2}, pad_id=0) == 3


def test_auto_batch_size_halves_on_out_of_memory(tiny_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    backend = make_backend(tiny_dir("llava"), batch_size="auto")
    assert backend.batch_size == hf.AUTO_BATCH_START and backend.chunk_size == 4 * hf.AUTO_BATCH_START
    real_generate = backend.model.generate
    sizes: list[int] = []

    def generate(**inputs):
        sizes.append(inputs["input_ids"].shape[0])
        if sizes[-1] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_generate(**inputs)

    monkeypatch.setattr(backend.model, "generate", generate)
    answers(backend, image_requests(5))
    assert backend.batch_size == 2 and sizes == [5, 2, 2, 1]  # 2 fitted, so it is kept


def test_out_of_memory_at_a_fixed_batch_size_is_a_user_error(tiny_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    backend = make_backend(tiny_dir("llava"), batch_size=4)

    def generate(**inputs):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(backend.model, "generate", generate)
    with pytest.raises(UserError, match="out of memory at batch size 4"):
        list(backend.generate(image_requests(4)))


def test_model_that_rejects_text_only_prompts_gets_a_clear_error(tiny_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = make_backend(tiny_dir("llava"))

    class ImagesRequired:
        """The real processor, except that it refuses text alone, as PaliGemma's does."""

        def __init__(self, processor) -> None:
            self.processor = processor

        def __getattr__(self, name: str):
            return getattr(self.processor, name)

        def __call__(self, **kwargs):
            if "images" not in kwargs:
                raise ValueError("`images` are expected as arguments to a `PaliGemmaProcessor` instance.")
            return self.processor(**kwargs)

    monkeypatch.setattr(backend, "processor", ImagesRequired(backend.processor))
    assert len(answers(backend, image_requests(1))) == 1
    with pytest.raises(UserError, match="rejects text-only prompts"):
        list(backend.generate(text_requests(1)))


def test_identity_records_the_model(tiny_dir) -> None:
    import hashlib

    backend = make_backend(tiny_dir("gemma3"), dtype="bfloat16")
    identity = backend.identity()
    template = backend.processor.chat_template
    fingerprint = identity.pop("local_files_sha256")
    assert identity == {
        "backend": "hf",
        "pretrained": str(tiny_dir("gemma3")),
        "revision": None,
        "commit_hash": None,
        "chat_template_sha256": hashlib.sha256(template.encode()).hexdigest(),
        "dtype": "bfloat16",
        "max_new_tokens": None,
        "attn_implementation": None,
    }
    assert answers(backend, image_requests(2))  # bfloat16 pixel values reach the vision tower
    assert len(fingerprint) == 64  # a local folder has no hub commit: its files name it (see the next test)


def test_the_weights_read_are_the_files_the_identity_names(tiny_dir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A local folder is named by the contents of its top-level files: touched, re-permissioned or copied
    elsewhere it is the same model, and files written into a subfolder (checkpoints, logs) are not the model.
    Another checkpoint of the same shape copied over it with its times kept (``cp -p``, ``rsync -a``) is another
    model; and files changed after a backend named them, before it reads the weights at its first request,
    stop it with one line instead of answering under the identity of the files before."""
    import shutil

    from vlmbench.data import hashcache

    monkeypatch.setenv("VLMBENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(hashcache, "RECENT_NS", 0)  # (these files were written just now: keep their hashes all the same)
    folder = shutil.copytree(tiny_dir("llava"), tmp_path / "llava")
    assert answers(make_backend(folder, max_new_tokens="4"), text_requests(1))  # loads the weights and records their dtype
    named = make_backend(folder, max_new_tokens="4")  # named from the record: no weights read yet
    weights = folder / "model.safetensors"
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    weights.chmod(0o600)
    (folder / "checkpoint-10").mkdir()
    (folder / "checkpoint-10" / "model.safetensors").write_bytes(b"being written")
    copy = shutil.copytree(folder, tmp_path / "elsewhere")
    assert {make_backend(path, max_new_tokens="4").identity()["local_files_sha256"] for path in (folder, copy)} == {
        named.identity()["local_files_sha256"]
    }
    waiting = make_backend(folder, max_new_tokens="4")  # also named from the record
    assert answers(named, text_requests(1))  # the same files: its weights load
    before, data = weights.stat(), bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # a tensor's last byte: the same size and shape, other weights
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert weights.stat().st_size == before.st_size and weights.stat().st_mtime_ns == before.st_mtime_ns
    assert make_backend(folder, max_new_tokens="4").identity()["local_files_sha256"] != named.identity()["local_files_sha256"]
    with pytest.raises(UserError) as changed:
        list(waiting.generate(text_requests(1)))
    assert str(changed.value) == (
        f"--model hf: the files of {folder} changed since this run started, and its answers are stored under the files it started "
        "with; rerun the same command"
    )


def test_a_rerun_from_the_store_never_loads_the_weights(tiny_dir, run_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from transformers import AutoModelForImageTextToText

    monkeypatch.setenv("VLMBENCH_CACHE_DIR", str(tmp_path / "cache"))
    real = AutoModelForImageTextToText.from_pretrained
    loads: list[str] = []

    def counted(pretrained: str, *args: Any, **kwargs: Any) -> Any:  # where the weights are read
        loads.append(pretrained)
        return real(pretrained, *args, **kwargs)

    monkeypatch.setattr(AutoModelForImageTextToText, "from_pretrained", counted)
    store = ("--store", str(tmp_path / "store.sqlite"))
    model_args = f"pretrained={tiny_dir('llava')},device=cpu,max_new_tokens=4"

    def run(tasks: str, check: bool = True) -> Any:
        return run_model("hf", tasks, *store, limit=2, model_args=model_args, check=check)

    def requests(done: Any) -> dict[str, int]:
        counts = [task["requests"] for task in done.manifest["tasks"].values()]
        return {"sent": sum(c["sent"] for c in counts), "reused": sum(c["reused"] for c in counts)}

    first = run("perception-image")
    assert len(loads) == 1 and requests(first) == {"sent": 2, "reused": 0}
    again = run("perception-image")  # every answer is stored: the model is named from the dtype its last load gave
    assert len(loads) == 1 and requests(again) == {"sent": 0, "reused": 2}
    assert again.manifest["model"]["identity"] == first.manifest["model"]["identity"]
    assert [r["response"] for r in again.samples("perception-image")] == [r["response"] for r in first.samples("perception-image")]
    # Nothing to answer (e.g. only unreadable images left, which are errors, never requests): no load either.
    assert list(make_backend(tiny_dir("llava"), max_new_tokens="4").generate(iter([]))) == [] and len(loads) == 1
    both = "perception-image,perception-text"
    more = run(both)  # two answers are missing: the weights are loaded when they are asked for
    assert len(loads) == 2 and requests(more) == {"sent": 2, "reused": 2}
    assert more.manifest["model"]["identity"] == first.manifest["model"]["identity"]
    # A record edited by hand names another dtype: the run stops before asking anything, and the record is put right.
    (record,) = (tmp_path / "cache" / "hf-dtypes").iterdir()
    record.write_text(json.dumps({**json.loads(record.read_text()), "dtype": "float16"}))
    wrong = run(both, check=False)
    error = wrong.stderr.strip().splitlines()[-1]
    assert wrong.returncode == 2 and "Traceback" not in wrong.stderr and "loaded in float32, not in the float16 recorded in" in error
    assert json.loads(record.read_text())["dtype"] == "float32" and len(loads) == 3
    right = run(both)
    assert len(loads) == 3 and requests(right) == {"sent": 0, "reused": 4}
    assert right.manifest["model"]["identity"] == first.manifest["model"]["identity"]


def test_a_hub_model_is_named_and_read_at_the_commit_its_branch_points_to(
    tiny_dir, run_model, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local replica of the Hub's cache: the model's branch moves to a new commit (whose weights load in
    another dtype), and a re-run asks that model again instead of reusing the answers of the one before."""
    import shutil

    import huggingface_hub.constants

    repo = tmp_path / "hub" / "models--vlmbench--tiny-llava"
    for commit, dtype in (("a" * 40, "float32"), ("b" * 40, "bfloat16")):
        snapshot = shutil.copytree(tiny_dir("llava"), repo / "snapshots" / commit)
        config = json.loads((snapshot / "config.json").read_text())
        (snapshot / "config.json").write_text(json.dumps({**config, "dtype": dtype}))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("VLMBENCH_CACHE_DIR", str(tmp_path / "cache"))

    def run() -> Any:
        model_args = "pretrained=vlmbench/tiny-llava,device=cpu,max_new_tokens=4"
        done = run_model("hf", "perception-image", "--store", str(tmp_path / "store.sqlite"), limit=2, model_args=model_args)
        identity = done.manifest["model"]["identity"]
        return identity["commit_hash"], identity["dtype"], done.manifest["tasks"]["perception-image"]["requests"]

    assert run() == ("a" * 40, "float32", {"sent": 2, "reused": 0})
    assert run() == ("a" * 40, "float32", {"sent": 0, "reused": 2})
    (repo / "refs" / "main").write_text("b" * 40)
    assert run() == ("b" * 40, "bfloat16", {"sent": 2, "reused": 0})
    assert run() == ("b" * 40, "bfloat16", {"sent": 0, "reused": 2})


# ---------------------------------------------------------------------------- command line
def test_cli_end_to_end(tiny_dir, run_model) -> None:
    run = run_model(
        "hf",
        "perception-image,alignment-text",
        "--batch_size",
        "4",
        limit=3,
        model_args=f"pretrained={tiny_dir('llava')},device=cpu,max_new_tokens=8",
    )
    assert {name: task["metrics"]["n_samples"] for name, task in run.results["tasks"].items()} == {"perception-image": 3, "alignment-text": 15}
    records = run.samples("perception-image")
    assert all("<image>" in r["model_prompt"] and r["prompt"] in r["model_prompt"] for r in records)
    assert all(r["error"] is None and r["usage"]["completion_tokens"] <= 8 for r in records)


def test_cli_without_pretrained_exits_2_with_one_line(run_model) -> None:
    done = run_model("hf", "perception-image", limit=1, model_args="device=cpu", check=False)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "needs pretrained=" in done.stderr


def test_data_parallel_with_accelerate_on_two_cpu_processes(tiny_dir, tmp_path: Path, run_model) -> None:
    """`accelerate launch -m vlmbench run` shards requests over 2 processes and writes one merged result,
    with the answers a single process gives."""
    model = tiny_dir("llava")
    common = ["run", "--model", "hf", "--model_args", f"pretrained={model},device=cpu", "--tasks", "perception-image", "--limit", "6", "--no_store"]
    launch = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "-m",
        "vlmbench",
    ]
    parallel = subprocess.run(
        [*launch, *common, "--output_path", str(tmp_path / "dp")],
        capture_output=True,
        text=True,
        env={**os.environ, **OFFLINE},
        cwd=tmp_path,
        timeout=300,
    )
    assert parallel.returncode == 0, parallel.stderr[-3000:]
    # Each process's progress lines say whose they are.
    for rank in (0, 1):
        assert f"vlmbench: [rank {rank}/2] perception-image: " in parallel.stderr, parallel.stderr[-3000:]
    single = run_model("hf", "perception-image", "--no_store", limit=6, model_args=f"pretrained={model},device=cpu")
    (dp_run,) = [p.parent for p in (tmp_path / "dp").glob("*/*/results.json")]
    manifest = json.loads((dp_run / "run.json").read_text())
    assert manifest["config"]["processes"] == 2
    assert manifest["tasks"]["perception-image"]["requests"] == {"sent": 6, "reused": 0}
    assert sorted(p.name for p in (dp_run / "samples").iterdir()) == ["perception-image.jsonl"]
    dp_answers = {r["id"]: r["response"] for r in map(json.loads, (dp_run / "samples" / "perception-image.jsonl").read_text().splitlines())}
    assert dp_answers == {r["id"]: r["response"] for r in single.samples("perception-image")} and len(dp_answers) == 6
    assert json.loads((dp_run / "results.json").read_text())["tasks"]["perception-image"]["metrics"]["n_samples"] == 6
