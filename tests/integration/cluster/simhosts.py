"""Thin re-export: the simulated-host machinery lives in build/sim/hosts.py, shared
with the sim:up / sim:down tasks."""
from build.sim.hosts import *  # noqa: F401,F403
from build.sim.hosts import SimCluster, SimHost, clear_stale, sh, wait_for_port  # noqa: F401
