"""doit settings shared by every task."""
from __future__ import annotations


from ..paths import piforge_home

# doit's own dependency DB lives with piforge's state, not in the repo; the content
# hash (not doit's file md5s) decides whether a derivation is built.
_db = piforge_home() / "doit" / "doit.db"
_db.parent.mkdir(parents=True, exist_ok=True)

DOIT_CONFIG = {
    "default_tasks": ["wheel"],
    "dep_file": str(_db),
    "backend": "json",
    "verbosity": 2,
    "action_string_formatting": "new",
}
