from __future__ import annotations

from pathlib import Path

import pytest

from build.cache.config import load_cache_config
from build.errors import CacheError
from build.tasks.cache import _keygen, _pull, _push


def test_keygen_first_writes_config_then_only_advises(piforge_home: Path, capsys: pytest.CaptureFixture) -> None:
    _keygen("ci-1", "")
    config = load_cache_config()
    assert config.signing_key == piforge_home / "keys" / "ci-1.secret"
    assert [k.split(":")[0] for k in config.trusted_keys] == ["ci-1"]
    _keygen("ci-2", str(piforge_home / "other"))
    out = capsys.readouterr().out
    assert "exists; to use this key" in out and "other/ci-2.secret" in out
    assert load_cache_config().trusted_keys == config.trusted_keys   # never rewritten behind the user's back
    with pytest.raises(CacheError, match="already exists"):
        _keygen("ci-1", "")


def test_push_and_pull_say_what_is_missing_from_the_config(piforge_home: Path) -> None:
    with pytest.raises(CacheError, match="no push_url") as error:
        _push(["anything"])
    assert "PIFORGE_CACHE_PUSH_URL" in str(error.value)
    with pytest.raises(CacheError, match="needs at least one recipe"):
        _pull([])
    with pytest.raises(CacheError, match="no cache urls"):
        _pull(["wrapt"])


def test_ci_pushes_what_built_then_fails_naming_what_did_not(piforge_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import build.realise
    import build.tasks.cache as tasks
    from build.errors import BuildError

    def fake_realise(drv, store, substituters=()):
        if drv == "bad":
            raise BuildError("phase 'compile' failed")

    pushed = []
    monkeypatch.setattr(tasks, "default_targets", lambda: ["good", "bad"])
    monkeypatch.setattr(tasks, "_derivation", lambda name: name)
    monkeypatch.setattr(tasks, "_store", lambda: None)
    monkeypatch.setattr(tasks, "_push", pushed.append)
    monkeypatch.setattr(build.realise, "realise", fake_realise)
    with pytest.raises(BuildError, match=r"1 of 2 target\(s\) failed: bad: phase 'compile' failed"):
        tasks._ci()
    assert pushed == [["good"]]
