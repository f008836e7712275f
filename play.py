"""Both tasks in the terminal: play against the verifier the model faces, or look at what it sees.

    python generalpoints.py --play [--rule id|ood] [--color black|red|mixed] [--seed N]
    python generalpoints.py --show hand.png [--rule ood] [--seed 3]      # a dealt hand's image
    python virl.py --play [--city train] [--actions relative] [--seed 3]   # navigate yourself
    python virl.py --show out/ [--city harbor] [--seed 3]   # route map + the views along the route

generalpoints.py and virl.py hand their command lines to gp_main and virl_main here, so that each
task module holds the task alone (rules, prompts, verifier, env) and this one the terminal.
"""
import json
import random
import sys
from pathlib import Path

import generalpoints as gp
import virl
from cards import render
from cli import ArgumentParser
from streetview import CITIES, render_grid, save_map, save_routes


def readable_stdin():
    """Answers typed in any encoding: bytes that do not decode (a strict UTF-8 locale, a pasted
    Latin-1 line) become U+FFFD and the verifier judges the answer as it reads, never a traceback."""
    if hasattr(sys.stdin, "reconfigure"):
        sys.stdin.reconfigure(errors="replace")


# ---------------------------------------------------------------------------------------------
# GeneralPoints: play hands, or save a hand's image
def gp_play(env, inp=sys.stdin, out=sys.stdout):
    """Deal hands until end of input; an answer is the model's JSON or just a formula."""
    score, hands = 0.0, 0
    while True:
        obs, info = env.reset()
        hands += 1
        print(f"\n=== hand {hands} ===\n{obs['messages'][0]['content'][-1]['text']}", file=out)
        done = False
        while not done:
            print(f"\nattempt {env.attempt + 1}/{env.max_attempts}, your answer (JSON or a formula; "
                  "Ctrl-D quits)> ", end="", file=out, flush=True)
            line = inp.readline()
            if not line:  # end of input
                print(f"\nbye: {hands - 1} hands finished, total reward {score:+g}", file=out)
                return score
            answer = line.strip()
            if gp.ANSWER_KEY not in answer.lower():
                answer = json.dumps({gp.ANSWER_KEY: answer})
            _, reward, terminated, truncated, info = env.step(answer)
            score += reward
            done = terminated or truncated
            v = info["verdict"]
            print(f"{v.outcome}: reward {reward:+g}" + ("" if done else f"\n{gp.FEEDBACK.format(v.message)}"),
                  file=out)
        if not info["solved"]:
            print(f"out of attempts; one answer was {info['solution']}", file=out)


def gp_main(argv=None):
    parser = ArgumentParser(
        description="GeneralPoints, the 24-points card game of SFT vs RL (the paper's Section 4.1).")
    parser.add_argument("--play", action="store_true", help="play in the terminal (reads answers from stdin)")
    parser.add_argument("--show", metavar="FILE.png", help="write the image of a dealt hand to this PNG file")
    parser.add_argument("--rule", choices=gp.RULES, default="id", help="id: J/Q/K = 10; ood: J/Q/K = 11/12/13")
    parser.add_argument("--color", choices=tuple(gp.COLORS), default="black", help="suit colours of the deck")
    parser.add_argument("--seed", type=int, default=None, help="seed of the deals (default: random)")
    parser.add_argument("--size", type=int, default=1200, help="image side in pixels for --show (the paper: 1200)")
    args = parser.parse_args(argv)
    if args.play == bool(args.show):
        parser.error("choose one of --play or --show FILE.png")
    if not 32 <= args.size <= 4096:
        parser.error("--size must be between 32 and 4096 pixels")
    env = gp.GeneralPointsEnv(args.rule, args.color, seed=args.seed)
    if args.play:
        readable_stdin()
        try:
            gp_play(env)
        except KeyboardInterrupt:
            print("\nbye")
        return
    if not args.show.lower().endswith(".png"):
        parser.error("--show needs a .png file name")
    _, info = env.reset()
    try:
        render(info["cards"], args.size).save(args.show)
    except OSError as e:
        sys.exit(f"error: cannot write {args.show}: {e.strerror or e}")
    print(f"wrote {args.show}: cards {info['cards']}, numbers {info['numbers']} (rule {args.rule}), "
          f"one answer {info['solution']}")


# ---------------------------------------------------------------------------------------------
# V-IRL: --show (route map and the views along it), --play (navigate in the terminal)
def virl_show(out, city="train", seed=0):
    """Write a route's map (streets, shops, the rail), its file, its first prompt with the oracle
    answers, and the street-view grid of every rail position to the folder out."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    route = virl.generate_routes(1, city, seed)[0]
    rail = virl.build_rail(route, rng=random.Random(seed))
    save_routes([route], out / "route_infos.json")
    save_map(out / "map.png", city, [p.geocode for p in rail],
             f"city {city!r}, route seed {seed}: start (green) -> {route.destination} (star)")
    for i, p in enumerate(rail):
        render_grid(p, city).save(out / f"step_{i:02d}.png")
    answers = "\n".join(virl.answer_text(p) for p in rail)
    (out / "prompt.txt").write_text(f"{virl.prompt_text(virl.instructions(route), rail, 0)}\n\n{answers}\n")
    print(f"wrote {out}/map.png, route_infos.json, prompt.txt and {len(rail)} street-view grids")
    print("\n".join(f"{i + 1}. {s}" for i, s in enumerate(virl.instructions(route))))


def virl_play(city="train", actions="absolute", seed=0):
    """Type an action (e.g. forward()) or a whole JSON answer; a bare action is sent with the
    true observation filled in. Ctrl-D quits."""
    env = virl.NavigationEnv(virl.generate_routes(1, city, seed), actions, seed=seed)
    obs, info = env.reset()
    print(obs["messages"][-1]["content"][-1]["text"])
    total = 0.0
    while True:
        try:
            line = input("> ").strip()
        except (EOFError, KeyboardInterrupt):
            print("\nbye")
            return
        if not line.startswith("{"):
            line = json.dumps({"current observation": info["observation"], "current instruction": "", "action": line})
        obs, reward, terminated, truncated, info = env.step(line)
        total += reward
        why = info["verdict"].message.split(". Please")[0]  # without the restated output format
        print(f"{info['verdict'].outcome}: {why} (reward {reward:+.1f}, total {total:+.1f})")
        if terminated or truncated:
            print("You reached the destination." if terminated else "The route failed.")
            return
        print(obs["messages"][-1]["content"][-1]["text"])


def virl_main(argv=None):
    p = ArgumentParser(description="V-IRL navigation in synthetic cities (see virl.py's docstring).")
    mode = p.add_mutually_exclusive_group(required=True)
    mode.add_argument("--show", metavar="DIR", help="write a route's map, its street-view grids and its prompt to DIR")
    mode.add_argument("--play", action="store_true", help="navigate a route yourself in the terminal")
    p.add_argument("--city", default="train", help=f"city style: {', '.join(CITIES)}")
    p.add_argument("--seed", type=int, default=0, help="route seed")
    p.add_argument("--actions", default="absolute", help="--play's action space: absolute (ID) or relative (rule-OOD)")
    args = p.parse_args(argv)
    if args.city not in CITIES:
        p.error(f"unknown city {args.city!r}; choose from {', '.join(CITIES)}")
    if args.actions not in virl.ACTIONS:
        p.error(f"unknown action space {args.actions!r}; choose from {', '.join(virl.ACTIONS)}")
    if args.show:
        try:
            virl_show(args.show, args.city, args.seed)
        except OSError as e:
            sys.exit(f"error: cannot write to {args.show}: {e.strerror or e}")
    else:
        readable_stdin()
        virl_play(args.city, args.actions, args.seed)
