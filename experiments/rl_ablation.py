"""Which change makes PPO learn GP-L at laptop scale? An ablation grid of ppo.py's flags.

Before the shipped init, the main job's PPO barely moved ID success (experiments/LOG.md).
This script runs ppo.py from one shared warm start with each row's flags and several seeds, and
writes one table: ID success at the first and the last evaluation, greedy and sampled (the
policy RL samples from), sampled first-attempt success, and the update diagnostics (approx KL,
clip fraction, explained variance), mean and sd over seeds.

  1. warm     sft.py with the recipe of inits/gp-l (experiments/make_init.py: 900 steps, half of the
              conversations with revision turns), seed 0, shared by every row.
  2. ROW-sS   ppo.py --init warm/final with the row's flags, seed S, 30 updates, evaluated on
              128 fixed ID hands at updates 0, 15 and 30 (greedy, and 3 sampled passes).
  3. summary  experiments/results/main-job/rl_ablation.md (with --root elsewhere: <root>/rl_ablation.md).

Every run is a folder under --root, skipped once finished and resumed if killed, so a stopped
grid goes on where it stopped. Two single-threaded runs share the 2 cores (--jobs).

    python experiments/rl_ablation.py                     # every row, 3 seeds: about 55 min on 2 cores
    python experiments/rl_ablation.py --rows paper,viter1 --seeds 1
    python experiments/rl_ablation.py --smoke             # a handful of steps: seconds (tests)
    python experiments/rl_ablation.py --summary-only
"""
import json
import math
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cli  # noqa: E402
from cli import COUNT, ArgumentParser, out_problem  # noqa: E402  (argparse checks, no torch)
from headline import say, stage  # noqa: E402  (the same resumable stage runner)

# ppo.py's defaults before the main job took this study's episode-kl row as its defaults (a later
# flag wins in argparse): the "paper" row, the paper's algorithm at the CPU's lr and sizes
PPO_BEFORE = ["--lr", "2e-5", "--warmup-updates", "0", "--critic", "shared", "--rollout-steps", "128",
              "--num-envs", "32", "--minibatch-size", "64", "--gamma", "0.9", "--gae-lambda", "0.95",
              "--kl-coef", "0", "--temperature", "0.7", "--eval-every", "15", "--save-every", "10"]

WARM = ["--model", "tiny", "--revise", "0.5", "--steps", "900", "--eval-every", "0"]  # make_init.py's gp-l recipe
# Each row adds to the one before it where its name starts with "+"; the paper's algorithm first.
FAST = ["--lr", "1e-4", "--warmup-updates", "3", "--critic", "detached"]
BIG = ["--rollout-steps", "256", "--num-envs", "64", "--minibatch-size", "128"]
ROWS = {
    "paper": [],             # PPO_BEFORE: the paper's algorithm at the CPU's lr and sizes
    "fast": FAST,                                         # lr 1e-4 with a warm-up, value loss off the trunk
    "fast-big": FAST + BIG,                               # + 256 attempts per update, minibatches of 128
    "gamma0": FAST + BIG + ["--gamma", "0"],              # + no credit from a revision to the attempt before
    # + whole-episode credit and a KL penalty to the warm start: one seed rose 64.5 -> 69.9% sampled
    # and 57.0 -> 61.7% greedy in 30 updates, 70.3% / 61.7% in 60 (the best lead so far)
    "episode-kl": FAST + BIG + ["--gamma", "1", "--gae-lambda", "1", "--kl-coef", "0.2"],
    "viter1": FAST + ["--rollout-steps", "256", "--num-envs", "256", "--minibatch-size", "128",
                      "--max-attempts", "1", "--eval-attempts", "5"],  # train first attempts only
}
COMMON = ["--updates", "30", "--eval-every", "15", "--eval-episodes", "128", "--eval-splits", "id",
          "--eval-attempts", "5", "--save-every", "15"]
SMOKE_WARM = ["--model", "tiny", "--steps", "2", "--batch-size", "4", "--eval-every", "0", "--revise", "0.5"]
SMOKE = ["--updates", "2", "--eval-every", "1", "--eval-episodes", "2", "--eval-splits", "id",
         "--num-envs", "4", "--rollout-steps", "8", "--minibatch-size", "8", "--max-new-tokens", "16",
         "--eval-samples", "2"]


def run_grid(root: Path, rows: list[str], seeds: int, jobs: int, smoke: bool) -> None:
    root.mkdir(parents=True, exist_ok=True)
    warm = stage(root, "warm", "sft.py", SMOKE_WARM if smoke else WARM)

    def run(row, seed):  # the smoke run keeps the row's algorithm but its own tiny sizes
        flags = _algorithm_flags(PPO_BEFORE + ROWS[row]) + SMOKE if smoke else PPO_BEFORE + ROWS[row] + COMMON
        return stage(root, f"{row}-s{seed}", "ppo.py", ["--init", str(warm / "final"), "--seed", str(seed), *flags])

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(run, row, s) for row in rows for s in range(seeds)]:
            future.result()


def _algorithm_flags(flags: list[str]) -> list[str]:
    """The row's flags without its batch sizes (the smoke run keeps its own tiny ones)."""
    sizes = {"--rollout-steps", "--num-envs", "--minibatch-size"}
    out, skip = [], False
    for f in flags:
        if skip:
            skip = False
        elif f in sizes:
            skip = True
        else:
            out.append(f)
    return out


def read_log(run: Path) -> tuple[list, list]:
    """(eval lines, update lines) of a run's metrics.jsonl."""
    lines = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    return [x for x in lines if "eval" in x], [x for x in lines if "approx_kl" in x]


def row_stats(runs: list[Path]) -> dict:
    """Per seed: ID greedy / sampled / sampled first-attempt success at the first and last
    evaluation, and the mean of approx KL, clip fraction and explained variance over updates."""
    logs = [read_log(r) for r in runs]

    def ends(evals, source, key):
        values = [e[source]["id"][key] for e in evals if "id" in e.get(source, {})]
        return (100 * values[0], 100 * values[-1]) if values else (math.nan, math.nan)

    out = {name: [ends(evals, source, key) for evals, _ in logs]
           for name, source, key in [("greedy", "eval", "success"), ("sampled", "eval_sampled", "success"),
                                     ("sampled first", "eval_sampled", "first_attempt")]}
    for key in ("approx_kl", "clipfrac", "explained_variance"):
        out[key] = [statistics.fmean([u[key] for u in updates if u.get(key) is not None] or [math.nan])
                    for _, updates in logs]
    return out


def _ms(values: list[float], digits: int = 1) -> str:
    if len(values) < 2:
        return f"{values[0]:.{digits}f}" if values else "-"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def summarize(root: Path, rows: list[str]) -> str:
    lines = ["| row | flags | seeds | ID greedy: start -> end (change) | ID sampled: start -> end (change) "
             "| sampled first attempt (change) | approx KL | clip frac | expl. var. |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        runs = [d for d in sorted(root.glob(f"{row}-s*")) if (d / "final").is_dir()]
        if not runs:
            continue
        s = row_stats(runs)

        def cell(pairs):
            start, end = [a for a, _ in pairs], [b for _, b in pairs]
            return f"{_ms(start)} -> {_ms(end)} ({_ms([b - a for a, b in pairs])})"

        lines.append(f"| {row} | `{' '.join(ROWS[row]) or '(PPO_BEFORE)'}` | {len(runs)} | {cell(s['greedy'])} | "
                     f"{cell(s['sampled'])} | {_ms([b - a for a, b in s['sampled first']])} | "
                     f"{_ms(s['approx_kl'], 4)} | {_ms(s['clipfrac'], 2)} | {_ms(s['explained_variance'], 2)} |")
    return "\n".join(lines) + "\n"


def rows_and_root(p, args, table: dict) -> tuple[list[str], Path]:
    """The checked --rows and --root of an experiment's parsed args (a usage error otherwise)."""
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    if not rows or any(r not in table for r in rows):
        p.error(f"--rows: choose from {', '.join(table)}")
    if why := out_problem(args.root):
        p.error(f"--root {why}")
    return rows, Path(args.root)


def write_results(root_arg: str, name: str, title: str, table: str) -> None:
    """The table into experiments/results/main-job/<name> for the default root, else into <root>/<name>."""
    default = root_arg == "runs/rl-ablation"
    out = ROOT / "experiments" / "results" / "main-job" / name if default else Path(root_arg) / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# {title}\n\n{table}")
    say(f"wrote {out}\n{table}")


def run(argv=None) -> None:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="runs/rl-ablation", help="folder of the runs (default runs/rl-ablation)")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows among {', '.join(ROWS)}")
    p.add_argument("--seeds", type=COUNT, default=3, help="seeds per row (default 3)")
    p.add_argument("--jobs", type=COUNT, default=2, help="runs at a time (default 2: one per core)")
    p.add_argument("--smoke", action="store_true", help="a few steps of every stage, to check the pipeline")
    p.add_argument("--summary-only", action="store_true", help="only write the table from the runs there")
    args = p.parse_args(argv)
    rows, root = rows_and_root(p, args, ROWS)
    if not args.summary_only:
        run_grid(root, rows, args.seeds, args.jobs, args.smoke)
    write_results(args.root, "rl_ablation.md", "PPO ablation on GP-L (experiments/rl_ablation.py)",
                  summarize(root, rows))

def main(argv=None) -> None:
    """run(argv); a RunError (a failed stage) is one line and exit status 1 (cli.main)."""
    cli.main(run, lambda argv: argv, argv)


if __name__ == "__main__":
    main()
