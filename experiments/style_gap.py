"""How much of V-IRL-VL's visual-OOD drop is the street views' style? (ours, for the laptop experiment)

The visual-OOD routes differ from the ID ones in three ways: the style of their street views (nine
other cities' colours, windows and fonts), the names of their shops, and their cities' street
plans. This script plays the visual-OOD routes with each checkpoint three times, greedily, as
evaluate.py does:
  own style       the split as it is: each city's street views in its own style
  training style  the same routes redrawn in the training city's style: same names, same plans
  blank           a grey image at every position: what the model does without looking
The style gap = training style - own style, in points: what the style alone costs the model.
Per drawing: per-step accuracy and the share of answers whose observation is right.

    python experiments/style_gap.py inits/fig1-virl-vl runs/headline/virl-vl/{sft-0,rl-0}/final --out gap.json
"""
import argparse
import json
import sys
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import evaluate  # noqa: E402  (after the path is set)
import cli  # noqa: E402
import virl  # noqa: E402

DRAWINGS = ("own style", "training style", "blank")


def play(policy, drawing: str, n=None) -> dict:
    """virl_metrics of the visual-OOD routes (the first n) with their street views drawn one way."""
    envs = virl.eval_envs("ood-visual", n=n, vision=True)
    for env in envs:
        if drawing == "training style":
            env.look = "train"
        elif drawing == "blank":
            env.draw = lambda position, size=env.image_size: Image.new("RGB", (size, size), "grey")
    played = evaluate.run_episodes(policy, envs, progress=False)
    return evaluate.virl_metrics(played, [env.num_positions for env in envs])


def style_gap(policy, n=None) -> dict:
    """{drawing: {step_accuracy, observation_right} in %} and style_gap (points of per-step accuracy)."""
    out = {}
    for drawing in DRAWINGS:
        m = play(policy, drawing, n)
        out[drawing] = {"step_accuracy": 100 * m["step_accuracy"], "observation_right": 100 * m["observation_right"]}
    out["style_gap"] = out["training style"]["step_accuracy"] - out["own style"]["step_accuracy"]
    return out


def table(results: dict) -> str:
    head = ("| checkpoint | " + " | ".join(f"{d}: step acc / obs right (%)" for d in DRAWINGS)
            + " | style gap (pp) |")
    rows = [f"| {name} | " + " | ".join(f"{r[d]['step_accuracy']:.1f} / {r[d]['observation_right']:.1f}"
                                         for d in DRAWINGS) + f" | {r['style_gap']:+.1f} |"
            for name, r in results.items()]
    return "\n".join([head, "|---" * (len(DRAWINGS) + 2) + "|", *rows])


def main(argv=None) -> None:
    p = cli.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("checkpoints", nargs="+", help="V-IRL-VL policy folders (or 'tiny-vl', 'oracle', ...)")
    p.add_argument("--episodes", type=cli.COUNT, default=None,
                   help=f"visual-OOD routes to play (default all {evaluate.distinct_episodes('virl', 'ood-visual')})")
    p.add_argument("--out", help="write {checkpoint: results} as JSON to this file")
    args = p.parse_args(argv)
    if args.out and (why := cli.out_problem(args.out, folder=False)):
        p.error(f"--out {why}")
    for c in args.checkpoints:
        if c not in evaluate.STAND_INS and not c.startswith("tiny") and not Path(c).is_dir():
            p.error(f"checkpoint folder {c!r} not found")

    results = {}
    for c in args.checkpoints:
        if c in evaluate.STAND_INS:
            policy = evaluate.stand_in(c, 0)
        else:
            from policy import load_policy  # here: torch costs seconds, the checks above need none

            try:
                policy = load_policy(c, vision=True)
            except ValueError as err:  # policy.py says why in one line
                sys.exit(f"error: cannot load {c!r}: {err}")
        results[c] = style_gap(policy, args.episodes)
        print(f"{c}: " + ", ".join(f"{d} {results[c][d]['step_accuracy']:.1f}%" for d in DRAWINGS), flush=True)
    print(table(results))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
