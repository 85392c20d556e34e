"""The spine's doit tasks end to end, on small native recipes (real builds, real store)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from spine_helpers import last_line, run_doit

pytestmark = pytest.mark.slow

TOY = """
# a tiny native recipe
name = "toy"
version = "1.0"
description = "writes a file"

[builder]
kind = "native"

[env]
GREETING = "{greeting}"

[[phases]]
name = "build"
run = '''
echo "$GREETING" > "$PIFORGE_OUT/hello.txt"
mkdir -p "$PIFORGE_OUT/bin" && printf '#!/bin/sh\\necho hi\\n' > "$PIFORGE_OUT/bin/hi" && chmod +x "$PIFORGE_OUT/bin/hi"
'''

[outputs]
paths = ["hello.txt", "bin/hi"]
"""


def write_toy(recipes: Path, greeting: str = "hello", comment: str = "") -> None:
    recipes.mkdir(exist_ok=True)
    (recipes / "toy.toml").write_text(comment + textwrap.dedent(TOY).replace("{greeting}", greeting))


def test_build_path_plan_check_verify_gc(tmp_path: Path) -> None:
    home, recipes = tmp_path / "home", tmp_path / "recipes"
    write_toy(recipes)
    missing = run_doit("path:toy", home=home, recipes=recipes, check=False)
    assert missing.returncode != 0 and "not built" in missing.stderr

    built = run_doit("build:toy", home=home, recipes=recipes)
    path = Path(last_line(built.stdout))
    assert path.parent == home / "store" and (path / "hello.txt").read_text() == "hello\n"
    assert (path / ".piforge" / "build.log").is_file()
    assert last_line(run_doit("path:toy", home=home, recipes=recipes).stdout) == str(path)

    again = run_doit("build:toy", home=home, recipes=recipes)   # nothing to do
    assert "-- realise:toy" in again.stdout and "building" not in again.stderr
    assert last_line(again.stdout) == str(path)

    write_toy(recipes, comment="# only a comment changed\n")
    assert last_line(run_doit("path:toy", home=home, recipes=recipes).stdout) == str(path)

    plan = run_doit("plan:toy", home=home, recipes=recipes).stdout
    assert "== toy 1.0  [built" in plan and 'echo "$GREETING"' in plan and "GREETING=hello" in plan

    check = run_doit("check:toy", home=home, recipes=recipes)
    assert "bit-identical" in check.stderr

    assert "all intact" in run_doit("verify", home=home, recipes=recipes).stdout
    (path / "hello.txt").chmod(0o644)
    (path / "hello.txt").write_text("tampered\n")
    corrupted = run_doit("verify", home=home, recipes=recipes, check=False)
    assert corrupted.returncode != 0 and f"{path / 'hello.txt'}: content changed" in corrupted.stdout

    write_toy(recipes, greeting="changed")   # a build input changed: new hash, new entry
    rebuilt = Path(last_line(run_doit("build:toy", home=home, recipes=recipes).stdout))
    assert rebuilt != path and (rebuilt / "hello.txt").read_text() == "changed\n"
    gc = run_doit("gc", home=home, recipes=recipes)
    assert f"removed {path}" in gc.stdout and not path.exists() and rebuilt.exists()


def test_wheel_builds_the_chosen_recipe(tmp_path: Path) -> None:
    home, recipes = tmp_path / "home", tmp_path / "recipes"
    write_toy(recipes)
    result = run_doit("wheel", "recipe=toy", home=home, recipes=recipes)
    assert Path(last_line(result.stdout)).name.endswith("-toy-1.0")


def test_a_failing_phase_leaves_no_entry_and_names_the_log(tmp_path: Path) -> None:
    home, recipes = tmp_path / "home", tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "bad.toml").write_text(textwrap.dedent('''
        name = "bad"
        version = "1"
        [builder]
        kind = "native"
        [[phases]]
        name = "compile"
        run = "echo compiling; echo oops >&2; exit 3"
    '''))
    result = run_doit("build:bad", home=home, recipes=recipes, check=False)
    assert result.returncode != 0
    assert "phase 'compile' failed with exit code 3" in result.stderr and "oops" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    assert "failed.log" in result.stderr
    assert not [p for p in (home / "store").iterdir() if not p.name.startswith(".locks")]


def test_offline_phases_have_no_network(tmp_path: Path) -> None:
    from prerequisites import require_root

    require_root()
    home, recipes = tmp_path / "home", tmp_path / "recipes"
    recipes.mkdir()
    (recipes / "net.toml").write_text(textwrap.dedent('''
        name = "net"
        version = "1"
        [builder]
        kind = "native"
        [[phases]]
        name = "look"
        run = "ip -o link show | awk '{print $2}' > $PIFORGE_OUT/links"
    '''))
    path = Path(last_line(run_doit("build:net", home=home, recipes=recipes).stdout))
    assert (path / "links").read_text().split() == ["lo:"]


def test_inputs_are_read_only_to_a_native_build(tmp_path: Path) -> None:
    from prerequisites import require_root

    require_root()
    home, recipes = tmp_path / "home", tmp_path / "recipes"
    write_toy(recipes)
    (recipes / "user.toml").write_text(textwrap.dedent('''
        name = "user"
        version = "1"
        inputs = ["toy"]
        [builder]
        kind = "native"
        [[phases]]
        name = "use"
        run = """
        cat "$PIFORGE_INPUT_TOY/hello.txt" > "$PIFORGE_OUT/copied.txt"
        if echo x > "$PIFORGE_INPUT_TOY/hello.txt"; then echo yes; else echo no; fi > "$PIFORGE_OUT/could-write"
        """
    '''))
    path = Path(last_line(run_doit("build:user", home=home, recipes=recipes).stdout))
    assert (path / "copied.txt").read_text() == "hello\n"
    assert (path / "could-write").read_text() == "no\n"
    assert "all intact" in run_doit("verify", home=home, recipes=recipes).stdout


def test_a_broken_recipe_is_one_clear_line(tmp_path: Path) -> None:
    home, recipes = tmp_path / "home", tmp_path / "recipes"
    write_toy(recipes)
    (recipes / "oops.toml").write_text('name = "oops"\nversion = "1"\n[builder]\nkind = "teleport"\n')
    result = run_doit("list", home=home, recipes=recipes, check=False)
    assert "oops.toml:4: builder.kind: unknown builder 'teleport'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_local_tree_source_is_pinned_by_its_tree_hash(tmp_path: Path) -> None:
    from build.filehash_cache import tree_hash

    home, recipes, tree = tmp_path / "home", tmp_path / "recipes", tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    (tree / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    recipes.mkdir()
    recipe = textwrap.dedent('''
        name = "local"
        version = "1"
        [builder]
        kind = "native"
        [[sources]]
        urls = ["file://TREE"]
        sha256 = "SHA"
        filename = "tree"
        unpack = true
        [[phases]]
        name = "copy"
        run = "cp src/main.c \\"$PIFORGE_OUT/\\" && ls \\"$PIFORGE_SOURCES\\" > \\"$PIFORGE_OUT/sources.txt\\""
    ''').replace("TREE", str(tree))
    (recipes / "local.toml").write_text(recipe.replace("SHA", tree_hash(tree)))
    path = Path(last_line(run_doit("build:local", home=home, recipes=recipes).stdout))
    assert (path / "main.c").read_text().startswith("int main")
    assert (path / "sources.txt").read_text() == "tree\n"
    (tree / "src" / "main.c").write_text("int main(void) { return 1; }\n")
    (recipes / "local.toml").write_text(recipe.replace("SHA", "0" * 64))
    failed = run_doit("build:local", home=home, recipes=recipes, check=False)
    assert failed.returncode != 0 and tree_hash(tree) in failed.stderr and "0" * 64 in failed.stderr
