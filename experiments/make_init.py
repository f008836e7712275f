"""Build a released initial checkpoint: inits/gp-l (or inits/virl-l), what ppo.py and sft.py start from,
or a Figure 1 init, inits/fig1-<setting>, what experiments/headline.py's arms start from.

The paper's RL runs start from SFT-initialised checkpoints that its authors release (public README:
"We instantiate RL experiments on top of SFT initialized checkpoints", GP-L-Init and three others,
400 SFT steps from Llama-3.2-11B-Vision-Instruct). This script makes the laptop's analogue with the
project's own code, once, and writes it into the repository:

  1. train    sft.py on the tiny model, from scratch, with the recipe below (RECIPES), into
              runs/make-init/<name> (resumed if killed, reused once finished).
  2. copy     the checkpoint's save_pretrained files, tokenizer and value head into inits/<name>
              (the value head in bf16: it is the fresh head SFT never trains, and the folder stays
              under 8 MB; fig1-gp-vl's weights too, loaded as float32); no optimizer, scheduler or
              RNG state.
  3. card     inits/<name>/card.json and README.md: how it was built (command, commit, steps,
              compute) and its success, greedy and sampled (3 passes at ppo.py's rollout T 0.7),
              on the full fixed evaluation sets (GP: 234 hands of id, ood-rule and val-rule, the
              held-out tuning rule; V-IRL: 48 routes of id and ood-rule); plus the greedy first
              answers of the first CHECK episodes of each split, which tests/test_inits.py replays.

Deterministic given --seed (one torch thread, data seeded): rebuilding with the same code gives the
same weights bit for bit, and the same card.

    python experiments/make_init.py gp-l        # about 8 min on 2 cores (900 SFT steps + the card)
    python experiments/make_init.py virl-l      # about 4 min
    python experiments/make_init.py fig1-gp-l   # about 25 min: the rule mixture, then half and 3/4 ID hands
    python experiments/make_init.py fig1-virl-l # about 12 min: five other action vocabularies, then ID
    python experiments/make_init.py fig1-gp-vl  # about 30 min: reading in four inks, the mixture, ID hands
    python experiments/make_init.py fig1-virl-vl  # about 16 min: routes in the training city's style, ID
    python experiments/make_init.py gp-l --card-only   # redo the card of the shipped folder
"""
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import cli  # noqa: E402
from cli import SEED, ArgumentParser, RunError, out_problem  # noqa: E402  (argparse checks, no torch)
from headline import say, stage  # noqa: E402  (the same resumable stage runner)

# The recipes: the stages that build each init, (script, flags), each stage starting from the one
# before (its --model; the first from --model tiny or tiny-vl, from scratch). The main job's two:
# GP-L: 900 steps, half of the conversations with 1-4 failed ID attempts and the verifier's feedback
# before the right answer (sft.py --revise): an instruct model can answer again after feedback, a
# tiny one trained on single-turn answers cannot (its revisions were 77-95% illegal fragments, so 70%
# of PPO's rollout attempts were wasted).
# The Figure 1 inits (fig1-*, experiments/headline.py): a pretraining stand-in that brings what a
# pretrained model has and the OOD split never shows (experiments/pretrain.py), then ID SFT, as the
# paper's inits had 400 ("SFT stabilizes the output format"); its compute starts the runs' axis.
PRE = ["--steps", "2000", "--lr", "1e-3", "--eval-every", "500", "--eval-episodes", "64",
       "--eval-splits", "id,val-rule", "--save-every", "500", "--threads", "2"]
ID_SFT = ["--steps", "400", "--lr", "1e-4", "--eval-every", "100", "--eval-episodes", "128", "--threads", "2",
          "--init-flops", "0"]


def virl_id(ood: str) -> tuple[str, list[str]]:
    """The V-IRL Figure 1 inits' last stage: 40 ID SFT steps, evaluated on ID and the setting's OOD split."""
    return ("sft.py", ["--steps", "40", "--lr", "1e-4", "--eval-every", "40", "--eval-episodes", "48",
                       "--eval-splits", f"id,{ood}", "--threads", "2", "--init-flops", "0"])


GP_VL_INKS = ["--inks", "black,navy,green,teal"]  # the GP-VL stand-in's cards: no ink with a red component
RECIPES = {
    "gp-l": dict(env="generalpoints", splits=("id", "ood-rule", "val-rule"),
                 stages=[("sft.py", ["--revise", "0.5", "--steps", "900", "--eval-every", "0"])],
                 note="The model learned the ID rule only (J, Q, K = 10), so it has no skill on the rule-OOD "
                      "split (J, Q, K = 11, 12, 13) nor on val-rule (3, 6, 9): PPO from it can show ID learning, "
                      "not OOD generalization. inits/fig1-gp-l, built on a rule-reading pretraining stand-in, "
                      "has some (experiments/headline.py).",
                 rebuilt=True),  # a rebuild gave the same weights bit for bit
    "virl-l": dict(env="virl", splits=("id", "ood-rule"), stages=[("sft.py", ["--eval-every", "0"])],
                   rebuilt=True),
    # GP-L: the rule mixture, then 400 steps of it with half the hands under the ID rule (pretrain.py
    # --id-share), then 400 with three quarters: pure ID SFT took rule-OOD from 4.7% to 1.6% in 200
    # steps (128 hands); the third stage raised ID 53.0 -> 61.5% and kept rule-OOD (9.0%, 234 hands).
    "fig1-gp-l": dict(env="generalpoints", splits=("id", "ood-rule", "val-rule"), stages=[
        ("experiments/pretrain.py", PRE),
        ("experiments/pretrain.py", ["--id-share", "0.5", *ID_SFT, "--eval-splits", "id,ood-rule,val-rule"]),
        ("experiments/pretrain.py", ["--id-share", "0.75", "--steps", "400", "--lr", "1e-4", "--eval-every", "200",
                                     "--eval-episodes", "0", "--eval-splits", "id,ood-rule", "--threads", "1",
                                     "--init-flops", "0"])],
        note="The stand-in read J/Q/K values from the prompt under 2,000 random rules, never 11/12/13 "
             "together, so it has some rule-OOD skill; experiments/headline.py runs both arms from it."),
    # V-IRL-L: five other action vocabularies and world knowledge about turns, then 40 ID steps
    "fig1-virl-l": dict(env="virl", splits=("id", "ood-rule"), stages=[  # PRE, evaluated on V-IRL's 48 routes
        ("experiments/pretrain.py", [*PRE[:6], "--eval-episodes", "48", "--eval-splits", "id,ood-rule", *PRE[10:]]),
        virl_id("ood-rule")],
        note="The stand-in followed routes in five other action vocabularies and learned what relative "
             "turns mean outside any route, never a route in the relative action space, so it has some "
             "rule-OOD skill; experiments/headline.py runs both arms from it."),
    # GP-VL: 3,000 steps of reading practice in four inks with no red component (with one, red is
    # read outright: experiments/LOG.md, 2026-12-03), GP-L's rule mixture with the table as the image,
    # then the mixture's hands all under the ID rule, still in the four inks and with a quarter
    # reading practice: the rule does not change in GP-VL, and at lr 3e-4 ID rose 10 -> 35% in 400
    # steps where GP-L's two ID stages at 1e-4 reached 30%. bf16_model: the 56-pixel patch embedding
    # makes the fp32 folder 9.5 MB, over the 8 MB limit.
    "fig1-gp-vl": dict(env="generalpoints", vision=True, model="tiny-vl", splits=("id", "ood-visual"), bf16_model=True,
                       stages=[
        ("experiments/pretrain.py", ["--read", "1", *GP_VL_INKS, "--steps", "3000", "--lr", "1e-3", "--eval-every",
                                     "0", "--save-every", "500", "--threads", "1"]),
        ("experiments/pretrain.py", [*GP_VL_INKS, *PRE[:8], "--eval-splits", "id,ood-visual", *PRE[10:]]),
        ("experiments/pretrain.py", [*GP_VL_INKS, "--id-share", "1", "--steps", "400", "--lr", "3e-4",
                                     "--eval-every", "100", "--eval-episodes", "128", "--eval-splits", "id,ood-visual",
                                     "--threads", "1", "--init-flops", "0"])],
        rebuilt=True,  # a rebuild at commit 293922c gave the same weights bit for bit
        note="The stand-in read cards in black, navy, green and teal, never red, and reads few red tables "
             "right, so its visual-OOD success is well below its ID success; experiments/headline.py runs "
             "both arms from it."),
    # V-IRL-VL: the mixture's routes in the training city's style only (pretrain.py --looks 0: with
    # 24 random looks as well, the nine cities' styles cost the stand-in nothing, a style gap of -1.5
    # points; with none, +7.8: experiments/LOG.md, 2026-12-03), then 40 ID steps as V-IRL-L's.
    # bf16_model: 1.94M parameters make the fp32 folder over 8 MB.
    "fig1-virl-vl": dict(env="virl", vision=True, model="tiny-vl", splits=("id", "ood-visual"), bf16_model=True,
                         stages=[
        ("experiments/pretrain.py", ["--looks", "0", *PRE[:4], "--eval-every", "1000", "--eval-episodes", "48",
                                     "--eval-splits", "id,ood-visual", *PRE[10:]]),
        virl_id("ood-visual")],
        rebuilt=True,  # a rebuild at commit 293922c gave the same weights bit for bit
        note="The stand-in saw street views in the training city's style only, so the nine other cities' "
             "styles cost it: its visual-OOD per-step accuracy is well below its ID one; "
             "experiments/headline.py runs both arms from it."),
}
FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
         "chat_template.jinja", "processor_config.json", "special_tokens_map.json", "trainer_state.json")
CHECK = 8          # greedy first answers recorded per split for tests/test_inits.py
TEMPERATURE = {"generalpoints": 0.5, "virl": 0.7}  # ppo.CPU_TEMPERATURE: the policy RL samples from
MAX_NEW_TOKENS = 96  # ppo.py's --max-new-tokens: the card's numbers are a run's first evaluation


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def copy_checkpoint(src: Path, dst: Path, bf16_model: bool = False) -> None:
    """The checkpoint's model files into dst (readable by all), the value head as bf16, and the
    model's weights too with bf16_model (loaded as float32 all the same: config.json says so)."""
    import torch
    from safetensors.torch import load_file, save_file
    dst.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        if (src / name).is_file():
            shutil.copyfile(src / name, dst / name)
            (dst / name).chmod(0o644)
    for name in ("value_head.safetensors",) + (("model.safetensors",) if bf16_model else ()):
        weights = load_file(str(src / name))
        save_file({k: v.to(torch.bfloat16).contiguous() for k, v in weights.items()}, str(dst / name),
                  metadata={"format": "pt"})
        (dst / name).chmod(0o644)


def first_answers(policy, env: str, split: str, n: int, vision: bool = False) -> list[dict]:
    """The greedy first answer to each of the first n fixed evaluation episodes of a split."""
    import evaluate
    envs = evaluate.ENVS[env].eval_envs(split, n=n, vision=vision)
    obs = [e.reset()[0] for e in envs]
    gens = policy.generate(obs, temperature=0.0, max_new_tokens=MAX_NEW_TOKENS)
    return [{"answer": g.text, "outcome": e.step(g.text)[4]["verdict"].outcome} for e, g in zip(envs, gens)]


def stage_commands(name: str, seed: int) -> list[list[str]]:
    """[script, flags...] of each stage of a recipe; a stage's --model is the stage before it."""
    recipe, out = RECIPES[name], []
    for i, (script, flags) in enumerate(recipe["stages"]):
        model = recipe.get("model", "tiny") if i == 0 else f"<stage {i}>/final"
        out.append([script, "--env", recipe["env"], *(["--vision"] if recipe.get("vision") else []),
                    "--model", model, "--seed", str(seed), *flags])
    return out


def card(folder: Path, name: str, seed: int) -> dict:
    """The init's numbers: success greedy and sampled on every split's full set, and the check answers."""
    import evaluate
    from policy import load_policy
    recipe = RECIPES[name]
    vision = recipe.get("vision", False)
    policy = load_policy(str(folder), seed=seed)
    greedy = evaluate.evaluate(policy, env=recipe["env"], splits=recipe["splits"], temperature=0.0,
                               max_new_tokens=MAX_NEW_TOKENS, vision=vision)
    sampled = evaluate.evaluate(policy, env=recipe["env"], splits=recipe["splits"],
                                temperature=TEMPERATURE[recipe["env"]], vision=vision,
                                samples=3, sample_seed=0, max_new_tokens=MAX_NEW_TOKENS)
    state = json.loads((folder / "trainer_state.json").read_text())
    return {"name": name, "env": recipe["env"], "vision": vision, "seed": seed, "commit": commit(),
            "command": f"python experiments/make_init.py {name}" + (f" --seed {seed}" if seed else ""),
            "stages": stage_commands(name, seed),
            "steps": state.get("step"), "flops": state.get("flops"), "num_params": policy.num_params,
            "greedy": {s: _short(m) for s, m in greedy.items()},
            "sampled": {s: _short(m) for s, m in sampled.items()},
            "check": {s: first_answers(policy, recipe["env"], s, CHECK, vision) for s in recipe["splits"]}}


def _short(m: dict) -> dict:
    keep = ("success", "stderr", "first_attempt", "numbers_right", "step_accuracy", "route_success", "n")
    return {k: m[k] for k in keep if k in m}


def write_readme(folder: Path, c: dict) -> None:
    metric = "per-step accuracy" if c["env"] == "virl" else "success within 5 attempts"
    key = "step_accuracy" if c["env"] == "virl" else "success"
    rows = [f"| {s} | {100 * c['greedy'][s][key]:.1f} ± {100 * c['greedy'][s]['stderr']:.1f} "
            f"| {100 * c['sampled'][s][key]:.1f} | {c['greedy'][s]['n']} |" for s in c["greedy"]]
    size = sum(f.stat().st_size for f in folder.iterdir() if f.is_file()) / 1e6
    stages = c["stages"]
    how = " then ".join(f"`{' '.join(cmd)}`" for cmd in stages)
    verified = "" if RECIPES[c["name"]].get("rebuilt") else " (not yet checked by a rebuild)"
    weights = " (weights stored in bf16, loaded as float32: under 8 MB)" if RECIPES[c["name"]].get("bf16_model") else ""
    paper_name = c["name"].removeprefix("fig1-").upper().replace("VIRL", "V-IRL")  # the paper's spelling
    if len(stages) > 1:
        how += " (the last stage's steps and FLOPs are the init's, as a pretrained model's are not counted)"
    who = (f"experiments/headline.py's {paper_name} arms start from" if c["name"].startswith("fig1-")
           else "ppo.py and sft.py start from")
    text = f"""# inits/{c['name']}: the initial checkpoint {who}

The laptop's analogue of the paper's released {paper_name}-Init: the tiny built-in model
({c['num_params'] / 1e6:.2f}M parameters), trained from scratch by {how}
({c['steps']} steps, {c['flops'] / 1e9:,.0f} GFLOPs, counted in the runs' compute axis).
Built at commit {c['commit']} with

    {c['command']}

which is deterministic given its seed{verified}. Files: the `save_pretrained` model{weights} and tokenizer, the value
head (`value_head.safetensors`, bf16: SFT does not train it), `trainer_state.json` (steps, FLOPs)
and `card.json` (these numbers, and the greedy first answers that `tests/test_inits.py` replays);
{size:.1f} MB in all.

{metric.capitalize()} on the full fixed evaluation sets, greedy and sampled (3 passes at T {TEMPERATURE[c['env']]}, the
rollout temperature of ppo.py), % ± standard error:

| split | greedy | sampled | episodes |
|---|---|---|---|
""" + "\n".join(rows) + "\n"
    if RECIPES[c["name"]].get("note"):
        text += "\n" + RECIPES[c["name"]]["note"] + "\n"
    (folder / "README.md").write_text(text)


def run(argv=None) -> None:
    p = ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("name", choices=sorted(RECIPES), help="which init to build")
    p.add_argument("--seed", type=SEED, default=0, help="seed of the model init, the data and the RNGs (default 0)")
    p.add_argument("--work", default="runs/make-init", help="folder of the SFT run (default runs/make-init)")
    p.add_argument("--out", default=None, help="the init's folder (default inits/NAME)")
    p.add_argument("--card-only", action="store_true", help="only redo the card of the existing folder")
    args = p.parse_args(argv)
    recipe = RECIPES[args.name]
    out = Path(args.out) if args.out else ROOT / "inits" / args.name
    for flag, why in (("--work", out_problem(args.work)), ("--out", out_problem(out))):
        if why:  # before the hour of training, not after it
            p.error(f"{flag} {why}")
    if out.is_dir() and any(out.iterdir()) and not (out / "card.json").is_file():  # it is replaced below
        p.error(f"--out {out} holds files but no card.json: not an init to replace")
    began = time.time()
    if not args.card_only:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
        base, run = args.name + (f"-seed{args.seed}" if args.seed else ""), None
        for i, cmd in enumerate(stage_commands(args.name, args.seed)):
            if run is not None:  # from the stage before
                cmd[cmd.index("--model") + 1] = str(run / "final")
            name = base if len(recipe["stages"]) == 1 else f"{base}.{i + 1}-{Path(cmd[0]).stem}"
            run = stage(work, name, cmd[0], cmd[1:])
        if out.exists():
            shutil.rmtree(out)
        copy_checkpoint((run / "final").resolve(), out, recipe.get("bf16_model", False))
    elif not (out / "model.safetensors").is_file():
        raise RunError(f"{out} holds no init to write a card for")
    say("evaluating the init on the full fixed sets (greedy, then 3 sampled passes)")
    c = card(out, args.name, args.seed)
    (out / "card.json").write_text(json.dumps(c, indent=1) + "\n")
    write_readme(out, c)
    say(f"wrote {out} in {(time.time() - began) / 60:.1f} min:\n{(out / 'README.md').read_text()}")


def main(argv=None) -> None:
    """run(argv); a RunError (a failed stage) is one line and exit status 1 (cli.main)."""
    cli.main(run, lambda argv: argv, argv)


if __name__ == "__main__":
    main()
