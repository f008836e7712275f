"""End to end: the wall time of the main job, `python ppo.py --env generalpoints`, by phase.

ppo.py times its own phases and prints them near its end,

    done: runs/ppo-gp-l | time: rollouts 300s | updates 200s | evals 90s

where rollouts include the no-grad scoring passes (old log-probs and values, the KL reference's
log-probs) and evals are PPO's evaluations (greedy every 50 updates, sampled at the first and the
last). The job starts from the shipped inits/gp-l, as on a clean checkout. This script runs it as
a subprocess with its run folder in a fresh folder (runs/ is left alone), streams its output,
reads that line and prints each phase's seconds and share of the wall time. "other" is the rest:
process start and imports, model loads, checkpoints, plots. The target: the default job within
10 minutes on 2 CPU cores.

    python benchmarks/end_to_end.py                    # the default job: ~10 minutes on 2 cores
    python benchmarks/end_to_end.py --quick            # 2 tiny PPO updates: seconds
    python benchmarks/end_to_end.py --workdir /tmp/e2e # keep the run folder there

Ends with `wall time: N s`.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 600  # the default main job within 10 minutes on 2 cores
# --quick: 2 PPO updates on a handful of short attempts
QUICK_PPO = ["--updates", "2", "--num-envs", "4", "--rollout-steps", "8", "--minibatch-size", "4",
             "--ppo-epochs", "1", "--eval-episodes", "2", "--max-attempts", "2",
             "--max-new-tokens", "8", "--save-every", "0"]


def parse_phases(lines):
    """{phase: seconds} from ppo.py's line '... | time: rollouts 300s | updates 200s | evals 90s'."""
    for line in reversed(lines):
        if line.startswith("done:") and "time:" in line:
            parts = line.split("time:", 1)[1].split("|")
            return {m.group(1): float(m.group(2)) for part in parts
                    if (m := re.fullmatch(r"\s*(.+?)\s+([0-9.]+)s\s*", part))}
    return None


def run_job(cmd, quiet):
    """Run cmd in the project root; returns (exit code, output lines, wall seconds)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, bufsize=1)
    lines = []
    for line in proc.stdout:  # ppo.py's own lines, as they come
        lines.append(line.rstrip("\n"))
        if not quiet:
            print("  | " + line, end="", flush=True)
    code = proc.wait()
    return code, lines, time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a drastically reduced job (2 tiny PPO updates): seconds")
    parser.add_argument("--workdir", help="folder for the PPO run folder, kept "
                        "(default: a temporary folder, deleted at the end)")
    parser.add_argument("--quiet", action="store_true", help="do not echo ppo.py's output")
    args = parser.parse_args()
    if args.workdir and Path(args.workdir).exists() and any(Path(args.workdir).iterdir()):
        parser.error(f"--workdir {args.workdir} is not empty (the run must start from the init)")

    with tempfile.TemporaryDirectory(prefix="end_to_end-") as tmp:
        work = Path(args.workdir or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        # the default job; only the run folder moves out of runs/
        cmd = [sys.executable, "ppo.py", "--env", "generalpoints", "--out", str(work / "ppo")] + \
            (QUICK_PPO if args.quick else [])
        shown = " ".join(cmd[1:4]) + (" (--quick: reduced)" if args.quick else " (defaults)")
        print(f"running: python {shown}, run folders in {work}", flush=True)
        code, lines, wall = run_job(cmd, args.quiet)
    if code != 0:
        tail = "\n".join(lines[-15:])
        sys.exit(f"{tail}\nerror: ppo.py exited with code {code} after {wall:.0f} s")
    phases = parse_phases(lines)
    if not phases:
        sys.exit("error: ppo.py printed no 'done: ... | time: ...' line to read the phases from")

    print(f"{'phase':<22} {'seconds':>8} {'share':>7}")
    for name, secs in phases.items():
        print(f"{name:<22} {secs:8.1f} {secs / wall:7.1%}")
    other = wall - sum(phases.values())
    print(f"{'other':<22} {other:8.1f} {other / wall:7.1%}")
    if phases.get("updates"):
        print(f"rollouts/updates time ratio: {phases.get('rollouts', 0.0) / phases['updates']:.1f}x")
    if not args.quick:
        verdict = "ok" if wall <= TARGET_S else "OVER TARGET"
        print(f"target: the default job within ~{TARGET_S} s on 2 cores: {verdict}")
    print(f"wall time: {wall:.1f} s")


if __name__ == "__main__":
    main()
