"""`doit report`: a run (or several) as PNG plots and a short Markdown summary.

One run: ``<run>/report/``. Several (``runs=ID1,ID2``, e.g. a workers=1 baseline and a
2-worker run): ``<runs_dir>/reports/<first>+<n>/``, with the distributed-vs-single plot.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import TrainingError
from ..paths import runs_dir
from .records import find_run, load_run
from .stragglers import findings, host_figures

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"]


def epochs_of(run: Dict[str, Any], host: Optional[str] = None) -> List[Dict[str, Any]]:
    rows = [e for e in run["events"] if e.get("kind") == "epoch" and (host is None or e["host"] == host)]
    return sorted(rows, key=lambda e: (e["host"], e["epoch"]))


def steady(rows: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Epochs after the first (which pays for graph tracing), unless there is only one."""
    later = [r for r in rows if r["epoch"] > 1]
    return later or rows


def throughput(run: Dict[str, Any]) -> Optional[float]:
    """Samples/s of the whole job: per host, the median over steady epochs; summed."""
    total = 0.0
    for host in run.get("hosts", []):
        rows = steady(epochs_of(run, host))
        if not rows:
            return None
        total += statistics.median(r["samples_per_second"] for r in rows)
    return total or None


def median_step_time(run: Dict[str, Any]) -> Optional[float]:
    rows = steady(epochs_of(run))
    return statistics.median(r["step_time"] for r in rows) if rows else None


def peak_rss(run: Dict[str, Any]) -> Optional[float]:
    values = [e["peak_rss_mb"] for e in run["events"] if "peak_rss_mb" in e]
    return max(values) if values else None


def label(run: Dict[str, Any]) -> str:
    return f"{run.get('job')} x{run.get('workers')} ({run.get('run_id', '')[:15]})"


def _per_epoch(run: Dict[str, Any], key: str) -> List[tuple]:
    """(epoch, value) from the chief's view (all workers report the same global metrics);
    after a restart the chief may be another host: per epoch, the latest attempt's row."""
    hosts = run.get("hosts") or []
    rows = epochs_of(run, hosts[0]) if hosts else []
    if len(run.get("attempts") or []) > 1:
        latest: Dict[int, Dict[str, Any]] = {}
        for row in sorted(epochs_of(run), key=lambda r: (r.get("attempt", 1), r["epoch"])):
            if row["epoch"] not in latest or row.get("attempt", 1) > latest[row["epoch"]].get("attempt", 1):
                latest[row["epoch"]] = row
        rows = [latest[epoch] for epoch in sorted(latest)]
    return [(r["epoch"], r[key]) for r in rows if r.get(key) is not None]


def restarts(run: Dict[str, Any]) -> List[Dict[str, Any]]:
    """One entry per restart: the attempt that failed and the one that followed it."""
    attempts = run.get("attempts") or []
    return [{"number": index + 1, "failed": before, "next": after}
            for index, (before, after) in enumerate(zip(attempts, attempts[1:]))]


def restart_lines(run: Dict[str, Any]) -> List[str]:
    lines = []
    for restart in restarts(run):
        failed, following = restart["failed"], restart["next"]
        lost = failed.get("time_lost_seconds")
        lines.append(
            f"  - restart {restart['number']}: {', '.join(failed.get('failed_hosts') or [failed.get('failed_host') or '?'])} "
            f"failed ({(failed.get('cause') or '-').splitlines()[0].split('; its last lines:')[0]}); attempt "
            f"{following['attempt']} on {', '.join(following['members'])} resumed from epoch "
            f"{following.get('resumed_from_epoch', 0)}; time lost "
            + (f"{lost:.1f} s (work redone {failed.get('work_lost_seconds', 0):.1f} s + recovery "
               f"{failed.get('recovery_seconds', 0):.1f} s)" if lost is not None else "unknown (no step after it)"))
    return lines


def plot_history(runs: List[Dict[str, Any]], target: Path) -> None:
    import matplotlib.pyplot as plt

    figure, (loss_axis, accuracy_axis) = plt.subplots(1, 2, figsize=(11, 4.2))
    for index, run in enumerate(runs):
        color = COLORS[index % len(COLORS)]
        loss = _per_epoch(run, "loss")
        accuracy = _per_epoch(run, "accuracy")
        if loss:
            loss_axis.plot(*zip(*loss), marker="o", color=color, label=label(run))
        if accuracy:
            accuracy_axis.plot(*zip(*accuracy), marker="o", color=color, label=f"{label(run)} train")
        if run.get("test_accuracy") is not None and accuracy:
            accuracy_axis.axhline(run["test_accuracy"], color=color, linestyle="--", linewidth=1,
                                  label=f"test {run['test_accuracy']:.3f}")
        for restart in restarts(run):  # the epoch the next attempt started from
            at = restart["next"].get("resumed_from_epoch", 0) + 0.5
            lost = restart["failed"].get("time_lost_seconds")
            text = f"restart {restart['number']}" + (f" ({lost:.0f} s lost)" if lost is not None else "")
            for axis in (loss_axis, accuracy_axis):
                axis.axvline(at, color=color, linestyle=":", linewidth=1.2)
                axis.annotate(text, (at, 0.98), xycoords=("data", "axes fraction"), rotation=90,
                              fontsize=8, color=color, ha="right", va="top")
    loss_axis.set(title="training loss per epoch", xlabel="epoch", ylabel="loss")
    accuracy_axis.set(title="accuracy per epoch", xlabel="epoch", ylabel="accuracy")
    for axis in (loss_axis, accuracy_axis):
        axis.grid(alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    plt.close(figure)


def plot_step_time(runs: List[Dict[str, Any]], target: Path) -> None:
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(8, 4.2))
    index = 0
    steady_max = 0.0
    clipped = []
    for run in runs:
        for host in run.get("hosts", []):
            rows = epochs_of(run, host)
            if rows:
                name = host if len(runs) == 1 else f"{label(run)} {host}"
                color = COLORS[index % len(COLORS)]
                axis.plot([r["epoch"] for r in rows], [r["step_time"] * 1000 for r in rows], marker="o",
                          color=color, label=name)
                steady_max = max([steady_max] + [r["step_time"] * 1000 for r in steady(rows)])
                clipped += [(r["epoch"], r["step_time"] * 1000, color) for r in rows if r["epoch"] == 1]
                index += 1
    axis.set(title="time per training step, per host (epoch 1 includes graph tracing)",
             xlabel="epoch", ylabel="ms / step")
    # Keep the steady epochs readable: the tracing epoch may be several times slower.
    top = steady_max * 1.6 if steady_max else None
    if top and any(value > top for _, value, _ in clipped):
        axis.set_ylim(0, top)
        for number, (epoch, value, color) in enumerate(v for v in clipped if v[1] > top):
            axis.annotate(f"{value / 1000:.1f} s (off scale)", (epoch, top * (0.96 - 0.07 * number)),
                          color=color, fontsize=8, ha="left", va="top")
    else:
        axis.set_ylim(bottom=0)
    axis.xaxis.get_major_locator().set_params(integer=True)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    plt.close(figure)


def plot_scaling(runs: List[Dict[str, Any]], target: Path) -> Optional[float]:
    """Throughput of each run against its number of workers; returns the scaling efficiency
    of the largest run against the single-worker one, if both are there."""
    import matplotlib.pyplot as plt

    points = [(run["workers"], throughput(run), run) for run in runs if throughput(run)]
    if not points:
        return None
    points.sort(key=lambda p: p[0])
    figure, axis = plt.subplots(figsize=(7, 4.2))
    names = [f"{w} worker{'s' if w > 1 else ''}\n{r.get('run_id', '')[9:15]}" for w, _, r in points]
    bars = axis.bar(range(len(points)), [t for _, t, _ in points], color=[COLORS[i % len(COLORS)] for i in range(len(points))])
    for bar, (_, value, _) in zip(bars, points):
        axis.annotate(f"{value:,.0f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                      ha="center", va="bottom", fontsize=9)
    efficiency = None
    single = [t for w, t, _ in points if w == 1]
    if single:
        for position, (workers, _, _) in enumerate(points):
            ideal = single[0] * workers
            axis.plot([position - 0.4, position + 0.4], [ideal, ideal], color="black", linestyle="--", linewidth=1)
        workers, best, _ = points[-1]
        if workers > 1:
            efficiency = best / (workers * single[0])
    axis.set_xticks(range(len(points)))
    axis.set_xticklabels(names)
    title = "distributed vs single host: samples/s of the whole job"
    if efficiency is not None:
        title += f"\nscaling efficiency {efficiency:.2f} (dashed: perfect scaling)"
    axis.set(title=title, ylabel="samples / s")
    axis.grid(axis="y", alpha=0.3)
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    plt.close(figure)
    return efficiency


def _fmt(value: Optional[float], pattern: str) -> str:
    return "–" if value is None else pattern.format(value)


def summary_markdown(runs: List[Dict[str, Any]], efficiency: Optional[float], images: List[str]) -> str:
    lines = ["# Training report", ""]
    if efficiency is not None:
        lines += [f"**Scaling efficiency: {efficiency:.2f}** (throughput of the largest run divided by "
                  "workers x single-worker throughput; 1.0 is perfect, the user's Pis got ~0.5).", ""]
    lines += ["| run | job | workers | status | test accuracy | ms/step | samples/s | up after | peak RSS |",
              "| --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: |"]
    for run in runs:
        step = median_step_time(run)
        lines.append("| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
            run.get("run_id"), run.get("job"), run.get("workers"), run.get("status"),
            _fmt(run.get("test_accuracy"), "{:.4f}"), _fmt(step * 1000 if step else None, "{:.0f}"),
            _fmt(throughput(run), "{:,.0f}"), _fmt(run.get("ready_after"), "{:.1f} s"),
            _fmt(peak_rss(run), "{:,.0f} MB")))
    lines.append("")
    for run in runs:
        lines.append(f"- `{run.get('run_id')}`: hosts {', '.join(run.get('hosts', []))}; "
                     f"dataset {run.get('dataset') or '-'}; params "
                     + " ".join(f"{k}={v}" for k, v in (run.get("params") or {}).items()))
        if run.get("cause"):
            lines.append(f"  - cause: {run['cause'].splitlines()[0]}")
        lines += restart_lines(run)
    lines += host_lines(runs)
    lines += ["", "Test accuracy is on the held-out test set after the last epoch; ms/step and "
              "samples/s are medians over epochs after the first (which includes tracing); "
              "samples/s is summed over hosts.", ""]
    lines += [f"![{name}]({name})" for name in images]
    return "\n".join(lines) + "\n"


def host_lines(runs: List[Dict[str, Any]]) -> List[str]:
    """Per-host step times and the straggler / tiny-shard findings of each run."""
    lines: List[str] = []
    for run in runs:
        measure, figures = host_figures(run)
        found = findings(run)
        if not figures and not found:
            continue
        lines += ["", f"### Hosts of `{run.get('run_id')}`", ""]
        if figures:
            walls = {h: median_step_time(dict(run, events=[e for e in run["events"] if e.get("host") == h]))
                     for h in figures}
            lines += ["| host | ms/step (wall) | own compute, ms/probe pass |", "| --- | ---: | ---: |"]
            for host, value in figures.items():
                wall = walls.get(host)
                lines.append("| {} | {} | {} |".format(host, _fmt(wall * 1000 if wall else None, "{:.1f}"),
                                                      _fmt(value * 1000 if measure == "compute_probe" else None,
                                                           "{:.2f}")))
            lines.append("")
        lines += [f"- **{line}**" for line in found] or ["- no straggler (>= 1.3x the other hosts' median), "
                                                          "no shard under 4 batches"]
    return lines


def write_report(selection: str, root: Optional[Path] = None) -> Path:
    """Write plots + report.md for ``selection`` (``latest``, an id, or ids joined by commas)."""
    paths = [find_run(name.strip(), root) for name in selection.split(",") if name.strip()]
    if not paths:
        raise TrainingError("report: no run given", hint="run=ID or runs=ID1,ID2 (default: latest)")
    runs = [load_run(path) for path in paths]
    if len(paths) == 1:
        target = paths[0] / "report"
    else:
        target = (root or runs_dir()) / "reports" / f"{paths[0].name}+{len(paths) - 1}"
    target.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    images = []
    if any(epochs_of(run) for run in runs):
        plot_history(runs, target / "history.png")
        plot_step_time(runs, target / "step_time.png")
        images += ["history.png", "step_time.png"]
    efficiency = plot_scaling(runs, target / "scaling.png")
    if (target / "scaling.png").exists():
        images.append("scaling.png")
    (target / "report.md").write_text(summary_markdown(runs, efficiency, images), encoding="utf-8")
    for run in runs:
        for line in findings(run):
            print(f"piforge: {run.get('run_id')}: {line}")
    print(f"piforge: report: {target / 'report.md'}")
    for name in images:
        print(f"piforge: plot: {target / name}")
    return target
