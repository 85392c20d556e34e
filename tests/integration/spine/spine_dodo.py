"""The spine's tasks alone (dodo.py minus the other areas): the tests point
PIFORGE_RECIPES at small recipe dirs, which other areas' tasks need not understand."""
from build.tasks.config import DOIT_CONFIG  # noqa: F401
from build.tasks.spine import *  # noqa: F401,F403
