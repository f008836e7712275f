"""The laptop experiment's stand-in for pretraining: sft.py's loop on generated data that gives the
tiny model what the paper's pretrained 11B model brings to each task, never the test variant's form.

A tiny random model cannot read a rule it has never seen varied, revise an answer after feedback,
follow whatever action space a prompt lists, or read cards and street views in many styles. Per
task (--env, --vision), the data of each micro-batch is one of:

  GP-L     GeneralPoints hands, each under its own rule: J, Q, K each uniform in 1..13, never the
           test rule (11, 12, 13) nor the tuning rule (3, 6, 9); half of the conversations first
           hold 1-4 wrong answers, each with the verifier's feedback (gp_mixture).
  GP-VL    the same with the cards as an image, of all four suits, each card in a random ink of
           cards.INKS (or those --inks lists), never red; a share --read of the examples is reading
           practice only, "Read the ranks of the cards." -> '["K", "3", "Q", "10"]' (gp_mixture, inks=True).
  V-IRL-L  routes whose [Action space] lists one of five other vocabularies, world-knowledge pairs
           about turns, and a tokenizer fitted without the rule-OOD text (virl_mixture, virl_corpus).
  V-IRL-VL the ID routes with their street views in the training style or one of 24 random looks
           (streetview.LOOKS, or the first --looks of them), never a visual-OOD city's (virl_looks).

Every other flag is sft.py's, but --data and --revise (the stand-in makes its own data); the model
defaults to 'tiny', from scratch. Micro-batch m of step s is generated from sft.micro_batch_seed,
as sft.py's own data, so 1 and N ranks, and a resumed run, see the same stream.
experiments/headline.py runs this as its "pretrain" stage (and GP-VL's "read", with --read 1).

    python experiments/pretrain.py --env generalpoints --steps 2000 --lr 1e-3     # GP-L's stand-in
    python experiments/pretrain.py --env generalpoints --vision --model tiny-vl --read 1   # reading
    python experiments/pretrain.py --env virl --steps 2000 --lr 1e-3              # V-IRL-L's
"""
import argparse
import functools
import json
import random
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import generalpoints as gp  # noqa: E402  (after the path is set)
import sft  # noqa: E402
import virl  # noqa: E402
from cards import INKS, render  # noqa: E402
import cli  # noqa: E402
from cli import ArgumentParser, number, out_problem  # noqa: E402
from evaluate import paper_image_size  # noqa: E402
from streetview import COMPASS, GRID_SIZE, LOOKS, render_grid  # noqa: E402

# ---------------------------------------------------------------------------------------------
# GeneralPoints (GP-L, GP-VL): every hand under its own rule, half of them revised after feedback
HELD_OUT_RULES = (gp.FACE_VALUES["ood"], gp.FACE_VALUES["val"])  # the test rule and the tuning rule
READ_PROMPT = "Read the ranks of the cards."  # GP-VL's reading practice, answered ["K", "3", ...]
READ_SHARE = 0.25  # the share of reading practice in GP-VL's mixture (--read)


def mixture_rule(rng, held_out=HELD_OUT_RULES):
    """A random rule (J, Q, K) of the mixture: each value uniform in 1..13, never a held-out one.
    So 11, 12 and 13 each occur, one face at a time, but never the test rule's three together."""
    while True:
        faces = tuple(rng.randint(1, 13) for _ in range(3))
        if faces not in held_out:
            return faces


def gp_mixture(n, vision=False, seed=0, revise=0.5, held_out=HELD_OUT_RULES, inks=False, read=READ_SHARE,
               id_share=0.0):
    """n SFT conversations of the GeneralPoints stand-in, black suits: {"messages": [user prompt,
    (wrong answer, feedback) x 0-4, correct answer], "image": PIL or None}. A wrong answer is a near
    miss of the right one (gp.answer_variants) or the right answer read under another rule.
    inks=True (GP-VL's stand-in): cards of all four suits, each drawn in a random ink of
    cards.INKS (or of the inks named, e.g. ("black", "#464646")), never red, so the model learns to
    read ranks in many colours (the fewer, the less it reads red: --inks); a share `read` of
    the examples only asks for the ranks (READ_PROMPT -> '["K", "3", "Q", "10"]'), the reading
    practice a pretrained VLM brings, which the tiny model learns much sooner alone than inside
    a whole GeneralPoints answer. id_share: the share of hands under the ID rule (J, Q, K = 10)
    instead (the Figure 1 inits' ID SFT stage, which keeps practising the mixture)."""
    rng = random.Random(f"generalpoints-mixture/{seed}")
    out = []
    for _ in range(n):
        rule = "id" if id_share and rng.random() < id_share else mixture_rule(rng, held_out)
        env = gp.GeneralPointsEnv(rule, "mixed" if inks else "black", vision,
                                  seed=rng.random())
        env.reset()
        if vision and inks:
            palette = list(INKS.values()) if inks is True else [ink_rgb(name) for name in inks]
            env.image = render(env.cards, env.image_size, [rng.choice(palette) for _ in env.cards])
            if rng.random() < read:
                ranks = json.dumps(gp.plain_ranks(env.cards))
                out.append({"messages": [gp.user_turn(READ_PROMPT, True), gp.assistant_turn(ranks)],
                            "image": env.image})
                continue
        wrong = rng.randint(1, gp.MAX_ATTEMPTS - 1) if rng.random() < revise else 0
        out.append(gp.with_revisions(env, wrong, rng, other_rule=lambda r: mixture_rule(r, ())))
    return out


# ---------------------------------------------------------------------------------------------
# V-IRL-L. A pretrained LLM knows what "turn left" means and follows whatever action space a prompt
# lists; a tiny random model knows neither. The mixture teaches both without the rule-OOD split's
# form (the relative action space, left / right / slightly left / slightly right, in a route):
#   * routes whose [Action space] lists one of five other vocabularies: the ID compass words, their
#     abbreviations (N, NE, ...), and three relative ones in other words (port / starboard,
#     counterclockwise / clockwise, hard left / bear left), each with the public text of its frame;
#   * "world knowledge" outside any route (a share KNOWLEDGE of the pairs): "Facing north, you
#     turn to face west. How did you turn?" -> {"action": "turn_direction(left)"}; "Facing north,
#     you turn left. Which way do you face now?" -> "You now face west."; a route's sentence with
#     words to choose from: "Turn left to face west. How do you turn? Choose from ['left', 'right',
#     'slightly left', 'slightly right']." -> {"action": "turn_direction(left)"} (or the port /
#     starboard or counterclockwise words, or "Which way do you face?" with compass words);
#   * a tokenizer fitted without the rule-OOD text (virl_corpus), as a pretrained model's is
#     fitted on its own corpus.
# What was measured while designing it is in experiments/LOG.md (2026-12-02).
VOCABULARIES = {
    "compass": dict(zip(COMPASS, COMPASS)),  # the ID form
    "abbreviated": dict(zip(COMPASS, ("N", "NE", "E", "SE", "S", "SW", "W", "NW"))),
    "nautical": dict(zip(virl.TURNS, ("port", "starboard", "slightly port", "slightly starboard"))),
    "clock": dict(zip(virl.TURNS, ("counterclockwise", "clockwise", "slightly counterclockwise",
                                   "slightly clockwise"))),
    "driving": dict(zip(virl.TURNS, ("hard left", "hard right", "bear left", "bear right"))),
}
TURN_DEGREES = {"left": -90, "right": 90, "slightly left": -45, "slightly right": 45}
KNOWLEDGE_LISTS = {"turn": [dict(zip(virl.TURNS, virl.TURNS)), VOCABULARIES["nautical"], VOCABULARIES["clock"]],
                   "face": [VOCABULARIES["compass"], VOCABULARIES["abbreviated"]]}
KNOWLEDGE = 0.2  # share of world-knowledge pairs in the mixture
_TURN_RE = re.compile(r"turn_direction\(([^()]*)\)")


def frame(vocabulary):
    """The action space whose turns a vocabulary renames: 'absolute' (compass words) or 'relative'."""
    return "absolute" if next(iter(VOCABULARIES[vocabulary])) in COMPASS else "relative"


def in_vocabulary(text, vocabulary):
    """A prompt or answer of the vocabulary's frame with its turns in the vocabulary's words: the
    [Action space] list, and every turn_direction(x) of the history and the answer.
        'turn_direction(slightly left)' -> 'turn_direction(slightly port)'      (nautical)"""
    words = VOCABULARIES[vocabulary]
    keys = COMPASS if frame(vocabulary) == "absolute" else virl.TURNS
    text = text.replace(str(list(keys)), str([words[k] for k in keys]))
    return _TURN_RE.sub(lambda m: f"turn_direction({words.get(m[1], m[1])})", text)


def virl_corpus():
    """The tokenizer text of the V-IRL-L stand-in's tiny model: GeneralPoints' corpus and V-IRL's
    without the relative action space. The default tokenizer is fitted on every variant, and it
    fuses the relative list and each relative answer into tokens ("['left', 'right', 'slightly
    left', 'slightly ", 'left)"}') that only the rule-OOD split holds: their embeddings would
    stay untrained, and the OOD answer unreachable, whatever the model learnt."""
    return gp.tokenizer_corpus() + virl.tokenizer_corpus(actions=("absolute",))


def knowledge_example(rng):
    """One world-knowledge pair: a turn between two compass headings, asked one of four ways; a
    route's sentence is asked about with a list of words to choose from (KNOWLEDGE_LISTS)."""
    turn, start = rng.choice(virl.TURNS), rng.randrange(8)
    before, after = COMPASS[start], COMPASS[(start + TURN_DEGREES[turn] // 45) % 8]
    told = f"{rng.choice(('First, turn', 'Turn'))} {turn} to face {after}."  # a sentence as routes word it
    turns, faces = rng.choice(KNOWLEDGE_LISTS["turn"]), rng.choice(KNOWLEDGE_LISTS["face"])
    question, answer = rng.choice([
        (f"Facing {before}, you turn to face {after}. How did you turn?", f"turn_direction({turn})"),
        (f"Facing {before}, you turn {turn}. Which way do you face now?", f"You now face {after}."),
        (f"{told} How do you turn? Choose from {list(turns.values())}.", f"turn_direction({turns[turn]})"),
        (f"{told} Which way do you face? Choose from 8 directions {list(faces.values())}.",
         f"turn_direction({faces[after]})")])
    if answer.startswith("turn_direction("):
        answer = json.dumps({"action": answer})
    return {"messages": [gp.user_turn(question), gp.assistant_turn(answer)], "image": None}


def virl_mixture(n, seed=0, knowledge=KNOWLEDGE):
    """n SFT pairs of the V-IRL-L stand-in (see above): a random position of a random training
    route with its action space in a random vocabulary of VOCABULARIES, or (a share `knowledge`)
    a world-knowledge pair. {"messages": [user, assistant], "image": None}."""
    rng, pool, out = random.Random(f"virl-mixture/{seed}"), virl.route_pool("train"), []
    for _ in range(n):
        if rng.random() < knowledge:
            out.append(knowledge_example(rng))
            continue
        vocabulary, route = rng.choice(list(VOCABULARIES)), pool[rng.randrange(len(pool))]
        rail = virl.build_rail(route, rng=rng)
        pos = rng.randrange(len(rail))
        prompt = virl.prompt_text(virl.instructions(route), rail, pos, frame(vocabulary))
        answer = virl.answer_text(rail[pos], frame(vocabulary))
        out.append({"messages": [gp.user_turn(in_vocabulary(prompt, vocabulary)),
                                 gp.assistant_turn(in_vocabulary(answer, vocabulary))], "image": None})
    return out


# ---------------------------------------------------------------------------------------------
# V-IRL-VL: a pretrained VLM has seen streets in many styles
def virl_looks(n, seed=0, image_size=None, looks=len(LOOKS)):
    """n SFT pairs of the V-IRL-VL stand-in: the ID task (absolute actions) at a random position of
    a random training route, its street views drawn in the training city's style or in one of the
    first `looks` of streetview.LOOKS (random looks, never a visual-OOD city's), all equally likely
    (--looks: a stand-in that has seen fewer styles).
    {"messages": [user, assistant], "image": PIL}."""
    rng, pool, out = random.Random(f"virl-looks/{seed}"), virl.route_pool("train"), []
    looks = ("train",) + tuple(LOOKS)[:looks]
    for _ in range(n):
        route = pool[rng.randrange(len(pool))]
        rail = virl.build_rail(route, rng=rng)
        pos = rng.randrange(len(rail))
        prompt = gp.user_turn(virl.prompt_text(virl.instructions(route), rail, pos, vision=True), True)
        out.append({"messages": [prompt, gp.assistant_turn(virl.answer_text(rail[pos]))],
                    "image": render_grid(rail[pos], rng.choice(looks), image_size or GRID_SIZE)})
    return out


# ---------------------------------------------------------------------------------------------
# ---- plumbing: the command line ----
def ink_rgb(name):
    """A name of cards.INKS or a '#rrggbb' colour -> (r, g, b)."""
    return INKS[name] if name in INKS else tuple(int(name[i:i + 2], 16) for i in (1, 3, 5))


def reddish(rgb):
    """True for an ink that would pass as the red suits' (cards.RED): the look the stand-in never shows."""
    r, g, b = rgb
    return r > 150 and g < 80 and b < 80


def ink_names(text):
    """'black,navy,#464646' -> ("black", "navy", "#464646"): names of cards.INKS or #rrggbb
    colours, none of them red, the visual-OOD look (argparse type)."""
    names = tuple(dict.fromkeys(n.strip().lower() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in INKS and not re.fullmatch(r"#[0-9a-f]{6}", n)]
    bad += [n for n in names if n not in bad and reddish(ink_rgb(n))]
    if not names or bad:
        raise argparse.ArgumentTypeError(f"inks are names of {', '.join(INKS)} or #rrggbb colours, not red, "
                                         "comma-separated" + (f" (not {', '.join(bad)})" if names else ""))
    return names


def stand_in(args):
    """(examples(n, seed=...), tokenizer corpus or None) of the task args name, for sft.run."""
    if args.env == "generalpoints":
        inks = args.vision and getattr(args, "inks", tuple(INKS))  # all of cards.INKS unless --inks
        return functools.partial(gp_mixture, vision=args.vision, inks=inks, read=args.read,
                                 id_share=args.id_share), None
    if args.vision:  # the public image size under --preset paper, as sft.py's own data
        image_size = paper_image_size(args.env) if args.preset == "paper" else None
        return functools.partial(virl_looks, image_size=image_size, looks=getattr(args, "looks", len(LOOKS))), None
    return virl_mixture, virl_corpus()  # V-IRL-L's tiny model fits its tokenizer without the rule-OOD text


def parse_args(argv=None):
    """This script's flags, then sft.py's parse_args on the rest (argv=None reads sys.argv)."""
    p = ArgumentParser(description="The laptop experiment's stand-in for pretraining, in sft.py's loop.",
                       add_help=False, epilog="Every other flag is sft.py's (below), but --data and --revise.")
    p.add_argument("--model", default="tiny", help="as sft.py's --model (default tiny: from scratch)")
    p.add_argument("--read", type=number(at_least=0, at_most=1), default=READ_SHARE,
                   help=f"GP-VL only: share of reading practice (1: only reading; default {READ_SHARE})")
    p.add_argument("--inks", type=ink_names, default=tuple(INKS),
                   help=f"GP-VL only: the inks of the cards, names or '#rrggbb', comma-separated (default "
                        f"all: {','.join(INKS)}); the fewer, the less the model reads the red cards it never saw")
    p.add_argument("--looks", type=number(int, at_least=0, at_most=len(LOOKS)), default=len(LOOKS),
                   help=f"V-IRL-VL only: how many random street-view looks beside the training city's, 0-{len(LOOKS)} "
                        f"(default all {len(LOOKS)}): a stand-in that has seen fewer styles")
    p.add_argument("--id-share", type=number(at_least=0, at_most=1), default=0.0,
                   help="GeneralPoints only: share of hands under the ID rule (default 0: the mixture alone)")
    p.add_argument("--out", help="run folder (default: runs/pretrain-<gp|virl>-<l|vl>, -seedN for --seed N > 0)")
    own, rest = p.parse_known_args(argv)
    if {"-h", "--help"} & set(rest):
        p.print_help()
        print()
    args = sft.parse_args([*rest, "--model", own.model] + (["--out", own.out] if own.out else []))
    if args.data or args.revise:
        p.error("--data and --revise are sft.py's ID data: the stand-in generates its own")
    if own.read != READ_SHARE and not (args.env == "generalpoints" and args.vision):
        p.error("--read is the share of reading practice in GP-VL's mixture: only with --env generalpoints --vision")
    if own.out is None:
        args.out = f"runs/pretrain-{sft.run_name(args.env, args.vision, args.seed)}"
        if why := out_problem(args.out):
            p.error(f"--out {why}")
    custom_inks = own.inks != tuple(INKS)
    if custom_inks and not (args.env == "generalpoints" and args.vision):
        p.error("--inks are the colours of GP-VL's cards: only with --env generalpoints --vision")
    if own.looks != len(LOOKS) and not (args.env == "virl" and args.vision):
        p.error("--looks are the street-view styles of V-IRL-VL's stand-in: only with --env virl --vision")
    if own.id_share and args.env != "generalpoints":
        p.error("--id-share is the share of ID-rule hands in GeneralPoints' mixture: only with --env generalpoints")
    args.mixture, args.read, args.id_share = True, own.read, own.id_share  # in config.json, checked on --resume
    if custom_inks:  # recorded only when set: the runs before the flag resume as they were
        args.inks = own.inks
    if own.looks != len(LOOKS):
        args.looks = own.looks
    return args


def run(args):  # on --resume, sft.run checks --read and the mixture against config.json too
    examples, corpus = stand_in(args)
    sft.run(args, examples=examples, corpus=corpus)


def main(argv=None):
    """A RunError is one line and exit status 1, as in sft.py (cli.main)."""
    cli.main(run, parse_args, argv)


if __name__ == "__main__":
    main()
