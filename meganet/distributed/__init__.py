r"""Data-parallel objectives on Dask ``distributed`` (optional extra ``distributed``).

The training objectives are sums over examples; this package evaluates them
shard-wise on the workers of a Dask cluster, so that a script written for one
machine runs on many by changing one line::

    from distributed import Client, LocalCluster      # or Client("tcp://scheduler:8786")
    import meganet.distributed as md

    obj = NetworkObjective(net, loss, Y, C, regularizer=reg)
    obj = md.shard(obj, Client(LocalCluster(n_workers=4)))     # the one-line switch
    res = minimize_newton_cg(obj, obj.init_x(rng=0))           # any solver, unchanged

=====================================  ====================================================
:func:`shard`                          serial objective → its sharded counterpart
:class:`ShardedNetworkObjective`       :class:`~meganet.objectives.NetworkObjective` on shards
:class:`ShardedVarProObjective`        :class:`~meganet.objectives.VarProObjective` on shards
:class:`ShardedState`                  an evaluation (the caches stay on the workers)
:class:`CommStats`                     calls, bytes sent/reduced, retries, fault events
:class:`ShardFailure`                  a call that failed past its retries (``last_good_x``)
=====================================  ====================================================

Design: the examples are split into contiguous shards, each scattered once to
one worker (never re-sent); a call sends θ (and the direction) to the shards,
every shard returns its part of the sum over labelled samples (weighted by
``m_s/m``: the serial mean, not the shard's), the parts are summed by a
tree (fan-in 8 on the workers, the last level on the driver, in shard order)
and the regularizers are added on the driver.
The forward cache of a shard stays on its worker between ``value``,
``gradient`` and the Gauss-Newton products, named by ``(version, hash of θ)``.
A worker lost during a call: its shards are re-scattered to the live workers
from the driver's data and the call is retried (``max_retries``); past that
the objective raises :class:`ShardFailure` or returns NaN (``on_failure``),
never a partial sum.

``import meganet`` does not import this package, and Dask is needed only here.
"""

from ._cluster import CommStats, ShardFailure, shard_bounds
from ._objectives import ShardedNetworkObjective, ShardedState, ShardedVarProObjective, shard

__all__ = ["shard", "ShardedNetworkObjective", "ShardedVarProObjective", "ShardedState", "CommStats",
           "ShardFailure", "shard_bounds"]
