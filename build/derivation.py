"""Derivations: a recipe with every input resolved, addressed by the hash of all of it.

``hash`` is the sha256 of the canonical JSON of everything that can change the output:
the recipe's content (source sha256s included), each input derivation's hash (which
covers its inputs, recursively), the builder's identity and the target platform. So
"is it built?" is a store lookup, never a timestamp guess.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .hashing import canonical_hash
from .builder_kinds import builder_identity as kind_identity
from .recipe import Recipe, RecipeSet

SCHEMA = 1  # bump when the meaning of a derivation changes: every hash changes with it


@dataclass(frozen=True)
class Derivation:
    recipe: Recipe
    inputs: Tuple["Derivation", ...]
    builder_identity: Mapping[str, Any]
    hash: str = field(compare=True)

    @property
    def name(self) -> str:
        return self.recipe.name

    @property
    def version(self) -> str:
        return self.recipe.version

    @property
    def store_name(self) -> str:
        return f"{self.hash[:32]}-{self.name}-{self.version}"

    @property
    def base(self) -> Optional["Derivation"]:
        """The derivation the builder runs in (rootfs, image), if any."""
        base = self.recipe.builder.base
        return next((d for d in self.inputs if d.name == base), None) if base else None

    def input(self, name: str) -> "Derivation":
        return next(d for d in self.inputs if d.name == name)

    def to_json(self) -> Dict[str, Any]:
        """What is hashed (plus the hash): stored as .piforge/derivation.json."""
        return dict(_hashed_body(self.recipe, self.inputs, self.builder_identity), hash=self.hash)

    def closure(self) -> List["Derivation"]:
        """This derivation and everything it needs, dependencies first, each once."""
        order: List[Derivation] = []
        seen: set = set()

        def visit(drv: Derivation) -> None:
            if drv.hash in seen:
                return
            for dependency in drv.inputs:
                visit(dependency)
            seen.add(drv.hash)
            order.append(drv)

        visit(self)
        return order


def _hashed_body(recipe: Recipe, inputs: Tuple[Derivation, ...], identity: Mapping[str, Any]) -> Dict[str, Any]:
    return {
        "schema": SCHEMA,
        "recipe": recipe.content(),
        "inputs": {d.name: d.hash for d in inputs},
        "builder": dict(identity),
        "platform": recipe.platform,
    }


def builder_identity(recipe: Recipe) -> Dict[str, Any]:
    """The part of the builder that can change outputs. The base (rootfs/image) is an
    input derivation, so its hash is already covered; a builder class may add more."""
    return kind_identity(recipe.builder.kind, recipe.builder.options)


def derive(recipes: RecipeSet, name: str, _memo: Optional[Dict[str, Derivation]] = None) -> Derivation:
    """The derivation of recipe ``name`` with all its inputs resolved."""
    memo = {} if _memo is None else _memo
    if name in memo:
        return memo[name]
    recipe = recipes.get(name)
    inputs = tuple(derive(recipes, dependency, memo) for dependency in recipe.dependencies)
    identity = builder_identity(recipe)
    drv = Derivation(recipe=recipe, inputs=inputs, builder_identity=identity,
                     hash=canonical_hash(_hashed_body(recipe, inputs, identity)))
    memo[name] = drv
    return drv
