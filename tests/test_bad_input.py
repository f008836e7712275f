"""Bad input gets one clear line, never a traceback or a silent wrong run (issue 17).

Every refusal is checked the same way: a non-zero exit, exactly one line on stderr that names the
problem, no "Traceback", and, where a run folder is involved, every file in it as it was before.
The real command lines (`python sft.py ...`) run as subprocesses, side by side, for a case of each
path (a flag, a run folder, a model folder; evaluate.py, plots.py, headline.py); the many flag
values and damaged files go through the same entry points in-process (main / parse_args / run),
because each torch-importing subprocess pays ~7 s of imports and a second one would measure only
that. Everything runs on a tiny model whose tokenizer is trained on 16 prompts: built in a second.
"""
import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import checkpoints  # noqa: E402
import evaluate  # noqa: E402
import generalpoints  # noqa: E402
import plots  # noqa: E402
import ppo  # noqa: E402
import sft  # noqa: E402
from policy import load_policy  # noqa: E402

SFT_FAST = ["--batch-size", "1", "--eval-every", "0", "--log-every", "1"]
PPO_FAST = ["--num-envs", "2", "--rollout-steps", "2", "--minibatch-size", "2", "--grad-accum", "1",
            "--ppo-epochs", "1", "--eval-episodes", "1", "--eval-splits", "id", "--max-attempts", "1",
            "--max-new-tokens", "4", "--save-every", "1"]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def snapshot(folder):
    """{relative path: content hash, or the target of a link}: to check nothing was changed."""
    out = {}
    for p in sorted(Path(folder).rglob("*")):
        if p.is_symlink():
            out[str(p.relative_to(folder))] = "-> " + str(p.readlink())
        elif p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def one_line(stderr, *fragments):
    """Assert stderr is exactly one line holding every fragment and no traceback; return it."""
    assert "Traceback" not in stderr, stderr
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def refused(call, capsys, *fragments):
    """Run an entry point in-process (main or parse_args) and check it refuses in one line: a
    SystemExit with a non-zero code and, on stderr or as the exit message, one line."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        call()
    code = stop.value.code
    assert code not in (0, None)
    err = capsys.readouterr().err + (f"{code}\n" if isinstance(code, str) else "")
    return one_line(err, *fragments)


def cli(*argv):
    """One command line as a user types it, from the repository root."""
    return subprocess.run([sys.executable, *map(str, argv)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def truncate(file, keep=1000):
    Path(file).write_bytes(Path(file).read_bytes()[:keep])


class Payload:
    """A pickle that would run code when loaded: torch.load(weights_only=True) must refuse it."""

    def __reduce__(self):
        return (print, ("PICKLED CODE RAN",))


# ---------------------------------------------------------------------------------------------
# fixtures: a tiny model folder, a finished SFT run (2 checkpoints), a PPO run, damaged copies
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """Everything the cases read, built once: ~5 s."""
    root = tmp_path_factory.mktemp("bad")
    examples = generalpoints.sft_examples(16, seed=0)
    corpus = [" ".join(part.get("text", "") for m in ex["messages"] for part in m["content"]) for ex in examples]
    model = root / "model"
    load_policy("tiny", corpus=corpus).save(str(model))

    def damaged(name, damage):
        path = root / name
        shutil.copytree(model, path)
        damage(path)
        return path

    def nan_weights(path):
        weights = load_file(path / "model.safetensors")
        first = next(iter(weights))
        weights[first] = weights[first].clone().fill_(float("nan"))
        save_file(weights, path / "model.safetensors", metadata={"format": "pt"})

    def pickled_code(path):
        (path / "model.safetensors").unlink()
        torch.save({"weight": Payload()}, path / "pytorch_model.bin")

    models = {
        "truncated weights": damaged("truncated", lambda p: truncate(p / "model.safetensors", 100_000)),
        "garbage weights": damaged("garbage", lambda p: (p / "model.safetensors").write_bytes(b"\xff" * 5000)),
        "truncated value head": damaged("head", lambda p: truncate(p / "value_head.safetensors")),
        "NaN weights": damaged("nan", nan_weights),
        "pickled code": damaged("pickle", pickled_code),
    }
    corrupt_state = damaged("corrupt-state", lambda p: (p / "trainer_state.json").write_text('{"flops": 1e'))

    sft_run = root / "sft-run"  # checkpoint-1, checkpoint-2 and final
    sft.run(sft.parse_args(["--model", str(model), "--steps", "2", "--save-every", "1", *SFT_FAST,
                            "--out", str(sft_run)]))
    ppo_run = root / "ppo-run"  # one update, checkpoint-1
    ppo.main(["--init", str(model), "--out", str(ppo_run), "--updates", "1", *PPO_FAST])
    return dict(root=root, model=model, models=models, corrupt_state=corrupt_state, sft_run=sft_run,
                ppo_run=ppo_run)


# ---------------------------------------------------------------------------------------------
# the real command lines, side by side
# ---------------------------------------------------------------------------------------------
def test_command_lines_refuse_in_one_line(work, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    no_evals = tmp_path / "no-evals"
    no_evals.mkdir()
    (no_evals / "config.json").write_text('{"method": "sft", "env": "generalpoints"}')
    (no_evals / "metrics.jsonl").write_text('{"step": 0, "flops": 0, "eval": {"id": {"success": null}}}\n'
                                            '{"step": 1, "flops": 1, "loss": 2.0}\n')
    ppo_run = work["ppo_run"]
    before = snapshot(ppo_run)
    cases = [  # (command line, what the one line must name); the first three import torch (~7 s each)
        (["sft.py", "--lr", "nan"], ["--lr", "finite"]),
        (["ppo.py", "--resume", "--env", "virl", "--out", ppo_run], ["different env", "config.json"]),
        (["evaluate.py", "--env", "generalpoints", "--model", work["models"]["truncated weights"]], ["cannot load"]),
        (["evaluate.py", "--env", "virl", "--model", "oracle", "--out", a_file / "eval.json"], ["--out", "a file"]),
        (["plots.py", no_evals, "--out", tmp_path / "figures"], ["no evaluation lines"]),
        (["experiments/headline.py", "--sft-lr", "-0.0001"], ["--sft-lr", "> 0"]),
    ]
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:  # all at once: mostly imports
        results = list(pool.map(lambda case: cli(*case[0]), cases))
    for (argv, fragments), done in zip(cases, results):
        assert done.returncode != 0, (argv, done.stdout[-500:])
        one_line(done.stderr, *fragments)
    assert not (tmp_path / "figures").exists() and snapshot(ppo_run) == before


# ---------------------------------------------------------------------------------------------
# every float and int flag: finite and in range, before anything is loaded
# ---------------------------------------------------------------------------------------------
def _experiment(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SFT_FLAGS = [("--lr", "nan"), ("--lr", "-1"), ("--lr", "0"), ("--lr", "inf"), ("--lr", "abc"),
             ("--warmup-frac", "nan"), ("--warmup-frac", "inf"), ("--warmup-frac", "1.5"),
             ("--weight-decay", "-1"), ("--max-grad-norm", "-1"), ("--max-grad-norm", "0"),
             ("--init-flops", "nan"), ("--init-flops", "-1"), ("--seed", "-1"), ("--seed", "1.5"),
             ("--steps", "0"), ("--batch-size", "0"), ("--micro-batch-size", "-2"), ("--eval-every", "-1"),
             ("--eval-episodes", "-1"), ("--eval-max-new-tokens", "0"), ("--log-every", "0"),
             ("--save-every", "-1"), ("--threads", "0")]
PPO_FLAGS = [("--lr", "nan"), ("--lr", "-1"), ("--vf-lr", "-1"), ("--vf-lr", "nan"), ("--adam-eps", "-1"),
             ("--adam-eps", "0"), ("--temperature", "inf"), ("--temperature", "nan"), ("--temperature", "-0.5"),
             ("--temperature", "0"), ("--clip-coef", "-1"), ("--vf-clip", "-1"), ("--vf-coef", "nan"),
             ("--max-grad-norm", "-1"), ("--gamma", "1.5"), ("--gae-lambda", "nan"),
             ("--thought-prob-coef", "-1"), ("--eval-temperature", "-1"), ("--eval-temperature", "inf"),
             ("--seed", "-1"), ("--seed", str(2**32)), ("--updates", "0"), ("--num-envs", "0"),
             ("--rollout-steps", "-8"), ("--max-attempts", "0"), ("--max-new-tokens", "0"),
             ("--ppo-epochs", "0"), ("--minibatch-size", "0"), ("--grad-accum", "0"), ("--lr-horizon", "0"),
             ("--eval-every", "-1"), ("--eval-episodes", "-1"), ("--save-every", "-1")]
EVAL_FLAGS = [("--temperature", "nan"), ("--temperature", "inf"), ("--temperature", "-1"), ("--seed", "-1"),
              ("--episodes", "0"), ("--attempts", "0"), ("--max-new-tokens", "0"), ("--batch-size", "0")]
HEADLINE_FLAGS = [("--seeds", "0"), ("--jobs", "0"), ("--sft-lr", "nan"), ("--rl-lr", "-1"),
                  ("--task", "v-irl")]
PRETRAIN_FLAGS = [("--read", "1.5"), ("--read", "nan"), ("--lr", "nan"), ("--steps", "0"),
                  ("--id-share", "2")]  # its own, sft.py's


@pytest.mark.parametrize("script,flag,value", [("sft", *f) for f in SFT_FLAGS] + [("ppo", *f) for f in PPO_FLAGS]
                         + [("evaluate", *f) for f in EVAL_FLAGS] + [("headline", *f) for f in HEADLINE_FLAGS]
                         + [("pretrain", *f) for f in PRETRAIN_FLAGS])
def test_flag_values_are_refused(script, flag, value, capsys):
    entry = {"sft": sft.parse_args, "ppo": ppo.parse_args, "headline": lambda argv: _experiment("headline").main(argv),
             "pretrain": lambda argv: _experiment("pretrain").parse_args(argv),
             "evaluate": lambda argv: evaluate.main(["--env", "virl", "--model", "oracle", *argv])}[script]
    refused(lambda: entry([flag, value]), capsys, flag)


def test_reading_practice_only_in_the_gp_vl_stand_in(capsys):
    pretrain = _experiment("pretrain")
    for argv in (["--read", "1"], ["--read", "0.5", "--env", "virl", "--vision"]):
        refused(lambda: pretrain.parse_args(argv), capsys, "--read", "--vision")
    assert pretrain.parse_args(["--vision", "--read", "1"]).read == 1.0


def test_every_stand_in_but_not_with_a_data_file_or_revisions(capsys, tmp_path):
    pretrain = _experiment("pretrain")
    for env in ("generalpoints", "virl"):  # GP-L, GP-VL, V-IRL-L and V-IRL-VL each have a stand-in
        for vision in ([], ["--vision"]):
            args = pretrain.parse_args(["--env", env, *vision])
            assert args.mixture and args.model == "tiny" and args.out.startswith("runs/pretrain-")
            assert callable(pretrain.stand_in(args)[0])
    data = tmp_path / "sft.json"
    data.write_text("[]")
    refused(lambda: pretrain.parse_args(["--data", str(data)]), capsys, "--data")
    refused(lambda: pretrain.parse_args(["--revise", "0.5"]), capsys, "--revise")
    for gone in ("--mixture", "--read"):  # sft.py is the paper's SFT only
        refused(lambda: sft.parse_args([gone]), capsys, "unrecognized")


def plot_run(folder, *lines):
    """A run folder as plots.py reads it: config.json and these metrics.jsonl lines."""
    folder.mkdir()
    (folder / "config.json").write_text('{"method": "ppo", "env": "generalpoints"}')
    (folder / "metrics.jsonl").write_text("".join(line + "\n" for line in lines))
    return folder


def test_out_that_is_a_file_or_under_one(tmp_path, capsys):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    run = plot_run(tmp_path / "run", '{"step": 0, "flops": 0, "eval": {"id": {"success": 0.5}}}')
    for out in (a_file, a_file / "run"):
        refused(lambda: sft.parse_args(["--out", str(out)]), capsys, "--out", "a file")
        refused(lambda: ppo.parse_args(["--out", str(out)]), capsys, "--out", "a file")
        refused(lambda: _experiment("headline").main(["--root", str(out)]), capsys, "--root", "a file")
        refused(lambda: plots.main([str(run), "--out", str(out)]), capsys, "--out")
    refused(lambda: evaluate.main(["--env", "virl", "--model", "oracle", "--out", str(tmp_path)]),
            capsys, "--out", "a folder")
    assert a_file.read_text() == "mine"


# ---------------------------------------------------------------------------------------------
# model folders: damaged weights, a pickle with code, NaN weights, a corrupt trainer_state.json
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["truncated weights", "garbage weights", "truncated value head",
                                  "NaN weights", "pickled code"])
def test_damaged_model_folder(work, kind, capsys):
    folder = str(work["models"][kind])
    line = refused(lambda: evaluate.main(["--env", "generalpoints", "--model", folder]), capsys, folder)
    assert {"NaN weights": "NaN", "pickled code": "weights_only",
            "truncated value head": "value_head.safetensors"}.get(kind, "") in line
    refused(lambda: sft.main(["--model", folder, "--out", str(work["root"] / "never")]), capsys)
    assert "PICKLED CODE RAN" not in capsys.readouterr().out and not (work["root"] / "never").exists()


def test_init_with_a_corrupt_trainer_state(work, capsys):
    out = work["root"] / "ppo-never"
    refused(lambda: ppo.main(["--init", str(work["corrupt_state"]), "--out", str(out)]), capsys,
            "trainer_state.json", "cannot be read")
    assert not out.exists()


# ---------------------------------------------------------------------------------------------
# --resume: a damaged newest checkpoint falls back to the older one, else one line
# ---------------------------------------------------------------------------------------------
DAMAGE = {
    "model.safetensors": lambda f: truncate(f, 5000),
    "value_head.safetensors": lambda f: truncate(f, 5000),
    "optimizer.pt": lambda f: f.unlink(),
    "scheduler.pt": lambda f: f.write_bytes(b"not a zip"),
    "trainer_state.json": lambda f: f.write_text('{"step": 2, "tok'),
}


@pytest.mark.parametrize("name", list(DAMAGE))
def test_resume_falls_back_to_the_older_checkpoint(work, tmp_path, name, capsys):
    run = tmp_path / "run"
    shutil.copytree(work["sft_run"], run, symlinks=True)
    DAMAGE[name](run / "checkpoint-2" / name)
    sft.run(sft.parse_args(["--model", str(work["model"]), "--steps", "2", "--save-every", "1", *SFT_FAST,
                            "--out", str(run), "--resume"]))
    one_line(capsys.readouterr().err, f"checkpoint-2/{name}", f"older {run / 'checkpoint-1'}")
    assert checkpoints.problem(run / "checkpoint-2") is None  # trained again from step 1


def test_resume_with_every_checkpoint_damaged_changes_nothing(work, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(work["sft_run"], run, symlinks=True)
    DAMAGE["model.safetensors"](run / "checkpoint-2" / "model.safetensors")
    DAMAGE["optimizer.pt"](run / "checkpoint-1" / "optimizer.pt")
    before = snapshot(run)
    refused(lambda: sft.main([*SFT_FAST, "--steps", "2", "--out", str(run), "--resume"]),
            capsys, "no intact checkpoint", "checkpoint-2/model.safetensors", "checkpoint-1/optimizer.pt")
    assert snapshot(run) == before


def test_resume_refuses_a_pickle_with_code_in_the_checkpoint(work, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(work["sft_run"], run, symlinks=True)
    torch.save({"state": Payload()}, run / "checkpoint-2" / "optimizer.pt")  # a valid zip: passes the cheap check
    before = snapshot(run)
    refused(lambda: sft.main([*SFT_FAST, "--model", str(work["model"]), "--steps", "3", "--out", str(run),
                              "--resume"]), capsys, "checkpoint-2/optimizer.pt", "refused")
    assert snapshot(run) == before and "PICKLED CODE RAN" not in capsys.readouterr().out


def test_resume_with_an_unreadable_config_changes_nothing(work, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(work["sft_run"], run, symlinks=True)
    (run / "config.json").write_text('{"env": "generalpoints", "se')
    before = snapshot(run)
    refused(lambda: sft.main([*SFT_FAST, "--steps", "3", "--out", str(run), "--resume"]),
            capsys, "config.json cannot be read")
    assert snapshot(run) == before


def test_ppo_resume_must_continue_the_same_run(work, capsys):
    run = work["ppo_run"]
    before = snapshot(run)
    for flags, what in [(["--env", "virl"], "env"), (["--vision", "--init", str(work["model"])], "vision"),
                        (["--seed", "3"], "seed"),
                        (["--model", str(work["model"])], "model")]:
        refused(lambda: ppo.main(["--out", str(run), "--resume", *flags]), capsys, f"different {what}")
    assert snapshot(run) == before


def test_ppo_resume_after_a_half_written_samples_line(work, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(work["ppo_run"], run, symlinks=True)
    for log in ("samples.jsonl", "metrics.jsonl"):
        with open(run / log, "a") as f:
            f.write('{"step": 2, "prompt": "Cards: [\'A')  # what kill -9 mid-write leaves
    ppo.main(["--init", str(work["model"]), "--out", str(run), "--updates", "2", *PPO_FAST, "--resume"])
    samples = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    assert {s["step"] for s in samples} == {1, 2}
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "eval" not in m] == [1, 2]


# ---------------------------------------------------------------------------------------------
# --data: bad records are skipped and counted; a file nested too deeply is one line
# ---------------------------------------------------------------------------------------------
def _record(example, image=None):
    user, answer = example["messages"]
    prompt = "".join(p.get("text", "") for p in user["content"])
    record = {"conversations": [{"from": "human", "value": ("<image>\n" if image else "") + prompt},
                                {"from": "gpt", "value": answer["content"][-1]["text"]}]}
    return {**record, "image": image} if image else record


def test_data_records_skipped_and_counted(work, tmp_path, capsys):
    examples = generalpoints.sft_examples(3, seed=5)
    deep = {"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": [[[[[["x"]]]]]]}]}
    too_long = _record(examples[1])
    too_long["conversations"][1]["value"] = "".join(str(i % 10) for i in range(3000))  # > 2048 tokens
    data = tmp_path / "data.json"
    data.write_text(json.dumps([_record(examples[0]), deep, too_long, _record(examples[2])]))
    sft.run(sft.parse_args(["--model", str(work["model"]), "--steps", "1", *SFT_FAST, "--data", str(data),
                            "--out", str(tmp_path / "run")]))
    err = capsys.readouterr().err
    assert "skipped 1 of 4 malformed records" in err and "skipped 1 of 3 records longer than" in err

    (tmp_path / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    refused(lambda: sft.main([*SFT_FAST, "--data", str(tmp_path / "deep.json"),
                                            "--out", str(tmp_path / "deep")]), capsys, "nested too deeply")


def test_data_image_that_pil_cannot_open(work, tmp_path, capsys):
    examples = generalpoints.sft_examples(2, vision=True, seed=5)
    (tmp_path / "images").mkdir()
    examples[0]["image"].save(tmp_path / "images" / "good.png")
    (tmp_path / "images" / "bad.png").write_bytes(b"\x89PNG but not really")
    data = tmp_path / "data.json"
    data.write_text(json.dumps([_record(examples[0], "images/good.png"), _record(examples[1], "images/bad.png")]))
    sft.run(sft.parse_args(["--model", str(work["model"]), "--vision", "--steps", "1", *SFT_FAST,
                            "--data", str(data), "--out", str(tmp_path / "run")]))
    one_line(capsys.readouterr().err, "skipped 1 of 2 malformed records", "bad.png cannot be opened")


# ---------------------------------------------------------------------------------------------
# evaluation beyond the distinct episodes; plots of logs with nothing to draw
# ---------------------------------------------------------------------------------------------
def test_episodes_beyond_the_distinct_routes_are_capped_and_said(tmp_path, capsys):
    evaluate.main(["--env", "virl", "--vision", "--model", "oracle", "--splits", "ood-visual", "--episodes", "1000",
                   "--out", str(tmp_path / "eval.json")])
    one_line(capsys.readouterr().err, "18 distinct routes", "not 1000")
    assert json.loads((tmp_path / "eval.json").read_text())["ood-visual"]["n"] == 18
    # GeneralPoints: counted from the deal (multisets of the split's cards that make 24)
    hands = {split: evaluate.distinct_episodes("generalpoints", split) for split in ("id", "ood-rule")}
    assert 1000 < hands["ood-rule"] < hands["id"]


@pytest.mark.parametrize("lines", [['{"step": 0, "flops": 0, "eval": {"id": {}}}'],
                                   ['{"step": 0, "flops": 0, "eval": {"id": {"success": NaN}}}'],
                                   ['{"step": 0, "flops": NaN, "eval": {"id": {"success": 0.5}}}', '{"step": 1, "fl']])
def test_plots_of_logs_without_a_usable_eval(tmp_path, lines, capsys):
    run = plot_run(tmp_path / "run", *lines)
    with pytest.raises(SystemExit) as stop:
        plots.main([str(run), "--out", str(tmp_path / "figures")])
    assert stop.value.code not in (0, None)
    err = capsys.readouterr().err  # warnings about the skipped lines, if any; then the error
    assert "Traceback" not in err and str(stop.value.code).startswith("error:")
    assert "no evaluation lines" in str(stop.value.code) and "\n" not in str(stop.value.code)
    assert not (tmp_path / "figures").exists()
