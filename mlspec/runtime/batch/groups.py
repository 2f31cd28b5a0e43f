"""Consecutive mini-batches of one block, scored in one call when the model scores rows independently."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from mlspec.runtime.batch.readers import Block, MiniBatch

GROUP_ROWS = 1 << 14  # rows of consecutive mini-batches scored in one call, for a model that allows it


@dataclass(frozen=True)
class Group:
    """Mini-batches scored together: their rows as one table (a slice of the block's), and its model input."""

    batches: list[MiniBatch]
    table: pa.Table
    features: np.ndarray | None


def in_groups(block: Block, batches: list[MiniBatch], features: np.ndarray | None, per_group: int) -> list[Group]:
    """`batches` (consecutive, of `block`, which `features` is the model input of) in groups of `per_group`."""
    groups = []
    for start in range(0, len(batches), per_group):
        members = batches[start:start + per_group]
        if len(members) == 1:
            groups.append(Group(members, members[0].table, members[0].features))
            continue
        offset, rows = members[0].first_row - block.first_row, sum(b.rows for b in members)
        groups.append(Group(members, block.table.slice(offset, rows),
                            None if features is None else features[offset:offset + rows]))
    return groups


def batches_per_call(mini_batch_size: int, batchable: bool) -> int:
    """Mini-batches per group: as many as fit GROUP_ROWS when rows are scored independently, else one."""
    return max(1, GROUP_ROWS // mini_batch_size) if batchable else 1
