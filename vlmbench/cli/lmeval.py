"""``vlmbench run`` flags in lm-evaluation-harness's spelling, so its habits work here.

``--gen_kwargs``, ``--system_instruction``, ``--verbosity``, ``--device``, ``--tasks list`` and a
fractional ``--limit`` work as in lm-eval. ``--log_samples`` and ``--apply_chat_template`` have no
job in vlmbench (every sample is always logged, the chat template always applied): each gets a
one-line error saying so instead of an argparse usage dump.
"""

from __future__ import annotations

import argparse
from typing import Any

from vlmbench.errors import UserError

NOT_NEEDED = {
    "--log_samples": "vlmbench always writes every sample (prompt, response, verdict) to samples/<task>.jsonl in the run folder; drop the flag",
    "--apply_chat_template": "vlmbench always prompts a model through its own chat template (hf) or the chat API (openai); drop the flag",
}


class _NotNeeded(argparse.Action):
    """A flag lm-eval has and vlmbench does not need: a one-line error naming the equivalent."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option_string: str | None = None) -> None:
        raise UserError(f"{option_string}: {NOT_NEEDED[str(option_string)]}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the lm-eval-style flags to ``vlmbench run``."""
    from vlmbench.cli.logs import verbosity

    parser.add_argument(
        "--gen_kwargs", default="", help="generation settings over every task's, k=v,... (max_new_tokens, do_sample, temperature, top_p, until)"
    )
    parser.add_argument("--system_instruction", default=None, help="a system prompt sent before every request")
    parser.add_argument("--device", default=None, help="shortcut for --model_args device=DEVICE (e.g. cuda:0)")
    parser.add_argument("--verbosity", type=verbosity, default="INFO", help="log level on stderr: DEBUG, INFO (default), WARNING or ERROR")
    parser.add_argument("--log_samples", nargs=0, action=_NotNeeded, help=argparse.SUPPRESS)
    parser.add_argument("--apply_chat_template", nargs="?", action=_NotNeeded, help=argparse.SUPPRESS)


def with_device(model_args: str, device: str | None) -> str:
    """``--model_args`` with ``device=`` added from ``--device`` (a different device= in both is an error)."""
    if not device:
        return model_args
    from vlmbench.evaluation import parse_key_values

    given = parse_key_values(model_args).get("device")
    if given is not None and given != device:
        raise UserError(f"--device {device} contradicts device={given} in --model_args; give one of them")
    return model_args if given is not None else ",".join(filter(None, [model_args, f"device={device}"]))


def before_run(ns: argparse.Namespace) -> int | None:
    """Apply ``--verbosity`` and ``--device``; answer ``--tasks list``. Returns an exit code when the
    command is done without running anything, else None."""
    from vlmbench.cli.logs import set_level

    set_level(ns.verbosity)
    if ns.tasks.strip() == "list":
        from vlmbench.cli.ls import print_tasks

        print_tasks(ns.include_path or [])
        return 0
    if not ns.model:
        raise UserError("--model: missing; name a backend, e.g. --model hf --model_args pretrained=ORG/MODEL (`vlmbench ls models` lists them)")
    ns.model_args = with_device(ns.model_args, ns.device)
    return None
