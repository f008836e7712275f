"""End to end: the wall time of the main job, `python ppo.py --env generalpoints`, by phase.

ppo.py times its own phases and prints them on its last line,

    done: runs/ppo-gp-l | time: warm start 212s | rollouts 250s | updates 80s | evals 60s

where the warm start is the SFT run that PPO starts from (sft.py's run, with its own
evaluations), rollouts include the no-grad scoring pass, and evals are PPO's evaluations at the
first and last update. This script runs the job as a subprocess in a fresh folder (so the SFT
warm start is trained, as on a clean checkout, and runs/ is left alone), streams its output,
reads that line and prints each phase's seconds and share of the wall time. "other" is the rest:
process start and imports, model loads, checkpoints, plots. The issue's target: the default job
within about 10 minutes on 2 CPU cores.

    python benchmarks/end_to_end.py                    # the default job: ~10 minutes on 2 cores
    python benchmarks/end_to_end.py --quick            # 2 SFT steps + 2 tiny PPO updates: seconds
    python benchmarks/end_to_end.py --workdir /tmp/e2e # keep the run folders there

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
TARGET_S = 600  # the issue: the default main job within about 10 minutes on 2 cores
# --quick: a warm start of 2 SFT steps and 2 PPO updates on a handful of short attempts
QUICK_SFT = ["--steps", "2", "--batch-size", "4", "--eval-every", "0", "--save-every", "0"]
QUICK_PPO = ["--updates", "2", "--num-envs", "4", "--rollout-steps", "8", "--minibatch-size", "4",
             "--ppo-epochs", "1", "--eval-episodes", "2", "--max-attempts", "2",
             "--max-new-tokens", "8", "--save-every", "0"]


def parse_phases(lines):
    """{phase: seconds} from ppo.py's last line, '... | time: warm start 212s | rollouts 250s'."""
    for line in reversed(lines):
        if line.startswith("done:") and "time:" in line:
            parts = line.split("time:", 1)[1].split("|")
            return {m.group(1): float(m.group(2)) for part in parts
                    if (m := re.fullmatch(r"\s*(.+?)\s+([0-9.]+)s\s*", part))}
    return None


def sft_eval_seconds(lines):
    """Seconds of the warm start's own evaluations (sft.py: 'eval step N: ... (12s)')."""
    return sum(float(m.group(1)) for line in lines
               if (m := re.match(r"eval step \d+: .*\((\d+(?:\.\d+)?)s\)\s*$", line)))


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
                        help="a drastically reduced job (2 SFT steps, 2 tiny PPO updates): seconds")
    parser.add_argument("--workdir", help="folder for the SFT and PPO run folders, kept "
                        "(default: a temporary folder, deleted at the end)")
    parser.add_argument("--quiet", action="store_true", help="do not echo ppo.py's output")
    args = parser.parse_args()
    if args.workdir and Path(args.workdir).exists() and any(Path(args.workdir).iterdir()):
        parser.error(f"--workdir {args.workdir} is not empty (the runs must start from scratch)")

    with tempfile.TemporaryDirectory(prefix="end_to_end-") as tmp:
        work = Path(args.workdir or tmp).resolve()
        work.mkdir(parents=True, exist_ok=True)
        if " " in str(work):  # --warm-start-args is split on spaces by ppo.py
            parser.error(f"--workdir {work} must not contain spaces")
        # the default job; only the run folders move out of runs/ (the SFT warm start's too)
        sft_flags = (QUICK_SFT if args.quick else []) + ["--out", str(work / "sft")]
        cmd = [sys.executable, "ppo.py", "--env", "generalpoints", "--out", str(work / "ppo"),
               "--warm-start-args", " ".join(sft_flags)] + (QUICK_PPO if args.quick else [])
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
        if name == "warm start" and (sft_evals := sft_eval_seconds(lines)):
            print(f"{'  of which SFT evals':<22} {sft_evals:8.1f} {sft_evals / wall:7.1%}")
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
