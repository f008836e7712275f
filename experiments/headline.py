"""The paper's headline at laptop scale: does SFT memorize and RL generalize in a tiny model?

The paper post-trains an 11B model on one variant of each task and tests an unseen one (Figure 1):
GP-L rule J, Q, K = 10 -> 11, 12, 13; V-IRL-L absolute -> relative directions; GP-VL black -> red
cards; V-IRL-VL one city -> nine others. More SFT lowers the unseen variant, PPO raises it. This
script runs that comparison with the tiny model on 2 CPU cores, several seeds per arm, one setting
at a time (--task). Both arms start from the setting's released init, inits/fig1-<task> (built by
`experiments/make_init.py fig1-<task>`: a pretraining stand-in, then ID SFT; its card says what it
scores, OOD included), as the paper's RL starts from its released inits:

  1. rl-S       ppo.py on the ID variant with the main job's PPO defaults (verifier revision,
                the episode KL to the init), seed S.
  2. sft-S      more ID SFT, seed S, for as many training FLOPs as rl-0 used (the paper's compute
                axis, matched within a few percent), evaluated at the same compute fractions as RL
                and early on (SFT learns ID fast: the matched-gain point needs its first steps).
  3. summary    results.md / results.json, two comparisons of the change from the init, each with
                Welch's t-test of RL vs SFT and the setting's mechanism metric at the same points:
                - matched compute: at the end (the paper's x-axis);
                - matched ID gain: per run, the evaluation whose greedy ID gain is closest to a
                  shared target, the smaller of the two arms' mean final ID gains (so both reach
                  it): what a given amount of ID learning costs out of distribution.
                Then curves.png, mechanism.png and <root>/figure1.png of every setting run.

Every stage is a run folder under <root>/<task>; a finished stage (its final/ checkpoint exists)
is skipped, an unfinished one resumes from its last checkpoint, so a killed experiment goes on
where it stopped. Each stage's output goes to <root>/<task>/<stage>.log.

    python experiments/headline.py --seeds 3                 # GP-L, 3 seeds per arm: about 58 min on 2 cores
    python experiments/headline.py --task virl-l --seeds 3   # V-IRL-L: about 30 min
    python experiments/headline.py --task gp-vl --seeds 3    # GP-VL: about 57 min
    python experiments/headline.py --task virl-vl --seeds 3  # V-IRL-VL: about 60 min
    python experiments/headline.py --task all --seeds 3      # every setting whose init ships, then figure1.png
    python experiments/headline.py --task all --smoke        # a handful of steps, one seed (tests)
    python experiments/headline.py --task all --summary-only # redo the tables and figures from the runs
"""
import argparse
import json
import math
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import plots  # noqa: E402  (after the path is set)
import cli  # noqa: E402
from cli import COUNT, ArgumentParser, number, out_problem, RunError  # noqa: E402  (argparse checks, no torch)

# --smoke: each arm for a few steps, the same flags in every setting (a pipeline check).
SMOKE = dict(
    rl=["--updates", "2", "--eval-every", "1", "--eval-episodes", "2", "--num-envs", "4",
        "--rollout-steps", "8", "--minibatch-size", "8", "--max-new-tokens", "16", "--eval-samples", "0"],
    sft=["--batch-size", "4", "--eval-episodes", "2", "--eval-max-new-tokens", "16"],
    eval_points=2, early=())
# The protocols, one per setting of the paper's Figure 1. The RL arm is ppo.py with its defaults
# (the main job's), evaluated greedily like the SFT arm; the SFT arm trains on sft.py's ID data
# (GP: half of it with revision turns, sft.py --revise) at lr 1e-4. eval_points:
# evaluations after the start at the same compute fractions in both arms; early: the SFT arm's
# extra evaluations, as fractions of its steps.
TASKS = {
    "gp-l": dict(
        title="GP-L, rule OOD", env=["--env", "generalpoints"], ood="ood-rule", splits=("id", "ood-rule"),
        mechanism=("numbers_right", "first answers whose numbers follow the rule (%)"),
        full=dict(
            rl=["--updates", "140", "--eval-every", "20", "--eval-episodes", "0", "--eval-splits", "id,ood-rule",
                "--eval-samples", "0"],  # all 234 hands (8.1% rule-OOD: 19); 140 updates: experiments/README.md
            sft=["--lr", "1e-4", "--revise", "0.5", "--eval-episodes", "0", "--eval-max-new-tokens", "96",
                 "--eval-splits", "id,ood-rule", "--length-groups", "4"],  # 4: the same loss, 1.9x faster
            eval_points=7, early=(0.025, 0.05, 0.1)),  # 7: RL's every 20 of 140 updates
        smoke=SMOKE),
    "virl-l": dict(
        title="V-IRL-L, rule OOD", env=["--env", "virl"], ood="ood-rule", splits=("id", "ood-rule"),
        mechanism=("frame_right", "answers at turns in the split's action space (%)"),
        full=dict(
            rl=["--updates", "100", "--eval-every", "20", "--eval-episodes", "48", "--eval-splits", "id,ood-rule",
                "--eval-samples", "0"],
            sft=["--lr", "1e-4", "--eval-episodes", "48", "--eval-splits", "id,ood-rule"],
            eval_points=5, early=(0.025, 0.05, 0.1)),
        smoke=SMOKE),
    # GP-VL: the cards as an image; visual OOD = red hearts and diamonds (the ID split: black suits)
    "gp-vl": dict(
        title="GP-VL, visual OOD", env=["--env", "generalpoints", "--vision"], ood="ood-visual",
        splits=("id", "ood-visual"), mechanism=("recognition", "first answers whose cards were read right (%)"),
        full=dict(  # as GP-L's, but 80 updates: an update takes 1.6x GP-L's, 3 seeds fit in an hour
            rl=["--updates", "80", "--eval-every", "20", "--eval-episodes", "0", "--eval-splits", "id,ood-visual",
                "--eval-samples", "0"],  # all 234 hands (ood-visual at init 6.4%: 15)
            sft=["--lr", "1e-4", "--revise", "0.5", "--eval-episodes", "0", "--eval-max-new-tokens", "96",
                 "--eval-splits", "id,ood-visual", "--length-groups", "4"],
            eval_points=4, early=(0.025, 0.05, 0.1)),
        smoke=SMOKE),
    # V-IRL-VL: the routes as street views; visual OOD = the nine other cities' styles
    "virl-vl": dict(
        title="V-IRL-VL, visual OOD", env=["--env", "virl", "--vision"], ood="ood-visual",
        splits=("id", "ood-visual"), mechanism=("observation_right", "answers with the right observation (%)"),
        full=dict(  # 80 updates: an update takes 14 s (V-IRL-L's 5), 3 seeds fit in an hour
            rl=["--updates", "80", "--eval-every", "20", "--eval-episodes", "48", "--eval-splits", "id,ood-visual",
                "--eval-samples", "0"],
            sft=["--lr", "1e-4", "--eval-episodes", "48", "--eval-splits", "id,ood-visual"],
            eval_points=4, early=(0.025, 0.05, 0.1)),  # 4: RL's every 20 of 80 (the 5-seed run had 5)
        smoke=SMOKE),
}


def init_of(name: str) -> Path:
    """The setting's released init, inits/fig1-<name> (RunError when it is not built)."""
    folder = ROOT / "inits" / f"fig1-{name}"
    if not (folder / "card.json").is_file():
        raise RunError(f"{folder.relative_to(ROOT)} is not built (experiments/README.md says which settings "
                       "ship an init and how `experiments/make_init.py` builds one)")
    return folder


def say(text: str) -> None:  # one write per line: the runs' threads print at the same time
    sys.stdout.write(f"[{time.strftime('%H:%M:%S')}] {text}\n")
    sys.stdout.flush()


def stage(root: Path, name: str, script: str, flags: list[str]) -> Path:
    """Run `python script flags --out root/name` (resumed if it was killed) unless it has finished;
    its output goes to root/name.log. Returns the run folder; exits on a failed stage."""
    out = root / name
    if (out / "final").is_dir():
        say(f"{name}: done before, skipped")
        return out
    cmd = [sys.executable, str(ROOT / script), *flags, "--out", str(out), "--resume"]
    say(f"{name}: started ({script} {' '.join(flags)})")
    began = time.time()
    with open(root / f"{name}.log", "a") as log:
        code = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    if code != 0 or not (out / "final").is_dir():
        raise RunError(f"stage {name} failed (exit {code}); see {root / name}.log, then run again to resume")
    say(f"{name}: finished in {(time.time() - began) / 60:.1f} min")
    return out


def trainer_state(folder: Path) -> dict:
    """A model folder's trainer_state.json (steps, tokens, FLOPs)."""
    return json.loads((folder / "trainer_state.json").read_text())


def sft_flops_per_step(init: Path, env: list[str], flags: list[str], steps: int = 8) -> float:
    """Training FLOPs of one step of the SFT arm (sft.py env flags --model init), from the tokens
    of its first `steps` batches: the init's last stage may have trained on other data."""
    import sft  # torch: only here, when an arm is about to run
    from policy import load_policy
    args = sft.parse_args([*env, "--model", str(init), *flags, "--out", str(ROOT / "runs" / "unused")])
    policy = load_policy(str(init), vision=args.vision, seed=args.seed, threads=1)
    tokens = sum(int(sft.sft_batch(policy, sft.micro_batch_examples(args, None, step, 0, args.batch_size,
                                                                    args.image_size)).attention_mask.sum())
                 for step in range(steps))
    return sft.training_flops(policy.num_params, tokens / steps)


def sft_steps_for(init: Path, rl0: Path, points: int, per_step: float) -> tuple[int, int]:
    """(steps, eval_every) of an SFT arm that spends rl-0's training FLOPs, per_step FLOPs a step."""
    state, rl_flops = trainer_state(init), trainer_state(rl0 / "final")["flops"]
    steps = max(points, points * round((rl_flops - state["flops"]) / per_step / points))
    return steps, steps // points


def run_experiment(root: Path, task: dict, init: Path, protocol: dict, seeds: int, jobs: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    env, points = task["env"], protocol["eval_points"]
    threads = ["--threads", "1"] if jobs > 1 else []  # ppo.py takes 2 by default: 4 on 2 cores crawl
    per_step = sft_flops_per_step(init, env, protocol["sft"])

    def rl(seed):
        return stage(root, f"rl-{seed}", "ppo.py", [*env, "--init", str(init), "--seed", str(seed), *threads,
                                                   *protocol["rl"]])

    def sft(seed, rl0_future):
        steps, every = sft_steps_for(init, rl0_future.result(), points, per_step)
        early = sorted({max(1, round(f * steps)) for f in protocol["early"]})
        return stage(root, f"sft-{seed}", "sft.py", [*env, "--model", str(init), "--seed", str(seed),
                                                     "--steps", str(steps), "--eval-every", str(every),
                                                     *(["--eval-at", ",".join(map(str, early))] if early else []),
                                                     *threads, *protocol["sft"]])

    # Two arms x seeds; each SFT arm waits for rl-0 (its compute target). With --jobs 2 on 2 cores
    # two single-threaded runs share the machine.
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        rl_runs = [pool.submit(rl, s) for s in range(seeds)]
        sft_runs = [pool.submit(sft, s, rl_runs[0]) for s in range(seeds)]
        for f in rl_runs + sft_runs:
            f.result()


# ---------------------------------------------------------------------------------------------
# Summary: the table, the test, the figures
# ---------------------------------------------------------------------------------------------
def _betainc(a: float, b: float, x: float) -> float:
    """The regularised incomplete beta function I_x(a, b), by its continued fraction (modified
    Lentz; Numerical Recipes §6.4), for the t distribution's tail below."""
    if x <= 0.0 or x >= 1.0:
        return 0.0 if x <= 0.0 else 1.0
    if x > (a + 1) / (a + b + 2):  # the fraction converges fast only below this point
        return 1.0 - _betainc(b, a, 1.0 - x)
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)) / a
    tiny, f, c, d = 1e-300, 1.0, 1.0, 0.0
    for i in range(400):
        m = i // 2
        if i == 0:
            num = 1.0
        elif i % 2 == 0:
            num = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m))
        else:
            num = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1))
        d = 1.0 + num * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + num / c
        c = c if abs(c) > tiny else tiny
        f *= c * d
        if abs(1.0 - c * d) < 1e-12:
            break
    return front * (f - 1.0)


def welch_t_test(a: list[float], b: list[float]) -> tuple[float, float, float]:
    """(t, degrees of freedom, two-sided p) of Welch's t-test that means of a and b differ (unequal
    variances; the Welch-Satterthwaite df). Needs 2+ values per side; two constant sides give
    p = 1 if their means are equal and 0 otherwise."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's t-test needs at least 2 values per group")
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    va = sum((x - ma) ** 2 for x in a) / (len(a) - 1) / len(a)  # squared standard error of the mean
    vb = sum((x - mb) ** 2 for x in b) / (len(b) - 1) / len(b)
    if va + vb == 0.0:
        return (0.0, float("inf"), 1.0) if ma == mb else (math.copysign(math.inf, ma - mb), float("inf"), 0.0)
    t = (ma - mb) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return t, df, _betainc(df / 2, 0.5, df / (df + t * t))  # P(|T_df| > |t|)


def final_value(run: plots.Run, split: str) -> float:
    return run.series(split, run.metric)[1][-1]


def matched_gain(arms: dict, start: dict, splits: list, mechanism: str) -> dict:
    """The matched-ID-gain comparison: the target is the smaller of the two arms' mean final
    greedy ID gains; per run, the evaluation after the start whose ID gain is closest to it, and
    there the change of every split, the mechanism metric and the compute."""
    finals = {label: [final_value(r, "id") - start["id"] for r in runs] for label, runs in arms.items()}
    target = min(sum(v) / len(v) for v in finals.values())
    out = {"target": target, "arms": {}}
    for label, runs in arms.items():
        picked = {"runs": [], "gflops": [], "change": {s: [] for s in splits}, "mechanism": {s: [] for s in splits}}
        for r in runs:
            evals = [e for e in r.evals if all(s in e.get("eval", {}) for s in splits)][1:]  # after the start
            at = min(evals, key=lambda e: abs(100 * e["eval"]["id"][r.metric] - start["id"] - target))
            picked["runs"].append(r.name)
            picked["gflops"].append(at["flops"] / 1e9)
            for split in splits:
                picked["change"][split].append(100 * at["eval"][split][r.metric] - start[split])
                picked["mechanism"][split].append(100 * at["eval"][split].get(mechanism, float("nan")))
        out["arms"][label] = picked
    out["test"] = tests(out["arms"], "change", splits)
    out["mechanism_test"] = tests(out["arms"], "mechanism", splits)
    return out


def tests(arms: dict, key: str, splits: list) -> dict:
    """Welch's t-test of RL vs SFT on arms[label][key][split], per split with 2+ values a side."""
    out = {}
    for s in splits:
        rl_values, sft_values = arms["RL"][key][s], arms["SFT"][key][s]
        if len(rl_values) >= 2 and len(sft_values) >= 2:
            t, df, p = welch_t_test(rl_values, sft_values)
            out[s] = {"t": t, "df": df, "p": p}
    return out


def summarize(root: Path, name: str) -> dict:
    """results.json, results.md and the figures of task `name` from the run folders under root."""
    task = TASKS[name]
    mechanism, mechanism_label = task["mechanism"]
    arms = {}
    for method, label in (("sft", "SFT"), ("rl", "RL")):
        runs = sorted((p for p in root.glob(f"{method}-*") if (p / "final").is_dir()), key=lambda p: p.name)
        arms[label] = [plots.load_run(p) for p in runs]
    if not all(arms.values()):
        raise RunError(f"{root} has no finished sft-* or rl-* run to summarize")
    metric = arms["RL"][0].metric  # GP: success; V-IRL: per-step accuracy
    splits = [s for s in task["splits"] if all(s in r.splits() for runs in arms.values() for r in runs)]
    firsts = [r.series(s, metric)[1][0] for runs in arms.values() for r in runs for s in splits]
    # every arm evaluates the init greedily at step 0 on the same episodes: one start value per split
    start = {s: arms["RL"][0].series(s, metric)[1][0] for s in splits}
    if len(set(firsts)) > len(splits):
        print("warning: the arms' step-0 evaluations of the init differ", file=sys.stderr)
    first = arms["RL"][0].evals[0]["eval"]
    result = {"task": name, "metric": metric, "ood": task["ood"], "init": start, "arms": {}, "commit": _commit(),
              "mechanism": mechanism,
              "init_mechanism": {s: 100 * first[s].get(mechanism, float("nan")) for s in splits}}
    for label, runs in arms.items():
        finals = {s: [final_value(r, s) for r in runs] for s in splits}
        gflops = [r.evals[-1]["flops"] / 1e9 for r in runs]
        result["arms"][label] = {"runs": [r.name for r in runs], "final": finals, "gflops": gflops,
                                 "change": {s: [v - start[s] for v in finals[s]] for s in splits},
                                 "mechanism": {s: [100 * r.evals[-1]["eval"][s].get(mechanism, float("nan"))
                                                   for r in runs] for s in splits}}
    result["test"] = tests(result["arms"], "change", splits)
    result["mechanism_test"] = tests(result["arms"], "mechanism", splits)
    result["matched_gain"] = matched_gain(arms, start, splits, mechanism)
    (root / "results.json").write_text(json.dumps(result, indent=1))
    (root / "results.md").write_text(results_table(result, mechanism_label))
    ylabel = "success rate (%)" if metric == "success" else "per-step accuracy (%)"
    plots.plot_seeds(arms, root / "curves.png", splits, metric=metric, ylabel=ylabel)
    plots.plot_seeds(arms, root / "mechanism.png", splits, metric=mechanism, ylabel=mechanism_label)
    print(results_table(result, mechanism_label))
    return result


def figure1(results: dict, out: Path) -> None:
    """The Figure-1-style summary (plots.plot_seed_bars) from {task: its results.json path}: the
    change from the init on ID and on the task's OOD split at the end, per arm and seed, and the
    OOD change at matched ID gain."""
    settings = {}
    for name, path in results.items():
        result, task = json.loads(Path(path).read_text()), TASKS[name]
        settings[task["title"]] = {part: {arm: a["change"].get(split, []) for arm, a in result["arms"].items()}
                                   for part, split in (("id", "id"), ("ood", task["ood"]))}
        gain = result["matched_gain"]["arms"]
        settings[task["title"]]["ood_gain"] = {arm: a["change"][task["ood"]] for arm, a in gain.items()}
    if settings:
        plots.plot_seed_bars(settings, out)
        say(f"wrote {out} ({', '.join(settings)})")


def _stats(values: list[float]) -> str:
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {sd:.1f} [{min(values):.1f}, {max(values):.1f}]"


def results_table(result: dict, mechanism_label: str) -> str:
    """The README's tables: the final metric in % (GP success, V-IRL per-step accuracy; mean ± sd
    over seeds [min, max]), its change from the init in points with Welch's test of RL vs SFT,
    and the setting's mechanism metric (GP: first answers whose numbers follow the rule); then
    the change and the mechanism metric at matched ID gain."""
    splits, metric = list(result["init"]), result["metric"].replace("_", " ")
    head = "| | " + " | ".join(f"{s} {metric} (%)" for s in splits) + " | GFLOPs |"
    lines = [head, "|---" * (len(splits) + 2) + "|",
             "| init | " + " | ".join(f"{result['init'][s]:.1f}" for s in splits) + " | |"]
    for label, arm in result["arms"].items():
        lines.append(f"| {label} ({len(arm['runs'])} seeds) | " + " | ".join(_stats(arm["final"][s]) for s in splits)
                     + f" | {sum(arm['gflops']) / len(arm['gflops']):,.0f} |")
    lines += ["", "| change from init (pp) | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
    for label, arm in result["arms"].items():
        lines.append(f"| {label} | " + " | ".join(_stats(arm["change"][s]) for s in splits) + " |")
    lines += _test_row(result["test"], splits)
    lines += ["", f"| {mechanism_label} | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|",
              "| init | " + " | ".join(f"{result['init_mechanism'][s]:.1f}" for s in splits) + " |"]
    for label, arm in result["arms"].items():
        lines.append(f"| {label} | " + " | ".join(_stats(arm["mechanism"][s]) for s in splits) + " |")
    lines += _test_row(result.get("mechanism_test", {}), splits)
    gain = result["matched_gain"]
    lines += ["", f"At matched ID gain: per run, the evaluation whose greedy ID gain is closest to "
                  f"{gain['target']:+.1f} points (the smaller of the two arms' mean final ID gains).", "",
              "| change at matched ID gain (pp) | " + " | ".join(splits) + " | GFLOPs |",
              "|---" * (len(splits) + 2) + "|"]
    for label, arm in gain["arms"].items():
        lines.append(f"| {label} | " + " | ".join(_stats(arm["change"][s]) for s in splits)
                     + f" | {sum(arm['gflops']) / len(arm['gflops']):,.0f} |")
    lines += _test_row(gain["test"], splits)
    lines += ["", f"| {mechanism_label}, at matched ID gain | " + " | ".join(splits) + " |",
              "|---" * (len(splits) + 1) + "|"]
    for label, arm in gain["arms"].items():
        lines.append(f"| {label} | " + " | ".join(_stats(arm["mechanism"][s]) for s in splits) + " |")
    lines += _test_row(gain["mechanism_test"], splits)
    lines.append(f"\nFrom commit {result['commit']}; mean ± sd over seeds [min, max].")
    return "\n".join(lines) + "\n"


def _test_row(tests: dict, splits: list) -> list[str]:
    """The table row of Welch's t-tests, RL vs SFT per split ([] without any)."""
    if not tests:
        return []
    return ["| RL vs SFT, Welch's t-test | " + " | ".join(
        f"t = {tests[s]['t']:.2f}, p = {tests[s]['p']:.3g}" if s in tests else "-" for s in splits) + " |"]


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def run(argv=None) -> None:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--task", choices=(*TASKS, "all"), default="gp-l",
                   help="the setting of the paper's Figure 1: " + ", ".join(f"{k} ({t['title']})" for k, t in
                                                                            TASKS.items())
                   + ", or all of them in turn (default gp-l)")
    p.add_argument("--root", default="runs/headline",
                   help="folder of the results; each task's stages are run folders in <root>/<task>")
    p.add_argument("--seeds", type=COUNT, default=3, help="seeds per arm (at least 2 for the t-test; default 3)")
    p.add_argument("--jobs", type=COUNT, default=2, help="runs at once, one CPU thread each (default 2, for 2 cores)")
    p.add_argument("--sft-lr", type=number(above=0), default=None,
                   help="learning rate of the SFT arm (default 1e-4, as the init)")
    p.add_argument("--rl-lr", type=number(above=0), default=None,
                   help="learning rate of the RL arm (default ppo.py's)")
    p.add_argument("--smoke", action="store_true", help="a few steps of every stage, 1 seed: a pipeline check")
    p.add_argument("--summary-only", action="store_true", help="only redo results.md/json and the figures")
    args = p.parse_args(argv)
    if why := out_problem(args.root):
        p.error(f"--root {why}")
    for name in TASKS if args.task == "all" else [args.task]:
        try:
            init = init_of(name)
        except RunError:
            if args.task != "all":
                raise
            say(f"{name}: inits/fig1-{name} is not built, skipped")
            continue
        protocol = dict(TASKS[name]["smoke" if args.smoke else "full"])
        if args.sft_lr is not None:  # the ablations: a later --lr flag wins in argparse
            protocol["sft"] = protocol["sft"] + ["--lr", str(args.sft_lr)]
        if args.rl_lr is not None:
            protocol["rl"] = protocol["rl"] + ["--lr", str(args.rl_lr)]
        root = Path(args.root) / name  # this task's stages
        if args.summary_only and args.task == "all" and not root.is_dir():
            say(f"{name}: no runs in {root}, skipped")
            continue
        if not args.summary_only:
            say(f"== {name}: {TASKS[name]['title']}")
            run_experiment(root, TASKS[name], init, protocol, 1 if args.smoke else args.seeds, args.jobs)
        summarize(root, name)
    results = {name: Path(args.root) / name / "results.json" for name in TASKS}
    figure1({name: path for name, path in results.items() if path.is_file()}, Path(args.root) / "figure1.png")


def main(argv=None) -> None:
    """run(argv); a RunError (a failed stage) is one line and exit status 1 (cli.main)."""
    cli.main(run, lambda argv: argv, argv)


if __name__ == "__main__":
    main()
