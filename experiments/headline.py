"""The paper's headline at laptop scale: does SFT memorize and RL generalize in a tiny model?

"SFT Memorizes, RL Generalizes" post-trains a pretrained 11B model on one GeneralPoints rule (J, Q,
K count as 10) and finds that more SFT lowers success under the unseen rule (J, Q, K = 11, 12, 13)
while PPO raises it. It reports one seed. This script runs the same comparison with the tiny
built-in model on 2 CPU cores, several seeds per arm, and a significance test:

  1. pretrain   sft.py --mixture: the stand-in for pretraining. Hands under random J/Q/K values,
                half of them with revision turns (generalpoints.mixture_examples), so the model
                learns to read the rule sentence and to revise; never the test rule 11/12/13,
                nor the tuning rule 3/6/9 (the val-rule split).
  2. init       a short ID SFT from the pretrained model: the paper's format-stable initial
                checkpoint. Both arms start here.
  3. rl-S       ppo.py on the ID rule with verifier revision (VIter 5), seed S.
  4. sft-S      more ID SFT, seed S, for as many training FLOPs as rl-0 used (the paper's compute
                axis, matched within a few percent), evaluated at the same compute fractions.
  5. summary    results.md / results.json (ID and OOD, init -> SFT / RL, mean and spread over
                seeds, Welch's t-test on the final OOD change of RL vs SFT), headline_curves.png (success)
                and headline_numbers.png (first answers whose numbers follow the rule).

Every stage is a run folder under --root; a finished stage (its final/ checkpoint exists) is
skipped, an unfinished one resumes from its last checkpoint, so a killed experiment goes on
where it stopped. Each stage's output goes to <root>/<stage>.log. The hyperparameters below were
fixed on ID success and the val-rule split before any ood-rule number was looked at (README).

    python experiments/headline.py                  # the whole experiment, 5 seeds: 31 min on 2 cores
    python experiments/headline.py --seeds 3        # 3 seeds per arm: about 22 min
    python experiments/headline.py --smoke          # a handful of steps, one seed: seconds (tests)
    python experiments/headline.py --summary-only   # redo the table and figures from the runs
    # an ablation: the same pretrained model, init and RL runs, the SFT arm at another learning rate
    mkdir -p runs/abl && cp -r runs/headline/{pretrain,init,rl-*} runs/abl/
    python experiments/headline.py --root runs/abl --sft-lr 1e-5
    # robustness: the whole experiment on top of another pretraining run (another "pretrained model")
    python experiments/headline.py --root runs/pretrain-seed1 --pretrain-seed 1 --seeds 3
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
from evaluate import COUNT, SEED, ArgumentParser, number, out_problem  # noqa: E402  (argparse checks, no torch)

# The protocol, fixed before looking at ood-rule (see the README section for what was tried).
FULL = dict(
    pretrain=["--mixture", "--steps", "2000", "--lr", "1e-3", "--eval-every", "500", "--eval-episodes", "64",
              "--eval-splits", "id,val-rule", "--save-every", "500", "--threads", "2"],
    init=["--steps", "40", "--lr", "1e-4", "--eval-every", "40", "--eval-splits", "id,val-rule",
          "--eval-episodes", "128"],
    rl=["--updates", "30", "--eval-every", "6", "--eval-episodes", "128", "--eval-splits", "id,ood-rule,val-rule",
        "--eval-samples", "0"],  # greedy evaluations only, like the SFT arm's
    sft=["--lr", "1e-4", "--eval-episodes", "128", "--eval-max-new-tokens", "96",
         "--eval-splits", "id,ood-rule,val-rule"],
    eval_points=5,  # evaluations after the start, at the same compute fractions in both arms
)
SMOKE = dict(
    pretrain=["--mixture", "--steps", "3", "--batch-size", "4", "--eval-every", "0"],
    init=["--steps", "2", "--batch-size", "4", "--lr", "1e-4", "--eval-every", "0"],
    rl=["--updates", "2", "--eval-every", "1", "--eval-episodes", "2", "--num-envs", "4",
        "--rollout-steps", "8", "--minibatch-size", "8", "--max-new-tokens", "16", "--eval-samples", "0"],
    sft=["--batch-size", "4", "--lr", "1e-4", "--eval-episodes", "2", "--eval-max-new-tokens", "16"],
    eval_points=2,
)
SPLITS = ("id", "ood-rule", "val-rule")  # those the arms evaluated are summarized


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
        sys.exit(f"error: stage {name} failed (exit {code}); see {root / name}.log, then run again to resume")
    say(f"{name}: finished in {(time.time() - began) / 60:.1f} min")
    return out


def trainer_state(run: Path) -> dict:
    return json.loads((run / "final" / "trainer_state.json").read_text())


def sft_steps_for(init: Path, rl0: Path, points: int) -> tuple[int, int]:
    """(steps, eval_every) of an SFT arm that spends rl-0's training FLOPs: the init's own ID SFT
    steps tell the FLOPs of one step (same data, same batch size)."""
    state, rl_flops = trainer_state(init), trainer_state(rl0)["flops"]
    per_step = state["flops"] / state["step"]
    steps = max(points, points * round((rl_flops - state["flops"]) / per_step / points))
    return steps, steps // points


def run_experiment(root: Path, protocol: dict, seeds: int, jobs: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    pre = stage(root, "pretrain", "sft.py", protocol["pretrain"])
    init = stage(root, "init", "sft.py", ["--model", str(pre / "final"), *protocol["init"]])
    init_flops = str(trainer_state(init)["flops"])
    points = protocol["eval_points"]

    def rl(seed):
        return stage(root, f"rl-{seed}", "ppo.py",
                     ["--init", str(init / "final"), "--seed", str(seed), *protocol["rl"]])

    def sft(seed, rl0_future):
        steps, every = sft_steps_for(init, rl0_future.result(), points)
        return stage(root, f"sft-{seed}", "sft.py", ["--model", str(init / "final"), "--seed", str(seed),
                                                     "--steps", str(steps), "--eval-every", str(every),
                                                     "--init-flops", init_flops, *protocol["sft"]])

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
def final_success(run: plots.Run, split: str) -> float:
    return run.series(split, run.metric)[1][-1]


def summarize(root: Path) -> dict:
    """results.json, results.md and the figures from the run folders under root."""
    arms = {}
    for method, label in (("sft", "SFT"), ("rl", "RL")):
        runs = sorted((p for p in root.glob(f"{method}-*") if (p / "final").is_dir()), key=lambda p: p.name)
        arms[label] = [plots.load_run(p) for p in runs]
    if not all(arms.values()):
        sys.exit(f"error: {root} has no finished sft-* or rl-* run to summarize")
    splits = [s for s in SPLITS if all(s in r.splits() for runs in arms.values() for r in runs)]
    firsts = [r.series(s, r.metric)[1][0] for runs in arms.values() for r in runs for s in splits]
    # every arm evaluates the init greedily at step 0 on the same hands: one start value per split
    start = {s: arms["RL"][0].series(s, "success")[1][0] for s in splits}
    if len(set(firsts)) > len(splits):
        print("warning: the arms' step-0 evaluations of the init differ", file=sys.stderr)
    first = arms["RL"][0].evals[0]["eval"]
    result = {"init": start, "arms": {}, "commit": _commit(), "stages": {},
              "init_numbers_right": {s: 100 * first[s].get("numbers_right", float("nan")) for s in splits}}
    for name in ("pretrain", "init"):  # their own last evaluation (id, val-rule), when they had one
        try:
            last = plots.load_run(root / name).evals[-1]["eval"]
            result["stages"][name] = {s: 100 * m["success"] for s, m in last.items()}
        except plots.RunError:
            pass
    for label, runs in arms.items():
        finals = {s: [final_success(r, s) for r in runs] for s in splits}
        gflops = [r.evals[-1]["flops"] / 1e9 for r in runs]
        result["arms"][label] = {"runs": [r.name for r in runs], "final": finals, "gflops": gflops,
                                 "change": {s: [v - start[s] for v in finals[s]] for s in splits},
                                 "numbers_right": {s: [100 * r.evals[-1]["eval"][s].get("numbers_right", float("nan"))
                                                       for r in runs] for s in splits}}
    rl_change, sft_change = result["arms"]["RL"]["change"], result["arms"]["SFT"]["change"]
    result["test"] = {}
    for s in splits:
        if len(rl_change[s]) >= 2 and len(sft_change[s]) >= 2:
            t, df, p = plots.welch_t_test(rl_change[s], sft_change[s])
            result["test"][s] = {"t": t, "df": df, "p": p}
    (root / "results.json").write_text(json.dumps(result, indent=1))
    (root / "results.md").write_text(results_table(result))
    plots.plot_seeds(arms, root / "headline_curves.png", splits)
    plots.plot_seeds(arms, root / "headline_numbers.png", splits, metric="numbers_right",
                     ylabel="first answers whose numbers follow the rule (%)")
    print(results_table(result))
    return result


def _stats(values: list[float]) -> str:
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else 0.0
    return f"{mean:.1f} ± {sd:.1f} [{min(values):.1f}, {max(values):.1f}]"


def results_table(result: dict) -> str:
    """The README's tables: final success in % (mean ± sd over seeds [min, max]), its change from
    the init in points with Welch's test of RL vs SFT, and the share of first answers whose numbers
    follow the rule (numbers_right)."""
    splits = list(result["init"])
    head = "| | " + " | ".join(f"{s} success (%)" for s in splits) + " | GFLOPs |"
    lines = [head, "|---" * (len(splits) + 2) + "|",
             "| init | " + " | ".join(f"{result['init'][s]:.1f}" for s in splits) + " | |"]
    for label, arm in result["arms"].items():
        lines.append(f"| {label} ({len(arm['runs'])} seeds) | " + " | ".join(_stats(arm["final"][s]) for s in splits)
                     + f" | {sum(arm['gflops']) / len(arm['gflops']):,.0f} |")
    lines += ["", "| change from init (pp) | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|"]
    for label, arm in result["arms"].items():
        lines.append(f"| {label} | " + " | ".join(_stats(arm["change"][s]) for s in splits) + " |")
    if result["test"]:
        lines.append("| RL vs SFT, Welch's t-test | " + " | ".join(
            f"t = {result['test'][s]['t']:.2f}, p = {result['test'][s]['p']:.3g}" if s in result["test"] else "-"
            for s in splits) + " |")
    lines += ["", "| first answer's numbers follow the rule (%) | " + " | ".join(splits) + " |",
              "|---" * (len(splits) + 1) + "|",
              "| init | " + " | ".join(f"{result['init_numbers_right'][s]:.1f}" for s in splits) + " |"]
    for label, arm in result["arms"].items():
        lines.append(f"| {label} | " + " | ".join(_stats(arm["numbers_right"][s]) for s in splits) + " |")
    for name, values in result["stages"].items():
        lines.append(f"\n{name} (its last evaluation): " + ", ".join(f"{s} {v:.1f}%" for s, v in values.items()))
    lines.append(f"\nFrom commit {result['commit']}; mean ± sd over seeds [min, max].")
    return "\n".join(lines) + "\n"


def _commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def main(argv=None) -> None:
    p = ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                       epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--root", default="runs/headline", help="folder of the stages' run folders and the results")
    p.add_argument("--seeds", type=COUNT, default=5, help="seeds per arm (at least 2 for the t-test; default 5)")
    p.add_argument("--jobs", type=COUNT, default=2, help="runs at once, one CPU thread each (default 2, for 2 cores)")
    p.add_argument("--sft-lr", type=number(above=0), default=None,
                   help="learning rate of the SFT arm (default 1e-4, as the init)")
    p.add_argument("--rl-lr", type=number(above=0), default=None,
                   help="learning rate of the RL arm (default ppo.py's 2e-5)")
    p.add_argument("--pretrain-seed", type=SEED, default=0,
                   help="seed of the pretraining stand-in (model init and mixture; default 0): another seed is "
                        "another 'pretrained model' for a robustness check")
    p.add_argument("--smoke", action="store_true", help="a few steps of every stage, 1 seed: a pipeline check")
    p.add_argument("--summary-only", action="store_true", help="only redo results.md/json and the figures")
    args = p.parse_args(argv)
    if why := out_problem(args.root):
        p.error(f"--root {why}")
    root = Path(args.root)
    protocol = dict(SMOKE if args.smoke else FULL)
    if args.sft_lr is not None:  # the ablations: a later --lr flag wins in argparse
        protocol["sft"] = protocol["sft"] + ["--lr", str(args.sft_lr)]
    if args.rl_lr is not None:
        protocol["rl"] = protocol["rl"] + ["--lr", str(args.rl_lr)]
    protocol["pretrain"] = protocol["pretrain"] + ["--seed", str(args.pretrain_seed)]
    if not args.summary_only:
        run_experiment(root, protocol, 1 if args.smoke else args.seeds, args.jobs)
    summarize(root)


if __name__ == "__main__":
    main()
