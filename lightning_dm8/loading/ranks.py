"""Which rank this process is, how many there are, and how ranks agree — with or without a Lightning Trainer.

The shard plan needs the global rank and the world size. They come from, in this order: a Lightning ``Trainer``;
an initialised ``torch.distributed`` process group (Fabric, ``torchrun``, ``mp.spawn`` with
``init_process_group``); explicit ``rank``/``world_size`` arguments. Ranks that share a process group can agree
(on the version to read, on whether the cache is complete); ranks given only explicit arguments cannot talk, so
every decision they make must follow from what they all know (see :class:`Ranks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.distributed as dist

from lightning_dm8.errors import InvalidInputError


def _process_group() -> tuple[int, int] | None:
    """``(rank, world_size)`` of the initialised default process group, or None."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return None


def check_explicit(rank: int | None, world_size: int | None) -> None:
    """Refuse explicit ``rank``/``world_size`` that cannot describe a process (both or neither; 0 <= rank < world).

    Raises:
        InvalidInputError: naming the setting.
    """
    if (rank is None) != (world_size is None):
        raise InvalidInputError(
            f"DM8DataModule: give rank and world_size together (or neither: they then come from the Trainer or the "
            f"torch.distributed process group); got rank={rank}, world_size={world_size}"
        )
    if world_size is not None and rank is not None and (world_size < 1 or not 0 <= rank < world_size):
        raise InvalidInputError(
            f"DM8DataModule: rank must be in 0..world_size-1 and world_size at least 1; got rank={rank}, "
            f"world_size={world_size}"
        )


@dataclass(frozen=True)
class Ranks:
    """This process's global ``rank`` among ``world_size`` ranks; ``connected`` when a process group joins them.

    Without a connection the collective methods fall back to what needs no talking: :meth:`broadcast` returns this
    rank's own value, :meth:`all_true` is False for several ranks (a rank cannot know the others' answer, so it takes
    the answer that is safe for all).
    """

    rank: int = 0
    world_size: int = 1
    connected: bool = False

    @classmethod
    def detect(
        cls, trainer: tuple[int, int] | None = None, rank: int | None = None, world_size: int | None = None
    ) -> Ranks:
        """From the Trainer's ``(global_rank, world_size)`` if given, else the process group, else the explicit
        arguments, else a single process.

        Raises:
            InvalidInputError: explicit arguments that contradict the Trainer or the process group.
        """
        check_explicit(rank, world_size)
        group = _process_group()
        found, source = (trainer, "the Trainer") if trainer is not None else (group, "the torch.distributed group")
        if found is None:
            return cls(rank or 0, world_size or 1)
        if rank is not None and (rank, world_size) != found:
            raise InvalidInputError(
                f"DM8DataModule: rank={rank}, world_size={world_size} were given, but {source} says rank "
                f"{found[0]} of {found[1]}; leave rank and world_size out (they are found) or make them agree"
            )
        return cls(found[0], found[1], connected=found[1] > 1 and group is not None and group[1] == found[1])

    def broadcast(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (this rank's own when the ranks are not connected)."""
        if not self.connected:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_gather(self, value: Any) -> list[Any] | None:
        """Every rank's ``value``, in rank order; None when several ranks are not connected."""
        if self.world_size == 1:
            return [value]
        if not self.connected:
            return None
        values: list[Any] = [None] * self.world_size
        dist.all_gather_object(values, value)
        return values

    def all_true(self, flag: bool) -> bool:
        """Whether ``flag`` holds on every rank (False for unconnected ranks: they cannot know)."""
        values = self.all_gather(bool(flag))
        return values is not None and all(values)
