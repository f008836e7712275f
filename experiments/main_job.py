"""The README's two runs side by side, over seeds: `python ppo.py --env generalpoints` (RL) and
`python sft.py --env generalpoints` (SFT), both from the shipped inits/gp-l with their defaults.

  1. ppo-sS   ppo.py --seed S: 100 PPO updates, evaluated on the 234 fixed hands of id and ood-rule
              (greedy every 50 updates; sampled, 3 passes at the rollout T 0.5, at the start and the end).
  2. sft-sS   sft.py --seed S: 600 ID SFT steps, evaluated greedily on the same hands every 100.
  3. held-out the init and every final checkpoint, greedy on 1,200 other ID hands, none of them one
              of the 234 evaluation hands (evaluate.py --held-out: seeds generalpoints-heldout/...).
  4. summary  experiments/results/main-job/main_job.md and .json (start -> end per seed, mean ± sd) and
              main_job_curves.png (both arms' mean over seeds, seeds as thin lines) and
              main_job_rl_curves.png (each PPO seed, with its rollouts' success and reward per update).

Every run is a folder under --root, skipped once finished and resumed if killed. With --jobs 2
two runs share the 2 cores, one thread each (the main job alone takes both: ppo.py --threads 2);
the algorithm is the same, the numerics are not bit-identical.

    python experiments/main_job.py                  # 3 seeds of each arm: about 50 min on 2 cores
    python experiments/main_job.py --seeds 1 --arms ppo
    python experiments/main_job.py --smoke          # a handful of steps: seconds (tests)
    python experiments/main_job.py --summary-only
"""
import json
import statistics
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import plots  # noqa: E402  (after the path is set)
import cli  # noqa: E402
from cli import COUNT, ArgumentParser, out_problem  # noqa: E402  (argparse checks, no torch)
from headline import say, stage  # noqa: E402  (the same resumable stage runner)

HELD_OUT = 1200  # the change of a checkpoint's success has a standard error of ~1.6 points here, ~2.7 on 400
SMOKE = {"ppo": ["--updates", "2", "--eval-every", "1", "--eval-episodes", "2", "--num-envs", "4",
                 "--rollout-steps", "8", "--minibatch-size", "8", "--max-new-tokens", "16", "--eval-samples", "2"],
         "sft": ["--steps", "2", "--batch-size", "4", "--eval-every", "1", "--eval-episodes", "2",
                 "--eval-max-new-tokens", "16"]}


def run_all(root: Path, arms: list[str], seeds: int, jobs: int, smoke: bool) -> None:
    root.mkdir(parents=True, exist_ok=True)
    threads = ["--threads", "1"] if jobs > 1 else []

    def run(arm, seed):
        flags = ["--seed", str(seed), *threads, *(SMOKE[arm] if smoke else [])]
        return stage(root, f"{arm}-s{seed}", f"{arm}.py", flags)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(run, arm, s) for arm in arms for s in range(seeds)]:
            future.result()


def held_out(root: Path, n: int) -> dict:
    """{checkpoint name: greedy ID success on the held-out hands}, cached in <root>/held_out.json."""
    path = root / "held_out.json"
    done = json.loads(path.read_text()) if path.is_file() else {}
    todo = {"init": ROOT / "inits" / "gp-l"} | {d.name: (d / "final").resolve() for d in sorted(root.glob("*-s*"))
                                               if (d / "final").is_dir()}
    todo = {k: v for k, v in todo.items() if k not in done or done[k]["n"] != n}
    if todo:
        import evaluate
        from policy import load_policy
        for name, folder in todo.items():
            m = evaluate.evaluate(load_policy(str(folder)), splits=("id",), n=n, max_new_tokens=96,
                                  batch_size=64, held_out=True)["id"]
            done[name] = {"success": m["success"], "stderr": m["stderr"], "n": m["n"]}
            say(f"held-out {name}: {100 * m['success']:.1f}% of {m['n']} ID hands")
            path.write_text(json.dumps(done, indent=1) + "\n")
    return done


def ends(run: Path, source: str, split: str) -> tuple[float, float] | None:
    evals = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x.strip()]
    values = [e[source][split]["success"] for e in evals if split in e.get(source, {})]
    return (100 * values[0], 100 * values[-1]) if len(values) >= 2 else None


def _ms(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:+.1f}" if values else "-"
    return f"{statistics.fmean(values):+.1f} ± {statistics.stdev(values):.1f}"


def summarize(root: Path, arms: list[str], heldout: dict) -> tuple[str, dict]:
    columns = [("ID greedy", "eval", "id"), ("ID sampled", "eval_sampled", "id"),
               ("rule-OOD greedy", "eval", "ood-rule"), ("rule-OOD sampled", "eval_sampled", "ood-rule")]
    lines = ["| run | " + " | ".join(c[0] for c in columns) + f" | {HELD_OUT} held-out ID hands, greedy |",
             "|---|" + "---|" * (len(columns) + 1)]
    data = {}
    for arm in arms:
        runs = [d for d in sorted(root.glob(f"{arm}-s*")) if (d / "final").is_dir()]
        changes = {c[0]: [] for c in columns} | {"held-out": []}
        for run in runs:
            row = {c[0]: ends(run, c[1], c[2]) for c in columns}
            cells = [f"{a:.1f} -> {b:.1f} ({b - a:+.1f})" if (a, b) != (None, None) else "-"
                     for a, b in (row[c[0]] or (None, None) for c in columns)]
            h0, h1 = heldout.get("init"), heldout.get(run.name)
            hcell = "-" if not (h0 and h1) else \
                f"{100 * h0['success']:.1f} -> {100 * h1['success']:.1f} ({100 * (h1['success'] - h0['success']):+.1f})"
            lines.append(f"| {run.name} | " + " | ".join(cells) + f" | {hcell} |")
            for k, v in row.items():
                if v:
                    changes[k].append(v[1] - v[0])
            if h0 and h1:
                changes["held-out"].append(100 * (h1["success"] - h0["success"]))
            data[run.name] = {**{k: v for k, v in row.items()}, "held_out": [h0, h1]}
        if runs:
            lines.append(f"| **{arm}, mean ± sd over {len(runs)}** | " + " | ".join(_ms(changes[c[0]]) for c in columns)
                         + f" | {_ms(changes['held-out'])} |")
    return "\n".join(lines) + "\n", data


def run(argv=None) -> None:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="runs/main-job", help="folder of the runs (default runs/main-job)")
    p.add_argument("--arms", default="ppo,sft", help="comma-separated arms among ppo, sft (default both)")
    p.add_argument("--seeds", type=COUNT, default=3, help="seeds per arm (default 3)")
    p.add_argument("--jobs", type=COUNT, default=2, help="runs at a time (default 2: one per core)")
    p.add_argument("--smoke", action="store_true", help="a few steps of every run, to check the pipeline")
    p.add_argument("--summary-only", action="store_true", help="only write the tables and the figure")
    args = p.parse_args(argv)
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    if not arms or any(a not in SMOKE for a in arms):
        p.error("--arms: choose from ppo, sft")
    if why := out_problem(args.root):
        p.error(f"--root {why}")
    root = Path(args.root)
    if not args.summary_only:
        run_all(root, arms, args.seeds, args.jobs, args.smoke)
    heldout = held_out(root, 4 if args.smoke else HELD_OUT)
    table, data = summarize(root, arms, heldout)
    out = ROOT / "experiments" / "results" / "main-job" if args.root == "runs/main-job" else root
    out.mkdir(parents=True, exist_ok=True)
    groups = {arm.upper() if arm == "sft" else "RL": [plots.load_run(d) for d in sorted(root.glob(f"{arm}-s*"))
                                                      if (d / "final").is_dir()] for arm in arms}
    plots.plot_seeds({k: v for k, v in groups.items() if v}, out / "main_job_curves.png")
    if groups.get("RL"):  # each PPO seed's evaluations and its rollouts' success and reward per update
        plots.plot_curves(groups["RL"], out / "main_job_rl_curves.png")
    temps = sorted({json.loads((d / "config.json").read_text())["temperature"] for d in root.glob("ppo-s*")
                    if (d / "config.json").is_file()})  # the runs' own rollout temperature
    text = ("# The main job and its SFT contrast, from inits/gp-l (experiments/main_job.py)\n\n"
            "Success within 5 attempts, %, first -> last evaluation (change), on the 234 fixed hands per split; "
            f"sampled = 3 passes at the rollout temperature ({', '.join(map(str, temps)) or '-'}). "
            f"Held-out: {HELD_OUT} other ID hands, the init vs the final checkpoint.\n\n"
            + table)
    (out / "main_job.md").write_text(text)
    (out / "main_job.json").write_text(json.dumps(data, indent=1) + "\n")
    say(f"wrote {out / 'main_job.md'}\n{text}")


def main(argv=None) -> None:
    """run(argv); a RunError (a failed stage) is one line and exit status 1 (cli.main)."""
    cli.main(run, lambda argv: argv, argv)


if __name__ == "__main__":
    main()
