"""How far can learning from the policy's own correct answers lift GP-L at laptop scale?

Rejection fine-tuning (RFT) is the simplest reward-driven learner and, per sample, a stronger one
than PPO's clipped step: play episodes with the policy, keep those the verifier solved, and train
on them with the SFT loss (on each conversation's last turn: the correct answer). It uses only
the positive half of RL's signal, with no clip and no ratio, so it shows what the policy's own
samples can teach: if RFT on N sampled attempts cannot lift a metric from the warm start, PPO on
the same N attempts is not expected to.

  1. warm         inits/gp-l's recipe (experiments/make_init.py: 900 steps, half of the
                  conversations with revision turns), seed 0; shared with experiments/rl_ablation.py
                  when both use the same --root.
  2. samples-sS   --episodes training hands (seeds the evaluation never uses) played by the warm
                  start at T 0.7 with 5 attempts, as PPO's rollouts are; the solved conversations
                  in the public SFT data format (samples-sS.json), and their statistics.
  3. ROW-sS       python sft.py --model warm/final --data samples-sS.json: 2 epochs at the row's lr.
  4. evaluation   the warm start and every ROW-sS on 128 fixed ID hands with 5 attempts: greedy, and
                  2 seeded sampled passes at T 0.7 (the rollout temperature); besides success, the
                  first attempt's success, the share of revision attempts that are correct, and the
                  share of revision attempts that repeat an earlier answer of the same hand.
  5. summary      experiments/results/main-job/rft_ceiling.md (with --root elsewhere: <root>/rft_ceiling.md).

Every stage is skipped once finished, so a stopped run goes on where it stopped; two stages run at
a time (--jobs), each on one core.

    python experiments/rft_ceiling.py                  # 3 rows x 3 seeds: 16 min (+7 without the warm start)
    python experiments/rft_ceiling.py --rows all-1e-4 --seeds 1
    python experiments/rft_ceiling.py --smoke          # a handful of episodes and steps: ~1 min (tests)
"""
import json
import math
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cli  # noqa: E402
from cli import COUNT, ArgumentParser, RunError  # noqa: E402  (argparse checks, no torch)
from headline import say, stage  # noqa: E402  (the resumable stage runner)
from rl_ablation import SMOKE_WARM, WARM, _ms, rows_and_root, write_results  # noqa: E402  (the same warm start)

TEMPERATURE, ATTEMPTS, EVAL_HANDS, EVAL_PASSES = 0.7, 5, 128, 2
# Each row: (which solved conversations, learning rate). 2 epochs of batches of 32, 5% warm-up, cosine.
ROWS = {
    "all-1e-4": ("all", 1e-4),          # every solved conversation: first attempts and revisions
    "all-3e-4": ("all", 3e-4),
    "revisions-1e-4": ("revisions", 1e-4),  # only hands solved by a revision: does revising transfer?
}
SMOKE = dict(episodes=8, eval_hands=2, max_new_tokens=16)


def run_all(root: Path, rows: list[str], seeds: int, episodes: int, jobs: int, smoke: bool) -> None:
    root.mkdir(parents=True, exist_ok=True)
    warm = stage(root, "warm", "sft.py", SMOKE_WARM if smoke else WARM)
    worker(root, "eval", warm / "final", root / "warm" / "rft_eval.json", smoke=smoke)

    def one_seed(seed):
        samples = root / f"samples-s{seed}.json"
        worker(root, "sample", warm / "final", samples, seed=seed, episodes=episodes, smoke=smoke)
        for row in rows:
            which, lr = ROWS[row]
            data = samples
            if which == "revisions":  # the conversations with at least one failed attempt before the answer
                data = root / f"samples-s{seed}-revisions.json"
                records = json.loads(samples.read_text())
                write_atomic(data, [r for r in records if len(r["conversations"]) > 2])
            n = len(json.loads(data.read_text()))
            batch = 4 if smoke else 32  # sft.py's cpu batch size; the smoke run's own tiny one
            steps = max(1, math.ceil(2 * n / batch))
            flags = ["--model", str(warm / "final"), "--data", str(data), "--steps", str(steps), "--lr", str(lr),
                     "--warmup-frac", "0.05", "--eval-every", "0", "--save-every", "0", "--seed", str(seed)]
            run = stage(root, f"{row}-s{seed}", "sft.py", flags + ["--batch-size", str(batch)])
            worker(root, "eval", run / "final", run / "rft_eval.json", smoke=smoke)

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for future in [pool.submit(one_seed, s) for s in range(seeds)]:
            future.result()


def worker(root: Path, task: str, model: Path, out: Path, seed: int = 0, episodes: int = 0, smoke=False) -> None:
    """Sampling and evaluation run in their own process (one core each), skipped once written."""
    if out.exists():
        return
    cmd = [sys.executable, __file__, f"--{task}", str(model), "--to", str(out), "--seed", str(seed),
           "--episodes", str(episodes)] + (["--smoke"] if smoke else [])
    log_path = root / f"{task}-{out.parent.name if task == 'eval' else out.stem}.log"
    with open(log_path, "a") as log:
        if subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT) != 0 or not out.exists():
            raise RunError(f"{task} of {model} failed; see {log_path}, then run again to resume")
    say(f"{task}: wrote {out}")


def play(pol, hands: list, temperature: float, max_new_tokens: int, sample_seed=None):
    """[(env, attempts)] of one pass of a policy over the hands (envs), seeded when sampling."""
    import evaluate
    with evaluate._seeded(sample_seed):
        episodes = evaluate.run_episodes(pol, hands, temperature, max_new_tokens, batch_size=128, progress=False)
    return list(zip(hands, episodes))


def write_atomic(path: Path, data) -> None:  # a killed process leaves no half-written file behind
    tmp = path.with_suffix(".part")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def answers(env) -> list[str]:
    return [m["content"][-1]["text"] for m in env.messages if m["role"] == "assistant"]


def sample(model: str, out: Path, seed: int, episodes: int, smoke: bool) -> None:
    """The warm start's solved conversations on fresh training hands, in the public SFT format."""
    import generalpoints as gp
    import policy
    pol = policy.load_policy(model)
    hands = [gp.make_env("id", seed=1_000_000 * (seed + 1) + i, max_attempts=ATTEMPTS) for i in range(episodes)]
    played = play(pol, hands, TEMPERATURE, SMOKE["max_new_tokens"] if smoke else 96, sample_seed=seed)
    conversations = [env.messages for env, ep in played if ep[-1].terminated]
    if smoke:  # a 2-step warm start solves nothing: the smoke run trains on oracle conversations instead
        conversations = [ex["messages"] for ex in gp.sft_examples(episodes, seed=seed, revise=1.0)]
    role = {"user": "human", "assistant": "gpt"}
    records = [{"conversations": [{"from": role[m["role"]], "value": m["content"][-1]["text"]} for m in messages]}
               for messages in conversations]
    stats = {"episodes": episodes, "attempts": sum(len(ep) for _, ep in played),
             "solved": sum(ep[-1].terminated for _, ep in played),
             "first_attempt": sum(ep[0].terminated for _, ep in played) / episodes}
    write_atomic(out.with_suffix(".stats.json"), stats)
    write_atomic(out, records)  # last: its existence marks the stage done


def episode_metrics(played: list) -> dict:
    """Percentages over [(env, attempts)]: success within the attempts, first-attempt success, and
    of the revision attempts (the 2nd to 5th answers of a hand) the correct ones and the repeats of
    an answer given earlier to the same hand (a repeat is always wrong: the verifier is deterministic)."""
    revisions = [(said, ep, i) for env, ep in played for said in [answers(env)] for i in range(1, len(ep))]
    return {"success": 100 * sum(ep[-1].terminated for _, ep in played) / len(played),
            "first_attempt": 100 * sum(ep[0].terminated for _, ep in played) / len(played),
            "revision_correct": 100 * sum(ep[i].verdict.outcome == "correct" for _, ep, i in revisions)
            / max(1, len(revisions)),
            "revision_repeats": 100 * sum(said[i] in said[:i] for said, _, i in revisions)
            / max(1, len(revisions))}


def evaluation(model: str, out: Path, smoke: bool) -> None:
    """Greedy and sampled ID metrics on the fixed hands (module docstring, stage 4)."""
    import generalpoints as gp
    import policy
    pol, n = policy.load_policy(model), SMOKE["eval_hands"] if smoke else EVAL_HANDS
    tokens = SMOKE["max_new_tokens"] if smoke else 96
    result = {}
    for name, temperature, passes in (("greedy", 0.0, 1), ("sampled", TEMPERATURE, EVAL_PASSES)):
        result[name] = episode_metrics([x for k in range(passes) for x in
                                        play(pol, gp.eval_envs("id", n=n, max_attempts=ATTEMPTS), temperature,
                                             tokens, None if temperature == 0 else k)])
    write_atomic(out, result)


def summarize(root: Path, rows: list[str]) -> str:
    """Mean ± sd over seeds of each metric, and the warm start's value for reference."""
    warm = json.loads((root / "warm" / "rft_eval.json").read_text())
    keys = [("greedy", "success"), ("greedy", "first_attempt"), ("sampled", "success"),
            ("sampled", "first_attempt"), ("sampled", "revision_correct"), ("sampled", "revision_repeats")]
    lines = ["| row | seeds | solved conversations trained on | " + " | ".join(f"{a} {b.replace('_', ' ')}"
                                                                           for a, b in keys) + " |",
             "|---|---|---|" + "---|" * len(keys),
             "| warm start | - | - | " + " | ".join(f"{warm[a][b]:.1f}" for a, b in keys) + " |"]
    for row in rows:
        runs = [d for d in sorted(root.glob(f"{row}-s*")) if (d / "rft_eval.json").exists()]
        if not runs:
            continue
        evals = [json.loads((d / "rft_eval.json").read_text()) for d in runs]
        data = [len(json.loads((ROOT / json.loads((d / "config.json").read_text())["data"]).read_text()))
                for d in runs]
        lines.append(f"| {row} | {len(runs)} | {statistics.fmean(data):.0f} | "
                     + " | ".join(_ms([e[a][b] for e in evals]) for a, b in keys) + " |")
    samples = [json.loads(p.read_text()) for p in sorted(root.glob("samples-s*.stats.json"))]
    if samples:
        s = samples[0]
        lines.append(f"\nSamples per seed: {s['episodes']} episodes, {s['attempts']} attempts at T {TEMPERATURE}, "
                     f"{s['solved']} solved ({100 * s['first_attempt']:.1f}% at the first attempt), seed 0.")
    return "\n".join(lines) + "\n"


def run(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("--sample", "--eval"):  # a worker process (see worker())
        w = ArgumentParser()
        w.add_argument("--sample")
        w.add_argument("--eval")
        w.add_argument("--to", required=True)
        w.add_argument("--seed", type=int, default=0)
        w.add_argument("--episodes", type=int, default=0)
        w.add_argument("--smoke", action="store_true")
        a = w.parse_args(argv)
        if a.sample:
            sample(a.sample, Path(a.to), a.seed, a.episodes, a.smoke)
        else:
            evaluation(a.eval, Path(a.to), a.smoke)
        return
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--root", default="runs/rl-ablation", help="folder of the runs; the default shares "
                   "experiments/rl_ablation.py's warm start (default runs/rl-ablation)")
    p.add_argument("--rows", default=",".join(ROWS), help=f"comma-separated rows among {', '.join(ROWS)}")
    p.add_argument("--seeds", type=COUNT, default=3, help="seeds per row: sampling and training (default 3)")
    p.add_argument("--episodes", type=COUNT, default=4096, help="training hands sampled per seed (default 4096, "
                   "about 10,700 attempts: 3 PPO main jobs' worth of rollouts)")
    p.add_argument("--jobs", type=COUNT, default=2, help="seeds at a time (default 2: one per core)")
    p.add_argument("--smoke", action="store_true", help="a few episodes and steps of every stage")
    p.add_argument("--summary-only", action="store_true", help="only write the table from the runs there")
    args = p.parse_args(argv)
    rows, root = rows_and_root(p, args, ROWS)
    if not args.summary_only:
        run_all(root, rows, args.seeds, SMOKE["episodes"] if args.smoke else args.episodes, args.jobs, args.smoke)
    write_results(args.root, "rft_ceiling.md", "Rejection fine-tuning from the warm start, GP-L ID "
                  "(experiments/rft_ceiling.py)", summarize(root, rows))

def main(argv=None) -> None:
    """run(argv); a RunError (a failed stage) is one line and exit status 1 (cli.main)."""
    cli.main(run, lambda argv: argv, argv)


if __name__ == "__main__":
    main()
