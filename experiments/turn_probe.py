"""Which V-IRL decisions does a checkpoint get wrong, and could PPO's sampling find the right one? (ours)

A V-IRL route ends at its first failed position, so per-step accuracy mixes how good each decision
is with where on the route the first bad one falls. This script takes every position of the fixed
evaluation routes of a split and asks the checkpoint there with the right history (as if it had
answered every earlier position right), once greedily and --samples times at ppo.py's rollout
temperature (V-IRL 0.7, seeded). Per kind of position (a turn at an intersection, the first turn,
forward, stop): positions, greedy answers wrong, and, where greedy is wrong, the mean share of
samples that are right and the share of positions where none is: what PPO's rollouts can find.

    python experiments/turn_probe.py --vision inits/fig1-virl-vl runs/fig1/virl-vl/rl-0/final --out probe.json
"""
import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import cli  # noqa: E402  (after the path is set)
import evaluate  # noqa: E402
import virl  # noqa: E402

TEMPERATURE = 0.7  # ppo.CPU_TEMPERATURE["virl"], the main job's rollout temperature (not imported: no torch here)


def kind(position) -> str:
    if position.action == "stop()":
        return "stop"
    if position.action.startswith("turn_direction("):
        return "turn at an intersection" if position.intersection else "first turn"
    return "forward"


def positions(split: str, vision: bool, n=None) -> list:
    """(kind, observation with the right history, position, env) for every position of the routes."""
    out = []
    for env in virl.eval_envs(split, n=n, vision=vision):
        env.reset()
        for pos, here in enumerate(env.rail):
            prompt = virl.prompt_text(env.sentences, env.rail, pos, env.actions, vision)
            obs = {"messages": [virl.user_turn(prompt, vision)], "image": env.draw(here) if vision else None}
            out.append((kind(here), obs, here, env))
    return out


def right(policy, items, temperature) -> list[bool]:
    """Whether each answer, one per item, is correct (batched as evaluate.py batches)."""
    verdicts = []
    for start in range(0, len(items), evaluate.BATCH_SIZE):
        chunk = items[start:start + evaluate.BATCH_SIZE]
        gens = policy.generate([obs for _, obs, _, _ in chunk], temperature=temperature,
                               max_new_tokens=evaluate.MAX_NEW_TOKENS)
        verdicts += [virl.verify_answer(virl.parse_answer(g.text), here, env.actions, env.names).outcome == "correct"
                     for g, (_, _, here, env) in zip(gens, chunk)]
    return verdicts


def probe(policy, split="id", vision=False, samples=8, seed=0, n=None) -> dict:
    """{kind: positions, greedy_wrong, sampled_right_where_wrong (%), none_right_where_wrong (%)}."""
    items = positions(split, vision, n)
    greedy = right(policy, items, 0.0)
    with evaluate._seeded(seed):
        sampled = [right(policy, items, TEMPERATURE) for _ in range(samples)]
    per = defaultdict(lambda: {"positions": 0, "greedy_wrong": 0, "shares": []})
    for i, (k, _, _, _) in enumerate(items):
        row = per[k]
        row["positions"] += 1
        if not greedy[i]:
            row["greedy_wrong"] += 1
            row["shares"].append(sum(s[i] for s in sampled) / samples)
    out = {}
    for k, row in sorted(per.items()):
        shares = row.pop("shares")
        row["sampled_right_where_wrong"] = 100 * sum(shares) / len(shares) if shares else None
        row["none_right_where_wrong"] = 100 * sum(x == 0 for x in shares) / len(shares) if shares else None
        out[k] = row
    return out


def table(results: dict) -> str:
    lines = ["| checkpoint | kind | positions | greedy wrong | sampled right where wrong (%) | none right (%) |",
             "|---|---|---|---|---|---|"]
    for name, kinds in results.items():
        for k, r in kinds.items():
            fmt = [f"{r[x]:.1f}" if r[x] is not None else "-"
                   for x in ("sampled_right_where_wrong", "none_right_where_wrong")]
            lines.append(f"| {name} | {k} | {r['positions']} | {r['greedy_wrong']} | {fmt[0]} | {fmt[1]} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    p = cli.ArgumentParser(description=__doc__.split("\n\n")[0],
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("checkpoints", nargs="+", help="V-IRL policy folders (or 'tiny' / 'tiny-vl')")
    p.add_argument("--vision", action="store_true", help="V-IRL-VL: the street views as an image")
    p.add_argument("--split", default="id", choices=("id", "ood-rule", "ood-visual"), help="routes (default id)")
    p.add_argument("--routes", type=cli.COUNT, default=None, help="the split's first N routes (default all)")
    p.add_argument("--samples", type=cli.COUNT, default=8,
                   help=f"answers sampled at T {TEMPERATURE} per position (default 8)")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampling (default 0)")
    p.add_argument("--out", help="write {checkpoint: results} as JSON to this file")
    args = p.parse_args(argv)
    if args.split == "ood-visual" and not args.vision:
        p.error("--split ood-visual needs --vision")
    if args.out and (why := cli.out_problem(args.out, folder=False)):
        p.error(f"--out {why}")
    for c in args.checkpoints:
        if not c.startswith("tiny") and not Path(c).is_dir():
            p.error(f"checkpoint folder {c!r} not found")

    from policy import load_policy  # here: torch costs seconds, the checks above need none

    results = {}
    for c in args.checkpoints:
        try:
            policy = load_policy(c, vision=args.vision)
        except ValueError as err:  # policy.py says why in one line
            sys.exit(f"error: cannot load {c!r}: {err}")
        results[c] = probe(policy, args.split, args.vision, args.samples, args.seed, args.routes)
        turns = results[c].get("turn at an intersection", {})
        print(f"{c}: {turns.get('greedy_wrong')} of {turns.get('positions')} intersection turns wrong", flush=True)
    print(table(results))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
