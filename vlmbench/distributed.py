"""Data parallelism on an existing engine: ``accelerate launch -m vlmbench run ...``.

Each process answers every ``world``-th sample; the main process merges the per-process sample
files and writes the one results file. Without a launcher this is a no-op (one process), and
accelerate (hence torch) is imported only when a launcher started several processes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from vlmbench.errors import UserError
from vlmbench.numbers import whole_number


@dataclass
class Processes:
    """This process's place among the processes of a run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    _state: Any = None

    @property
    def is_main(self) -> bool:
        """True for the process that writes the merged results."""
        return self.rank == 0

    def wait(self) -> None:
        """Block until every process gets here."""
        if self._state is not None:
            self._state.wait_for_everyone()

    def share(self, value: Any) -> Any:
        """The main process's ``value``, on every process."""
        if self._state is None:
            return value
        from accelerate.utils import broadcast_object_list

        return broadcast_object_list([value], from_process=0)[0]


def processes() -> Processes:
    """The current process group: from accelerate when launched with several processes, else a single process.
    The launcher's variables are checked first: a rank outside the group would wait for ever for its peers."""
    text = os.environ.get("WORLD_SIZE", "1").strip() or "1"
    world = whole_number(text)
    if world is None:
        raise UserError(f"WORLD_SIZE={text[:40]!r} is not a number of processes; unset it, or launch with `accelerate launch`")
    if world <= 1:
        return Processes()
    for name in ("RANK", "LOCAL_RANK"):
        rank_text = os.environ.get(name, "0").strip() or "0"
        rank = whole_number(rank_text)
        if rank is None or rank >= world:
            raise UserError(
                f"{name}={rank_text[:40]!r} is not one of the {world} processes WORLD_SIZE names (0 to {world - 1}); "
                "unset both, or launch with `accelerate launch`"
            )
    import torch
    from accelerate import PartialState

    state = PartialState(cpu=not torch.cuda.is_available())
    return Processes(state.process_index, state.num_processes, state.local_process_index, state)
