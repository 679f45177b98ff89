"""The embedded single-node Ray of a ``qa-engine batch`` run without ``--address`` (``batch.job`` imports it
only then: with an address, or with Ray already started by the caller, the job uses ``ray.init`` as it is).

It is the node ``ray.init()`` would start (token authentication on unless ``RAY_AUTH_MODE`` says otherwise,
usage stats off, no dashboard), less what a one-job node never uses. Each of these is a Python process
starting on the same cores as the node's own, and ``ray.init()`` has no option to leave out any of them:

- the autoscaler monitor: a fixed local node has nothing to scale;
- the log monitor, unless ``verbose``: it only forwards worker logs to a driver that asks for them
  (``log_to_driver``, which the job sets only with ``--verbose``);
- the API server: with the dashboard off it runs only the usage-stats module (ray-project/ray#26042),
  and usage stats are off; ``ray.init()`` waits for it (about a second on two cores) before it starts the
  raylet. Without it the dashboard agent's event module, which would post the node's events to it (and
  finds nothing listening there when the dashboard is off), writes once a second to Ray's session log
  (``dashboard_agent.log``) that it found no address; nothing else notices.

The node's dashboard agent listens on a port of its own choosing, not Ray's fixed default (52365): when
another Ray on the machine holds that port, the agent retries for 3.3 s and the raylet waits for it.
Without these the node is up 1–2 s sooner on the two-core machine (``benchmarks/RESULTS.md``).

Ray 2.60 is pinned: `Node` and `RayParams` are Ray's own (private) classes, the ones ``ray.init()`` uses.
"""

from __future__ import annotations

from ray._common.usage import usage_lib
from ray._private.authentication.authentication_token_setup import (
    enable_token_auth_by_default,
    ensure_token_if_auth_enabled,
)
from ray._private.node import Node
from ray._private.parameter import RayParams

OBJECT_STORE_BYTES = 256 * 1024 * 1024  # the actors return small summaries; the shards' rows never go through it


class LocalNode(Node):
    """A head node without the API server (see the module's docstring)."""

    def start_api_server(self, *, include_dashboard: bool | None, raise_on_failure: bool) -> None:
        """Nothing to start: with the dashboard off the API server only reports usage stats, which are off."""


def start(cpus: int, verbose: bool) -> Node:
    """Start the node with ``cpus`` CPUs (one an actor: Ray starts that many worker processes ahead and no
    more) and return it; the caller connects with ``ray.init(address=node.address)`` and, after
    ``ray.shutdown()`` (which stops only what ``ray.init()`` started), calls `stop`."""
    enable_token_auth_by_default()  # as ray.init() does for a cluster it starts
    ensure_token_if_auth_enabled({}, create_token_if_missing=True)
    usage_lib.set_usage_stats_enabled_via_env_var(False)
    params = RayParams(num_cpus=cpus, include_dashboard=False, object_store_memory=OBJECT_STORE_BYTES,
                       dashboard_agent_listen_port=0, no_monitor=True, include_log_monitor=verbose)
    return LocalNode(params, head=True, shutdown_at_exit=False, spawn_reaper=True, ray_init_cluster=True)


def stop(node: Node) -> None:
    """Stop the node's processes, as ``ray.shutdown()`` stops those of a node ``ray.init()`` started."""
    node.destroy_external_storage()
    node.kill_all_processes(check_alive=False, allow_graceful=True)
