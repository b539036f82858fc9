"""Map shard functions and add their partial results in a tree, on this machine or on a Ray cluster.

Big alignments are sums over shards of the public corpus (embeddings of text shards, ciphertexts of
sample shards, partial cross-covariances), so one small interface covers both sides: `map` runs a
`ShardTask` over items and yields the results in order, `map_reduce` also adds them up in a tree.
`LocalExecutor` runs in this process (the default path, unchanged); `RayExecutor` (the optional
`ray` extra, imported only when selected) runs the same tasks on a Ray cluster's workers."""

from .choose import EXECUTOR_KINDS, ExecutorKind, make_executor
from .executor import LocalExecutor, ShardExecutor, ShardTask, tree_reduce

__all__ = [
    "EXECUTOR_KINDS",
    "ExecutorKind",
    "LocalExecutor",
    "ShardExecutor",
    "ShardTask",
    "make_executor",
    "tree_reduce",
]
