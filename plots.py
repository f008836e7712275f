"""The paper's figures from training runs: curves against compute, the headline bars, recognition.

"SFT Memorizes, RL Generalizes" makes its case with three kinds of figure, all drawn here from the
run logs that sft.py and ppo.py write (runs/NAME/config.json + runs/NAME/metrics.jsonl):

1. curves (the paper's Figures 5-7): the evaluation metric against training compute in GFLOPs
   (the paper's x-axis), one panel per split (ID, OOD-rule, OOD-visual) side by side, one line per run, a
   band of +-1 standard error around each line. The metric is the success rate for
   GeneralPoints and the per-step accuracy for V-IRL (the paper's main V-IRL number).
2. headline bars (the paper's Figure 1): the change from the initial checkpoint (the first eval
   line, step 0) to the last evaluation, per split, task and method, in percentage points.
3. recognition (the paper's Figure 8): for GP-VL runs, the recognition accuracy of the cards
   against the success rate, one point per evaluation.

Usage:
    python plots.py runs/gp_sft runs/gp_ppo --out figures/            # all figures that apply
    python plots.py runs/gp_sft runs/gp_ppo --out figures/ --smooth 3 # moving average of 3 evals

A training script draws its own run with `plot_run(run_dir, out_dir)`; ppo.py's text lines (per
update, sample episodes, what the run learned) are formatted here too, from the same records. The
plot functions return the matplotlib Figure (and save a PNG when given a path), so tests can
inspect the axes.
Figures are built with matplotlib's object API on the Agg canvas: no pyplot, no display.
"""

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import cli  # first, before matplotlib: a Ctrl-C while it loads is one line too
import matplotlib

matplotlib.use("Agg")  # files only, never a window
from matplotlib.figure import Figure  # noqa: E402  (after choosing the backend)

from cli import COUNT, ArgumentParser, RunError, one_line, out_problem  # noqa: E402  (RunError: a run folder that cannot be plotted)
from evaluate import headline  # noqa: E402  (a split's main number: GP success, V-IRL per-step accuracy)

SPLITS = ("id", "ood-rule", "ood-visual")  # the order of the panels
SPLIT_TITLES = {"id": "ID", "ood-rule": "OOD (rule)", "ood-visual": "OOD (visual)",
                "val-rule": "held-out rule J/Q/K = 3/6/9"}
METHOD_LABELS = {"sft": "SFT", "ppo": "RL"}  # the paper's names for the two methods
METHOD_COLORS = {"sft": "tab:orange", "ppo": "tab:blue"}


@dataclass
class Run:
    """One training run as plots.py sees it: its config and its evaluation points."""

    name: str
    config: dict
    evals: list[dict] = field(default_factory=list)  # [{"step", "flops", "eval": {split: metrics}}]
    updates: list[dict] = field(default_factory=list)  # ppo.py's per-update lines: rollout success, reward

    @property
    def method(self) -> str:
        return str(self.config.get("method", "?"))

    @property
    def env(self) -> str:
        return str(self.config.get("env", "generalpoints"))

    @property
    def vision(self) -> bool:
        return bool(self.config.get("vision", False))

    @property
    def task(self) -> str:
        """The paper's task name: GP-L, GP-VL, V-IRL-L or V-IRL-VL."""
        base = "V-IRL" if self.env == "virl" else "GP"
        return f"{base}-{'VL' if self.vision else 'L'}"

    @property
    def metric(self) -> str:
        """The key of the headline metric in a split's metrics (the paper's Figure 1: success, or V-IRL
        per-step accuracy)."""
        return "step_accuracy" if self.env == "virl" else "success"

    def splits(self) -> list[str]:
        present = {s for e in self.evals for s in e["eval"]}
        return [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))

    def series(self, split: str, key: str, err_key: str | None = "stderr", source: str = "eval"):
        """(GFLOPs, values in %, stderr in %) of one metric over the eval points that have it;
        source "eval_sampled" reads ppo.py's sampled evaluation instead of the greedy one."""
        xs, ys, es = [], [], []
        for e in self.evals:
            m = e.get(source, {}).get(split) if isinstance(e.get(source), dict) else None
            if not isinstance(m, dict) or not _finite(m.get(key)):
                continue  # split not evaluated at this point, or a null / NaN value
            err = m.get(err_key, 0.0) if err_key else 0.0
            xs.append(float(e.get("flops", 0.0)) / 1e9)
            ys.append(100.0 * float(m[key]))
            es.append(100.0 * float(err) if _finite(err) else 0.0)
        return xs, ys, es


def _finite(x) -> bool:
    """A number that can be drawn: int or float, not bool, not NaN or inf."""
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def load_run(run_dir) -> Run:
    """Read config.json and the eval lines of metrics.jsonl; RunError when nothing can be plotted.

    A line that is not valid JSON is skipped with a warning on stderr (a run killed mid-write
    leaves half a line), and so is an eval line with no finite flops; a run with no eval line
    that has a finite headline metric (GP success, V-IRL step_accuracy) in some split is an
    error, so no empty figure is ever written.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: not a run folder")
    metrics_path = run_dir / "metrics.jsonl"
    if not metrics_path.is_file():
        raise RunError(f"{run_dir}: no metrics.jsonl")
    config = {}
    config_path = run_dir / "config.json"
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise RunError(f"{config_path}: cannot be read as JSON ({err})") from None
    if not isinstance(config, dict):
        raise RunError(f"{config_path}: not a JSON object")
    try:
        text = metrics_path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        raise RunError(f"{metrics_path}: cannot be read ({err})") from None
    run, bad, unusable = Run(name=run_dir.name, config=config), 0, 0
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            bad += 1
            print(f"warning: {metrics_path}:{lineno}: not valid JSON, skipped", file=sys.stderr)
            continue
        if isinstance(record, dict) and isinstance(record.get("eval"), dict) and record["eval"]:
            if not _finite(record.get("flops", 0.0)):
                print(f"warning: {metrics_path}:{lineno}: no finite flops, line skipped",
                      file=sys.stderr)
                continue
            if not any(isinstance(m, dict) and _finite(m.get(run.metric)) for m in record["eval"].values()):
                unusable += 1  # e.g. {"id": {}} or a null / NaN metric: nothing to draw
                continue
            run.evals.append(record)
        elif isinstance(record, dict) and _finite(record.get("reward")) and _finite(record.get("flops", 0.0)):
            run.updates.append(record)  # a PPO update: the rollouts' success and mean reward
    if not run.evals:
        why = ([f"{bad} unreadable lines"] if bad else []) + \
              ([f"{unusable} eval lines without a finite {run.metric}"] if unusable else [])
        raise RunError(f"{metrics_path}: no evaluation lines to plot" + (f" ({', '.join(why)})" if why else ""))
    run.evals.sort(key=lambda e: float(e.get("flops", 0.0)))  # stable: file order among equals
    return run


def _labels(runs: list[Run]) -> list[str]:
    """'SFT', 'RL'; with the run name added where several runs share a method."""
    counts = {}
    for r in runs:
        counts[r.method] = counts.get(r.method, 0) + 1
    labels = []
    for r in runs:
        label = METHOD_LABELS.get(r.method, r.method)
        labels.append(f"{label} ({r.name})" if counts[r.method] > 1 else label)
    return labels


def _color(run: Run, i: int) -> str:
    return METHOD_COLORS.get(run.method, f"C{(i + 2) % 10}")


def smooth_series(values: list[float], k: int) -> list[float]:
    """Trailing moving average over k points: out[i] = mean(values[max(0, i-k+1) : i+1]).

    The first point (the initial checkpoint) is kept as it is. k <= 1 returns the values.
    Example: smooth_series([0, 2, 4, 6], 2) == [0, 1, 3, 5].
    """
    if k <= 1:
        return list(values)
    out = []
    for i in range(len(values)):
        window = values[max(0, i - k + 1) : i + 1]
        out.append(sum(window) / len(window))
    return out


def _single_task(runs: list[Run]) -> str:
    if not runs:
        raise RunError("no runs to plot")
    tasks = sorted({r.task for r in runs})
    if len(tasks) > 1:
        raise RunError(f"runs of several tasks in one curve figure: {', '.join(tasks)}")
    return tasks[0]


# ---------------------------------------------------------------------------------------------
# 1. curves: metric against training compute, one panel per split
# ---------------------------------------------------------------------------------------------
def plot_curves(runs: list[Run], out_path=None, smooth: int = 1) -> Figure:
    """Success (GP) or per-step accuracy (V-IRL) against GFLOPs; ID and OOD panels side by side.

    All runs must be of one task. Each run is a line with a +-1 stderr band (fill_between), and a
    dashed line of the same colour for its sampled evaluation when it has one (ppo.py);
    `smooth` > 1 applies a trailing moving average of that many eval points to line and band.
    """
    task = _single_task(runs)
    splits = [s for s in SPLITS if any(s in r.splits() for r in runs)]
    splits += sorted({s for r in runs for s in r.splits()} - set(splits))
    ylabel = "per-step accuracy (%)" if runs[0].env == "virl" else "success rate (%)"
    rollouts = [r for r in runs if r.updates]
    fig = Figure(figsize=(4.5 * (len(splits) + bool(rollouts)), 3.8), layout="constrained")
    axes = fig.subplots(1, len(splits) + bool(rollouts), squeeze=False)[0]
    if rollouts:
        plot_rollouts(axes[-1], rollouts, task)
    for ax, split in zip(axes, splits):
        for i, (run, label) in enumerate(zip(runs, _labels(runs))):
            xs, ys, es = run.series(split, run.metric)
            if not xs:
                continue
            ys, es = smooth_series(ys, smooth), smooth_series(es, smooth)
            color = _color(run, i)
            ax.plot(xs, ys, marker="o", markersize=3, color=color, label=label)
            lo = [max(0.0, y - e) for y, e in zip(ys, es)]
            hi = [min(100.0, y + e) for y, e in zip(ys, es)]
            ax.fill_between(xs, lo, hi, color=color, alpha=0.2, linewidth=0)
            xs, ys, es = run.series(split, run.metric, source="eval_sampled")
            if xs:
                ax.plot(xs, smooth_series(ys, smooth), marker="o", markersize=3, color=color,
                        linestyle="--", label=f"{label} (sampled)")
        ax.set_title(f"{task}: {SPLIT_TITLES.get(split, split)}")
        ax.set_xlabel("training compute (GFLOPs)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    if smooth > 1:
        fig.suptitle(f"{task}: moving average over {smooth} evaluations", fontsize="medium")
    if out_path is not None:
        fig.savefig(out_path, dpi=120)
    return fig


def plot_rollouts(ax, runs: list[Run], task: str, smooth: int = 10) -> None:
    """The RL learning curve: the rollouts' episode success at every PPO update (faint) and its
    moving average over `smooth` updates (solid), and the mean reward per attempt, averaged the
    same way (dotted, right axis), against GFLOPs. A single rollout is noisy: 256 attempts, and
    only the episodes that ended in it count."""
    right = ax.twinx()
    for i, (run, label) in enumerate(zip(runs, _labels(runs))):
        color = _color(run, i) if len(runs) == 1 else f"C{i}"
        xs = [float(u.get("flops", 0.0)) / 1e9 for u in run.updates]
        success = [100 * u["episode_success"] if _finite(u.get("episode_success")) else math.nan for u in run.updates]
        ax.plot(xs, success, color=color, alpha=0.25, linewidth=0.8)
        kept = [(x, y) for x, y in zip(xs, success) if math.isfinite(y)]
        ax.plot([x for x, _ in kept], smooth_series([y for _, y in kept], smooth), color=color,
                label=f"{label}: success")
        right.plot(xs, smooth_series([u["reward"] for u in run.updates], smooth), color=color, linestyle=":",
                   label=f"{label}: reward")
    ax.set_title(f"{task}: PPO rollouts")
    ax.set_xlabel("training compute (GFLOPs)")
    ax.set_ylabel(f"episodes solved in the rollout (%), mean of {smooth}")
    right.set_ylabel("mean reward per attempt (dotted)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")


# ---------------------------------------------------------------------------------------------
# 2. headline: change from the initial checkpoint, per split, task and method (Figure 1)
# ---------------------------------------------------------------------------------------------
def plot_headline(runs: list[Run], out_path=None) -> Figure:
    """Bars of (last eval - first eval) in percentage points; one panel per split.

    Within a panel the x groups are the tasks (GP-L, V-IRL-L, GP-VL, V-IRL-VL) and each run is one
    bar coloured by method. The error bar is sqrt(se_first^2 + se_last^2), the standard error of
    the difference of two independent estimates.
    """
    if not runs:
        raise RunError("no runs to plot")
    order = ["GP-L", "V-IRL-L", "GP-VL", "V-IRL-VL"]  # the paper's Figure 1 order
    tasks = sorted({r.task for r in runs}, key=lambda t: order.index(t) if t in order else 9)
    splits = [s for s in SPLITS if any(s in r.splits() for r in runs)]
    splits += sorted({s for r in runs for s in r.splits()} - set(splits))
    method_order = {m: k for k, m in enumerate(METHOD_LABELS)}  # SFT bar left of RL
    fig = Figure(figsize=(max(4.5, 2.2 * len(tasks)) * len(splits), 4.0), layout="constrained")
    axes = fig.subplots(1, len(splits), squeeze=False)[0]
    for ax, split in zip(axes, splits):
        seen = set()  # one legend entry per label
        for t, task in enumerate(tasks):
            group = sorted([r for r in runs if r.task == task],
                           key=lambda r: method_order.get(r.method, len(method_order)))
            width = 0.8 / len(group)
            for j, (run, label) in enumerate(zip(group, _labels(group))):
                xs, ys, es = run.series(split, run.metric)
                if not xs:
                    continue
                delta = ys[-1] - ys[0]
                err = math.sqrt(es[0] ** 2 + es[-1] ** 2)
                x = t - 0.4 + width * (j + 0.5)
                ax.bar(x, delta, width=width * 0.9, yerr=err, capsize=3,
                       color=_color(run, runs.index(run)), label=None if label in seen else label)
                seen.add(label)
                tip = delta + err if delta >= 0 else delta - err  # the value above the error bar
                ax.annotate(f"{delta:+.1f}", (x, tip), ha="center", fontsize="small",
                            va="bottom" if delta >= 0 else "top",
                            xytext=(0, 2 if delta >= 0 else -2), textcoords="offset points")
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.margins(y=0.15)  # room for the value labels
        ax.set_xticks(range(len(tasks)), tasks)
        ax.set_xlabel("task (GP: success rate, V-IRL: per-step accuracy)")
        ax.set_ylabel("change from initial checkpoint (pp)")
        ax.set_title(f"{SPLIT_TITLES.get(split, split)}: change after training")
        ax.grid(axis="y", alpha=0.3)
        if seen:
            ax.legend(loc="best", fontsize="small")
    if out_path is not None:
        fig.savefig(out_path, dpi=120)
    return fig


# The paper's Figure 1 values (OOD change from the initial checkpoint, pp; one seed each), for the
# seeds figure below: GP-L rule, V-IRL-L rule, GP-VL visual, V-IRL-VL visual.
PAPER_FIGURE1 = {"GP-L": {"RL": 3.5, "SFT": -8.1}, "V-IRL-L": {"RL": 11.0, "SFT": -79.5},
                 "GP-VL": {"RL": 3.0, "SFT": -5.6}, "V-IRL-VL": {"RL": 9.3, "SFT": -33.2}}


BAR_PANELS = {"id": "ID: change after training", "ood": "OOD: change after training (matched compute)",
              "ood_gain": "OOD: change at matched ID gain"}


def plot_seed_bars(settings: dict, out_path=None) -> Figure:
    """Figure 1 with seeds: {setting title: {"id": {arm: [change per seed]}, "ood": {...},
    optionally "ood_gain": {...}}} -> one panel each (ID and OOD at the end; OOD at matched ID
    gain); per setting an SFT and an RL bar at the mean change from the init (pp), an error bar
    of one sd over seeds, each seed a dot, and the paper's single value (PAPER_FIGURE1, OOD
    panel) as a black cross where it has one."""
    if not settings:
        raise RunError("no settings to plot")
    names = list(settings)
    parts = [p for p in BAR_PANELS if any(p in settings[n] for n in names)]
    fig = Figure(figsize=(max(5.0, 2.4 * len(names)) * len(parts), 4.2), layout="constrained")
    for ax, part in zip(fig.subplots(1, len(parts), squeeze=False)[0], parts):
        for t, name in enumerate(names):
            for j, arm in enumerate(("SFT", "RL")):
                values = settings[name].get(part, {}).get(arm, [])
                if not values:
                    continue
                mean = sum(values) / len(values)
                sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
                x = t - 0.2 + 0.4 * j
                color = METHOD_COLORS["sft" if arm == "SFT" else "ppo"]
                ax.bar(x, mean, width=0.36, yerr=sd, capsize=3, color=color, alpha=0.8,
                       label=f"{arm} (mean ± sd over seeds)" if t == 0 else None)
                ax.plot([x] * len(values), values, "o", color="black", markersize=3, alpha=0.6,
                        label="one seed" if t == 0 and j == 0 else None)
                paper = PAPER_FIGURE1.get(name.split(",")[0], {}).get(arm) if part == "ood" else None
                if paper is not None:
                    ax.plot(x, paper, "x", color="black", markersize=8,
                            label="the paper (11B model, one seed)" if t == 0 and j == 0 else None)
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(names)), names, fontsize="small")
        ax.set_ylabel("change from the init (pp; GP success, V-IRL per-step)")
        ax.set_title(BAR_PANELS[part])
        ax.grid(axis="y", alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    if out_path is not None:
        fig.savefig(out_path, dpi=120)
    return fig


# ---------------------------------------------------------------------------------------------
# 3. recognition: card recognition accuracy against success, GP-VL runs (Figure 8)
# ---------------------------------------------------------------------------------------------
def plot_recognition(runs: list[Run], out_path=None) -> Figure:
    """Recognition accuracy (x) against success rate (y) over training, one panel per split.

    Only GeneralPoints runs with vision and a "recognition" metric are drawn; each is a line
    through its eval points in order of compute, the initial checkpoint drawn hollow.
    """
    runs = [r for r in runs if r.env == "generalpoints" and r.vision]
    runs = [r for r in runs if any("recognition" in m for e in r.evals for m in e["eval"].values()
                                   if isinstance(m, dict))]
    if not runs:
        raise RunError("no GP-VL run with recognition metrics")
    splits = [s for s in SPLITS if any(s in r.splits() for r in runs)]
    splits += sorted({s for r in runs for s in r.splits()} - set(splits))
    fig = Figure(figsize=(4.5 * len(splits), 3.8), layout="constrained")
    axes = fig.subplots(1, len(splits), squeeze=False)[0]
    for ax, split in zip(axes, splits):
        for i, (run, label) in enumerate(zip(runs, _labels(runs))):
            points = [(100 * e["eval"][split]["recognition"], 100 * e["eval"][split]["success"])
                      for e in run.evals if isinstance(e["eval"].get(split), dict)
                      and {"recognition", "success"} <= e["eval"][split].keys()]
            if not points:
                continue
            rec, suc = zip(*points)
            color = _color(run, i)
            ax.plot(rec, suc, marker="o", markersize=4, color=color, label=label)
            ax.plot(rec[:1], suc[:1], marker="o", markersize=8, markerfacecolor="none",
                    color=color, linestyle="none")  # the initial checkpoint
        ax.set_title(f"GP-VL: {SPLIT_TITLES.get(split, split)} (hollow = initial checkpoint)",
                     fontsize="medium")
        ax.set_xlabel("card recognition accuracy (%)")
        ax.set_ylabel("success rate (%)")
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    if out_path is not None:
        fig.savefig(out_path, dpi=120)
    return fig


# ---------------------------------------------------------------------------------------------
# 4. seeds: several runs per method, mean and spread (the laptop experiment; the paper has one seed)
# ---------------------------------------------------------------------------------------------
def seed_curve(runs: list[Run], split: str, metric: str = "success") -> tuple[list, list, list, list]:
    """(GFLOPs, mean %, min %, max %) over seeds at each eval index that every run has; the x of
    an index is the seeds' mean compute there (matched-compute runs differ by a few percent)."""
    series = [r.series(split, metric, None) for r in runs]
    n = min((len(xs) for xs, _, _ in series), default=0)
    xs = [sum(s[0][i] for s in series) / len(series) for i in range(n)]
    values = [[s[1][i] for s in series] for i in range(n)]
    return (xs, [sum(v) / len(v) for v in values], [min(v) for v in values], [max(v) for v in values])


def plot_seeds(groups: dict, out_path=None, splits=("id", "ood-rule"), metric: str = "success",
               ylabel: str = "success rate (%)") -> Figure:
    """One panel per split: for each group of runs ({label: [Run]}, e.g. "SFT" and "RL" over 3
    seeds each) the mean of a GeneralPoints metric over seeds against compute, with a band from
    the lowest to the highest seed and the single seeds as thin lines."""
    fig = Figure(figsize=(4.5 * len(splits), 3.8), layout="constrained")
    axes = fig.subplots(1, len(splits), squeeze=False)[0]
    for ax, split in zip(axes, splits):
        for i, (label, runs) in enumerate(groups.items()):
            xs, mean, lo, hi = seed_curve(runs, split, metric)
            if not xs:
                continue
            color = _color(runs[0], i)
            for run in runs:
                rx, ry, _ = run.series(split, metric, None)
                ax.plot(rx, ry, color=color, alpha=0.35, linewidth=0.8)
            ax.plot(xs, mean, marker="o", markersize=3, color=color, label=f"{label} (mean of {len(runs)})")
            ax.fill_between(xs, lo, hi, color=color, alpha=0.15, linewidth=0)
        ax.set_title(SPLIT_TITLES.get(split, split))
        ax.set_xlabel("training compute (GFLOPs)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    if out_path is not None:
        fig.savefig(out_path, dpi=100)
    return fig


# ---------------------------------------------------------------------------------------------
# Drivers: all figures of a set of runs; the figures of one run
# ---------------------------------------------------------------------------------------------
def plot_runs(runs: list[Run], out_dir, smooth: int = 1) -> list[Path]:
    """Every figure that applies: curves per task, the headline bars, recognition for GP-VL.
    RunError when they cannot be written (a full disk, a read-only folder)."""
    try:
        return _plot_runs(runs, Path(out_dir), smooth)
    except OSError as err:
        raise RunError(f"cannot write the figures to {out_dir} ({err.strerror or one_line(err)})") from None


def _plot_runs(runs: list[Run], out_dir: Path, smooth: int) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for task in sorted({r.task for r in runs}):
        path = out_dir / f"curves_{task}.png"
        plot_curves([r for r in runs if r.task == task], path, smooth=smooth)
        paths.append(path)
    path = out_dir / "headline.png"
    plot_headline(runs, path)
    paths.append(path)
    if any(r.task == "GP-VL" for r in runs):
        path = out_dir / "recognition.png"
        try:
            plot_recognition(runs, path)
            paths.append(path)
        except RunError as err:
            print(f"warning: {err}; recognition figure skipped", file=sys.stderr)
    return paths


def plot_run(run_dir, out_dir=None, smooth: int = 1) -> list[Path]:
    """The figures of one run (ppo.py calls this at its end); default out_dir = run_dir."""
    run = load_run(run_dir)
    return plot_runs([run], out_dir if out_dir is not None else run_dir, smooth=smooth)


def change_line(run_dir) -> str:
    """What a run learned, from its first and last evaluation (ppo.py prints it last), e.g. the main job:
    'learned (update 0 -> 100, greedy then sampled): id 60.3% -> 68.8% (+8.5) sampled 68.1% -> 74.9% (+6.8)
    | ood-rule 0.0% -> 0.0% (+0.0) sampled 0.0% -> 0.0% (+0.0)'."""
    run = load_run(run_dir)
    if len(run.evals) < 2:
        return "learned: (fewer than two evaluations logged)"
    first, last = run.evals[0], run.evals[-1]

    def change(a, b):
        a, b = a[run.metric], b[run.metric]
        return f"{100 * a:.1f}% -> {100 * b:.1f}% ({100 * (b - a):+.1f})"
    parts = []
    for split, m in last["eval"].items():
        text = f"{split} {change(first['eval'][split], m)}"
        s0, s1 = first.get("eval_sampled", {}).get(split), last.get("eval_sampled", {}).get(split)
        if s0 and s1:
            text += f" sampled {change(s0, s1)}"
        parts.append(text)
    return f"learned (update {first['step']} -> {last['step']}, greedy then sampled): " + " | ".join(parts)


def update_line(update: int, total: int, row: dict) -> str:
    """ppo.py's line per update, from its metrics.jsonl row (ppo.update_stats), e.g.
    'update 1/2 | rollout: success 1.00 reward +1.12 | solved: first 0.55 revision 0.20 | correct 0.44 ...'."""
    def share(x):
        return "-" if x is None else f"{x:.2f}"
    shares = " ".join(f"{k} {v:.2f}" for k, v in row["outcomes"].items())
    return (f"update {update}/{total} | rollout: success {share(row['episode_success'])} reward "
            f"{row['reward']:+.2f} | solved: first {share(row['first_success'])} revision "
            f"{share(row['revision_success'])} | {shares} | vloss "
            f"{row['value_loss']:.3f} ploss {row['policy_loss']:+.4f} kl {row['approx_kl']:.4f} "
            + (f"klref {row['kl_ref']:.4f} " if row["kl_ref"] else "") + f"clip "
            f"{row['clipfrac']:.2f} ev {share(row['explained_variance'])} | lr {row['lr']:.1e} | len "
            f"{row['response_len']:.1f} cut {row['cut_off']:.2f} | {row['tokens_per_s']:.0f} tok/s | "
            f"{row['seconds']:.1f}s")


def eval_line(record: dict) -> str:
    """ppo.py's line per evaluation (GP: success, V-IRL: per-step accuracy; greedy, then sampled), e.g.
    'eval @ update 0: id 75.0% sampled 87.5% (n=8) | ood-rule 0.0% sampled 0.0% (n=8)'."""
    sampled = record.get("eval_sampled", {})
    return f"eval @ update {record['step']}: " + " | ".join(
        f"{k} {100 * headline(m):.1f}%" + (f" sampled {100 * headline(sampled[k]):.1f}%" if k in sampled else "")
        + f" (n={m['n']})" for k, m in record["eval"].items())


def sample_lines(episodes: list, max_attempts_shown: int = 6) -> list:
    """Episodes as a reader wants to see them (ppo.py's samples.jsonl records): the task, each
    answer, the verdict, the feedback the model got and the answer the oracle would have given."""
    lines = []
    for j, ep in enumerate(episodes):
        status = "solved" if ep["success"] else "failed"
        lines.append(f"  sample {j + 1} ({status}, {len(ep['attempts'])} attempts): {ep['prompt']}")
        for i, a in enumerate(ep["attempts"][:max_attempts_shown]):
            verdict = f"{a['outcome']} {a['reward']:+.1f}"
            if a["outcome"] != "correct":
                verdict += f" '{a['feedback']}', expected {a['expected'][:90]!r}"
            lines.append(f"    attempt {i + 1}: {a['answer'][:110]!r} -> {verdict}")
        if len(ep["attempts"]) > max_attempts_shown:
            lines.append(f"    ... {len(ep['attempts']) - max_attempts_shown} more attempts")
    return lines


def main(argv=None) -> None:
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run folders holding config.json and metrics.jsonl")
    parser.add_argument("--out", default="figures", help="folder for the PNG files (created)")
    parser.add_argument("--smooth", type=COUNT, default=1, help="moving average over this many evaluations (1 = none)")
    args = parser.parse_args(argv)
    if why := out_problem(args.out):  # a file, under one, not writable: before any figure is drawn
        parser.error(f"--out {why}")
    try:
        runs = [load_run(d) for d in args.runs]
        paths = plot_runs(runs, args.out, smooth=args.smooth)
    except RunError as err:  # also a full disk while writing the figures
        sys.exit(f"error: {err}")
    for path in paths:
        print(path)


if __name__ == "__main__":
    cli.main(main, lambda argv: argv)  # a Ctrl-C: one line, exit status 130
