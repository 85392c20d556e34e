"""doit tasks of the binary cache: keys, push, pull, and the CI entry point.

    ./piforge cache:keygen [-n NAME]    make an ed25519 key pair (first time: writes piforge.toml)
    ./piforge cache:push [RECIPE...]    push built store paths and their closures (default: the wheel)
    ./piforge cache:pull RECIPE...      substitute only: pull from the caches or fail
    ./piforge ci [targets=a,b]          build or substitute every default target, then push
"""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Dict, Iterator, List

from ..errors import BuildError, CacheError, PiforgeError
from ..paths import piforge_home
from .actions import friendly
from .context import project

__all__ = ["task_cache", "task_ci"]


def _log(line: str) -> None:
    print(f"piforge: {line}", flush=True)


def _derivation(name: str) -> Any:
    return project().derivation(name)


def _store() -> Any:
    return project().store


def default_targets() -> List[str]:
    """What CI builds and pushes: ``targets=a,b``, else the profile's wheel and wheelhouse."""
    here = project()
    chosen = here.options.get("targets")
    if chosen:
        return list(chosen)
    targets = [here.wheel_recipe()]
    try:
        wheelhouse = here.profile().wheelhouse
    except PiforgeError:
        return targets
    if here.has_recipe(wheelhouse) and wheelhouse not in targets:
        targets.append(wheelhouse)
    return targets


def _keygen(name: str, directory: str) -> None:
    from ..cache.config import CacheConfig, config_path, load_cache_config, write_cache_config
    from ..cache.signing import SecretKey

    folder = Path(directory).expanduser() if directory else piforge_home() / "keys"
    key = SecretKey.generate(name)
    secret, public = folder / f"{name}.secret", folder / f"{name}.public"
    key.save(secret, public)
    spelling = key.public().spelling()
    print(f"secret key: {secret} (mode 0600; give it only to machines that push, e.g. as a CI secret)")
    print(f"public key: {spelling}")
    path = config_path()
    if not path.exists():
        write_cache_config(CacheConfig(trusted_keys=(spelling,), signing_key=secret))
        print(f"wrote {path}: [cache] signing_key and trusted_keys set; add urls/push_url")
    else:
        config = load_cache_config()
        print(f"{path} exists; to use this key add to its [cache] table:")
        print(f'  signing_key = "{secret}"')
        print(f"  trusted_keys = {list(config.trusted_keys) + [spelling]}")


def _push(recipes: List[str]) -> None:
    from ..cache.push import push_closure
    from ..cache.signing import SecretKey

    config = project().cache_config
    if not config.push_url:
        raise CacheError(f"no push_url in the [cache] table of {config.source}",
                         hint="set push_url (or PIFORGE_CACHE_PUSH_URL)")
    if config.signing_key is None:
        raise CacheError(f"no signing_key in the [cache] table of {config.source}",
                         hint="make one with ./piforge cache:keygen (or set PIFORGE_CACHE_SIGNING_KEY)")
    key = SecretKey.load(config.signing_key)
    remote = config.remote(config.push_url)
    store = _store()
    for name in recipes or default_targets():
        report = push_closure(store, _derivation(name), remote, key, log=_log)
        _log(f"{name}: {len(report.uploaded)} uploaded ({report.bytes_uploaded / 1e6:.1f} MB), "
             f"{len(report.present)} already in {remote.display}")


def _pull(recipes: List[str]) -> None:
    from ..cache.substitute import substitute_or_fail

    if not recipes:
        raise CacheError("cache:pull needs at least one recipe name, e.g. ./piforge cache:pull wrapt")
    config = project().cache_config
    store = _store()
    for name in recipes:
        print(substitute_or_fail(_derivation(name), store, config, log=_log), flush=True)


def _ci() -> None:
    from ..realise import realise

    targets = default_targets()
    store = _store()
    here = project()
    _log(f"ci: targets {', '.join(targets)}; {here.cache_config.describe()}")
    built, failures = [], []
    for name in targets:
        try:
            realise(_derivation(name), store, substituters=here.substituters(_log))
            built.append(name)
        except PiforgeError as error:  # push what did build: the next run substitutes it
            failures.append(f"{name}: {error.message}")
            _log(f"ci: {name} failed: {error.message}")
    if built:
        _push(built)
    if failures:
        raise BuildError(f"ci: {len(failures)} of {len(targets)} target(s) failed: " + "; ".join(failures))


def task_cache() -> Iterator[Dict[str, Any]]:
    """Binary cache: cache:keygen, cache:push [recipe...], cache:pull recipe..."""
    yield {"basename": "cache", "name": None, "doc": task_cache.__doc__}
    yield {
        "name": "keygen",
        "doc": "Make an ed25519 signing key pair (-n NAME, --dir DIR); first use writes piforge.toml.",
        "actions": [(friendly(_keygen),)],
        "params": [
            {"name": "name", "short": "n", "long": "name", "type": str,
             "default": f"{socket.gethostname().split('.')[0] or 'piforge'}-1", "help": "key name"},
            {"name": "directory", "long": "dir", "type": str, "default": "",
             "help": "where to write NAME.secret/NAME.public (default: <piforge home>/keys)"},
        ],
        "uptodate": [False],
        "verbosity": 2,
    }
    for name, doc, action in (
            ("push", "Push built store paths and their closures (default: the wheel); present ones cost one HEAD.", _push),
            ("pull", "Substitute recipes from the configured caches, verified; fail rather than build.", _pull)):
        yield {"name": name, "doc": doc, "actions": [(friendly(action),)], "pos_arg": "recipes",
               "uptodate": [False], "verbosity": 2}


def task_ci() -> Dict[str, Any]:
    """Build or substitute every default target (targets=a,b to choose), then push them."""
    return {"actions": [(friendly(_ci),)], "uptodate": [False], "verbosity": 2}
