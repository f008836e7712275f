"""plots.py on small synthetic runs: the figures' panels, labels, lines, bands; bad inputs."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import plots  # noqa: E402


def make_run(root: Path, name: str, method: str, env: str = "generalpoints", vision: bool = False,
             splits=("id", "ood-rule"), n_evals: int = 4, start: float = 0.2, slope: float = 0.1,
             extra_lines: list[str] = ()) -> Path:
    """A run folder with config.json and metrics.jsonl: training lines and n_evals eval lines."""
    run = root / name
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(
        {"method": method, "env": env, "vision": vision, "model": "tiny"}))
    key = "step_accuracy" if env == "virl" else "success"
    lines = []
    for k in range(n_evals):
        flops = k * 2e9
        lines.append(json.dumps({"step": k, "flops": flops + 1e9, "loss": 1.0}))  # a training line
        ev = {}
        for s, split in enumerate(splits):
            p = min(1.0, max(0.0, start + slope * k - 0.05 * s))
            m = {"n": 100, key: p, "stderr": (p * (1 - p) / 100) ** 0.5}
            if env == "virl":
                m["route_success"] = p / 2
            if vision and env == "generalpoints":
                m["recognition"] = min(1.0, 0.5 + 0.1 * k)
            ev[split] = m
        lines.append(json.dumps({"step": k, "flops": flops, "eval": ev}))
    lines += list(extra_lines)
    (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return run


@pytest.fixture
def gp_runs(tmp_path):
    sft = make_run(tmp_path, "gp_sft", "sft", slope=-0.05)
    ppo = make_run(tmp_path, "gp_ppo", "ppo", slope=0.05)
    return [plots.load_run(sft), plots.load_run(ppo)]


def test_load_run_reads_eval_lines_only(gp_runs):
    run = gp_runs[0]
    assert run.method == "sft" and run.task == "GP-L" and run.metric == "success"
    assert len(run.evals) == 4 and all("eval" in e for e in run.evals)
    assert run.splits() == ["id", "ood-rule"]
    xs, ys, es = run.series("id", "success")
    assert xs == [0.0, 2.0, 4.0, 6.0]  # GFLOPs
    assert ys[0] == pytest.approx(20.0) and len(es) == 4


def test_curves_panels_labels_lines_bands(gp_runs, tmp_path):
    out = tmp_path / "curves.png"
    fig = plots.plot_curves(gp_runs, out)
    assert out.is_file() and out.stat().st_size > 0
    axes = fig.axes
    assert len(axes) == 2  # ID and OOD-rule side by side
    for ax, split in zip(axes, ["ID", "OOD (rule)"]):
        assert ax.get_xlabel() == "training compute (GFLOPs)"
        assert ax.get_ylabel() == "success rate (%)"
        assert "GP-L" in ax.get_title() and split in ax.get_title()
        assert len(ax.get_lines()) == 2  # one line per run
        assert len(ax.collections) == 2  # one stderr band per run
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["SFT", "RL"]
    # the band is +-stderr around the line: it has a non-zero height at the first point
    band = axes[0].collections[0].get_paths()[0].vertices
    assert band[:, 1].max() > band[:, 1].min()


def test_curves_three_splits_virl_and_run_names(tmp_path):
    runs = [plots.load_run(make_run(tmp_path, f"v{i}", "ppo", env="virl",
                                    splits=("id", "ood-rule", "ood-visual"))) for i in range(2)]
    fig = plots.plot_curves(runs)
    assert len(fig.axes) == 3
    assert fig.axes[2].get_title() == "V-IRL-L: OOD (visual)"
    assert fig.axes[0].get_ylabel() == "per-step accuracy (%)"
    # two runs of one method: the run name tells them apart
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["RL (v0)", "RL (v1)"]


def test_smoothing_is_a_trailing_moving_average(gp_runs):
    assert plots.smooth_series([0, 2, 4, 6], 2) == [0, 1, 3, 5]
    assert plots.smooth_series([1, 5], 1) == [1, 5]
    raw = plots.plot_curves(gp_runs).axes[0].get_lines()[1].get_ydata()
    smooth = plots.plot_curves(gp_runs, smooth=3).axes[0].get_lines()[1].get_ydata()
    assert smooth[0] == pytest.approx(raw[0])
    assert smooth[2] == pytest.approx(sum(raw[:3]) / 3)


def test_curves_refuse_mixed_tasks(tmp_path):
    gp = plots.load_run(make_run(tmp_path, "gp", "sft"))
    virl = plots.load_run(make_run(tmp_path, "virl", "sft", env="virl"))
    with pytest.raises(plots.RunError, match="several tasks"):
        plots.plot_curves([gp, virl])


def test_headline_bars_are_last_minus_first(tmp_path):
    runs = [plots.load_run(make_run(tmp_path, "gp_sft", "sft", slope=-0.05)),
            plots.load_run(make_run(tmp_path, "gp_ppo", "ppo", slope=0.05)),
            plots.load_run(make_run(tmp_path, "virl_ppo", "ppo", env="virl", slope=0.1))]
    out = tmp_path / "headline.png"
    fig = plots.plot_headline(runs, out)
    assert out.is_file()
    assert len(fig.axes) == 2  # ID and OOD-rule panels
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["GP-L", "V-IRL-L"]
    assert ax.get_ylabel() == "change from initial checkpoint (pp)"
    heights = [p.get_height() for p in ax.patches]
    assert heights == pytest.approx([-15.0, 15.0, 30.0])  # 3 evals after the first: 3 * slope
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["SFT", "RL"]
    # the error bar is the stderr of a difference: sqrt(se_first^2 + se_last^2)
    first, last = runs[0].evals[0]["eval"]["id"], runs[0].evals[-1]["eval"]["id"]
    err = 100 * (first["stderr"] ** 2 + last["stderr"] ** 2) ** 0.5
    segments = [c for c in ax.collections if c.get_segments()][0].get_segments()
    assert abs(segments[0][1][1] - segments[0][0][1]) == pytest.approx(2 * err)


def test_seed_bars_show_mean_change_seeds_and_the_papers_values(tmp_path):
    settings = {"GP-L, rule OOD": {"id": {"SFT": [30.0, 34.0], "RL": [1.0, 3.0]},
                                   "ood": {"SFT": [-3.0, -5.0], "RL": [2.0, 0.0, 1.0]}},
                "V-IRL-L, rule OOD": {"id": {"SFT": [8.0], "RL": [16.0]}, "ood": {"SFT": [-2.0], "RL": [-1.0]}}}
    out = tmp_path / "figure1.png"
    fig = plots.plot_seed_bars(settings, out)
    assert out.stat().st_size > 1000 and len(fig.axes) == 2
    id_ax, ood_ax = fig.axes
    assert [p.get_height() for p in id_ax.patches] == pytest.approx([32.0, 2.0, 8.0, 16.0])
    assert [p.get_height() for p in ood_ax.patches] == pytest.approx([-4.0, 1.0, -2.0, -1.0])
    crosses = [line for line in ood_ax.lines if line.get_marker() == "x"]
    assert sorted(y for line in crosses for y in line.get_ydata()) == [-79.5, -8.1, 3.5, 11.0]
    dots = [line for line in ood_ax.lines if line.get_marker() == "o"]
    assert sum(len(line.get_ydata()) for line in dots) == 7  # one per seed
    with pytest.raises(plots.RunError):
        plots.plot_seed_bars({})


def test_recognition_for_vision_gp_runs(tmp_path):
    runs = [plots.load_run(make_run(tmp_path, "vl_sft", "sft", vision=True)),
            plots.load_run(make_run(tmp_path, "vl_ppo", "ppo", vision=True)),
            plots.load_run(make_run(tmp_path, "l_ppo", "ppo"))]  # text run: not drawn
    fig = plots.plot_recognition(runs, tmp_path / "rec.png")
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert ax.get_xlabel() == "card recognition accuracy (%)"
    assert ax.get_ylabel() == "success rate (%)"
    assert len(ax.get_legend().get_texts()) == 2
    xs = ax.get_lines()[0].get_xdata()
    assert list(xs) == pytest.approx([50, 60, 70, 80])
    with pytest.raises(plots.RunError):
        plots.plot_recognition(runs[2:])


def test_plot_run_writes_the_run_figures(tmp_path):
    run = make_run(tmp_path, "vl", "ppo", vision=True, splits=("id", "ood-rule", "ood-visual"))
    paths = plots.plot_run(run, tmp_path / "fig")
    assert sorted(p.name for p in paths) == ["curves_GP-VL.png", "headline.png", "recognition.png"]
    assert all(p.is_file() for p in paths)


def test_corrupt_line_is_skipped_with_a_warning(tmp_path, capsys):
    run = make_run(tmp_path, "r", "sft", extra_lines=['{"step": 9, "flops": 1e10, "eval": {"i'])
    assert len(plots.load_run(run).evals) == 4
    assert "not valid JSON" in capsys.readouterr().err


def run_cli(*args):
    return subprocess.run([sys.executable, str(ROOT / "plots.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def test_cli_writes_pngs(tmp_path):
    a = make_run(tmp_path, "sft", "sft")
    b = make_run(tmp_path, "ppo", "ppo")
    c = make_run(tmp_path, "virl", "ppo", env="virl")
    res = run_cli(a, b, c, "--out", tmp_path / "figs", "--smooth", "2")
    assert res.returncode == 0, res.stderr
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert names == ["curves_GP-L.png", "curves_V-IRL-L.png", "headline.png"]


@pytest.mark.parametrize("case", ["no_metrics", "no_evals", "all_corrupt", "missing_dir",
                                  "bad_config"])
def test_cli_bad_inputs_exit_1_with_one_line(tmp_path, case):
    run = tmp_path / "bad"
    if case != "missing_dir":
        run.mkdir()
    if case == "no_evals":
        (run / "metrics.jsonl").write_text('{"step": 0, "flops": 0, "loss": 1}\n')
    if case == "all_corrupt":
        (run / "metrics.jsonl").write_text("{not json\n")
    if case == "bad_config":
        run = make_run(tmp_path, "bad_config", "sft")
        (run / "config.json").write_text("{")
    res = run_cli(run, "--out", tmp_path / "figs")
    assert res.returncode == 1
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error")]
    assert len(lines) == 1 and "Traceback" not in res.stderr
    assert str(run) in lines[0]


def test_plots_read_what_evaluate_writes(tmp_path):
    """Eval lines made by evaluate.py itself (random, then oracle: a run that 'learned')."""
    import evaluate

    for env in ("generalpoints", "virl"):
        run = tmp_path / env
        run.mkdir()
        (run / "config.json").write_text(json.dumps({"method": "ppo", "env": env, "vision": True}))
        lines = []
        for step, policy in enumerate([evaluate.RandomPolicy(0), evaluate.OraclePolicy()]):
            ev = evaluate.evaluate(policy, env, ("id", "ood-rule", "ood-visual"), vision=True,
                                   n=3, progress=False)
            lines.append(json.dumps({"step": step, "flops": step * 1e9, "eval": ev}))
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
        paths = plots.plot_run(run, tmp_path / f"fig_{env}")
        assert all(p.is_file() for p in paths)
        fig = plots.plot_curves([plots.load_run(run)])
        assert len(fig.axes) == 3
        assert list(fig.axes[0].get_lines()[0].get_ydata())[-1] == pytest.approx(100.0)
    assert sorted(p.name for p in (tmp_path / "fig_generalpoints").iterdir()) == [
        "curves_GP-VL.png", "headline.png", "recognition.png"]


def test_ppo_update_lines_add_the_rollout_learning_curve(tmp_path):
    """ppo.py's per-update lines (episode success, mean reward) become a third panel: the RL
    learning curve, beside the evaluation curves."""
    updates = [json.dumps({"step": k, "flops": k * 1e9, "reward": -0.5 + 0.1 * k, "episode_success": 0.5 + 0.05 * k})
               for k in range(1, 5)]
    run = plots.load_run(make_run(tmp_path, "gp_ppo", "ppo", extra_lines=updates))
    assert [u["step"] for u in run.updates] == [1, 2, 3, 4] and len(run.evals) == 4
    fig = plots.plot_curves([run])
    assert fig.axes[2].get_title() == "GP-L: PPO rollouts"
    assert list(fig.axes[2].get_lines()[0].get_ydata()) == pytest.approx([55.0, 60.0, 65.0, 70.0])
    twin = [ax for ax in fig.axes if ax.get_ylabel().startswith("mean reward")]
    rewards = plots.smooth_series([-0.4, -0.3, -0.2, -0.1], 10)  # a moving average over 10 updates
    assert list(twin[0].get_lines()[0].get_ydata()) == pytest.approx(rewards)
    assert list(fig.axes[2].get_lines()[1].get_ydata()) == pytest.approx(plots.smooth_series([55, 60, 65, 70], 10))
