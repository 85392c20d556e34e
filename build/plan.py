"""``doit plan:<recipe>``: the derivation graph as text, before anything runs.

Names, hashes, built or missing, the builder, every source and the exact shell each
phase would run (with the environment the builder sets), dependencies first.
"""
from __future__ import annotations

from typing import Dict, List

from .bazel.flags import render_script
from .builders import BUILDER_KINDS
from .builders.base import input_variable, phase_script
from .bazel.flags import remote_cache_from_environment
from .epoch import SOURCE_DATE_EPOCH
from .derivation import Derivation
from .store import Store


def render_plan(drv: Derivation, store: Store) -> str:
    lines: List[str] = []
    closure = drv.closure()
    lines.append(f"plan for {drv.name} {drv.version}: {len(closure)} derivation(s), dependencies first")
    for node in closure:
        recipe = node.recipe
        state = f"built   {store.path_of(node)}" if store.is_valid(node) else "missing (would build)"
        lines.append("")
        lines.append(f"== {node.name} {node.version}  [{state}]")
        lines.append(f"   hash      {node.hash}")
        lines.append(f"   recipe    {recipe.path}")
        lines.append(f"   platform  {recipe.platform}")
        base = f" in {recipe.builder.base}" if recipe.builder.base else ""
        lines.append(f"   builder   {recipe.builder.kind}{base}  identity {dict(node.builder_identity)}")
        for dependency in node.inputs:
            role = "base" if dependency.name == recipe.builder.base else input_variable(dependency.name)
            lines.append(f"   input     {dependency.name} {dependency.hash[:16]} ({role})")
        for source in recipe.sources:
            lines.append(f"   source    {source.filename} sha256 {source.sha256}"
                         f"{' (unpacked)' if source.unpack else ''}")
            for url in source.urls:
                lines.append(f"               {url}")
        for patch in recipe.patches:
            lines.append(f"   patch     {patch.file} sha256 {patch.sha256} -p{patch.strip}"
                         f"{'' if patch.enabled else ' (disabled: enabled = false)'}")
        environment = {"SOURCE_DATE_EPOCH": SOURCE_DATE_EPOCH, **dict(recipe.env)}
        lines.append("   env       " + " ".join(f"{k}={v}" for k, v in sorted(environment.items())))
        # what the builder adds on this machine (Bazel's flags): shown written out, so
        # the plan is the exact command that would run here
        plan_environment = getattr(BUILDER_KINDS[recipe.builder.kind], "plan_environment", None)
        builder_env: Dict[str, str] = (plan_environment(recipe, None, remote_cache_from_environment())
                       if plan_environment else {})
        for phase in recipe.phases:
            lines.append(f"   phase {phase.name} ({'network' if phase.network else 'offline'}):")
            for text in render_script(phase_script(phase, "$PIFORGE_SRC"), builder_env).splitlines():
                lines.append(f"     | {text}")
        lines.append(f"   outputs   {', '.join(recipe.outputs) or '(any)'}")
    return "\n".join(lines)
