"""piforge's doit tasks: a table of contents. Each area lives in build/tasks/<area>.py.

Run through the front door (`./piforge <task>`) or, inside .venv, plain `doit <task>`.
`doit list` shows every task with its one-line summary.
"""
from build.tasks.config import DOIT_CONFIG  # noqa: F401
from build.tasks.project import *  # noqa: F401,F403  test, options, exit-codes
from build.tasks.spine import *  # noqa: F401,F403  build:, path:, plan:, check:, wheel, verify, gc
from build.tasks.docker import *  # noqa: F401,F403  swap, docker image tasks
from build.tasks.cache import *  # noqa: F401,F403  cache:keygen/push/pull, ci
from build.tasks.cluster import *  # noqa: F401,F403  tfconfig:, cluster:check, deploy, rollback
from build.tasks.compat import *  # noqa: F401,F403  compat (wheels vs their target)
from build.tasks.train import *  # noqa: F401,F403  train:, report
from build.tasks.sim import *  # noqa: F401,F403  sim:up, sim:down
from build.tasks.edge import *  # noqa: F401,F403  export:, infer:
