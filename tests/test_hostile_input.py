"""Hostile input values get one clear line, never a traceback, a hang or a silent wrong run (issue 27).

Round two of tests/test_bad_input.py, in its style: each refusal is a non-zero exit, exactly one
line on stderr naming the problem, no "Traceback", and nothing written or changed in the run or
model folder. The kinds: a split that does not fit the variant (ood-visual without --vision), a
conversation longer than the model's context (checked before any work), counts and sizes of
absurd values (attempts, samples, batches, threads), images in --data that are decompression bombs
or odd, --data files in other encodings or shapes, play.py's input in bytes that do not decode,
model folders whose config.json or tokenizer is malformed, and every command line whose error
could be more than one line (argparse's usage block, a library's report before our line). The
command lines run as subprocesses where only they show the fault (play.py's stdin, the
parsers of every script, a library's log), all at once in one fixture; the rest in-process.
"""
import importlib.util
import json
import logging
import os
import shutil
import struct
import subprocess
import sys
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import evaluate  # noqa: E402
import generalpoints  # noqa: E402
import ppo  # noqa: E402
import sft  # noqa: E402
import virl  # noqa: E402
from cli import RunError  # noqa: E402
from policy import load_policy  # noqa: E402
from test_bad_input import one_line, refused, snapshot  # noqa: E402  (round one's checks)

SFT_FAST = ["--batch-size", "1", "--steps", "1", "--eval-every", "0", "--log-every", "1", "--threads", "1"]
PPO_FAST = ["--num-envs", "2", "--rollout-steps", "2", "--minibatch-size", "2", "--grad-accum", "1",
            "--ppo-epochs", "1", "--eval-episodes", "1", "--eval-splits", "id", "--updates", "1", "--threads", "1"]


# ---------------------------------------------------------------------------------------------
# helpers (one_line, refused, snapshot: round one's, imported above)
# ---------------------------------------------------------------------------------------------
def png_header(width, height):
    """A valid PNG that claims width x height 1-bit pixels in a few bytes (a decompression bomb's
    header: PIL reads the size before any pixel)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00")) + chunk(b"IEND", b""))


def record(example, image=None):
    """An SFT example as a record of the public data file (sft.load_sft_file's format)."""
    user, answer = example["messages"]
    prompt = "".join(p.get("text", "") for p in user["content"])
    out = {"conversations": [{"from": "human", "value": ("<image>\n" if image else "") + prompt},
                             {"from": "gpt", "value": answer["content"][-1]["text"]}]}
    return {**out, "image": image} if image else out


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny model folder (its tokenizer trained on 32 prompts: a second) and damaged copies."""
    root = tmp_path_factory.mktemp("hostile")
    examples = generalpoints.sft_examples(16, seed=0) + virl.sft_examples(16, seed=0)  # both tasks' words
    corpus = [" ".join(part.get("text", "") for m in ex["messages"] for part in m["content"]) for ex in examples]
    model = root / "model"
    load_policy("tiny", corpus=corpus).save(str(model))
    models = {}
    for kind, damage in MODEL_DAMAGE.items():
        models[kind] = root / f"model-{len(models)}"
        shutil.copytree(model, models[kind])
        damage(models[kind])
    return dict(root=root, model=model, models=models)


# ---------------------------------------------------------------------------------------------
# 3. a split that does not fit the variant; split lists empty or repeated
# ---------------------------------------------------------------------------------------------
def entry(script, env, flags):
    """The entry point of a script, in-process, with the flags of a split list."""
    if script == "evaluate":
        return lambda: evaluate.main(["--env", env, "--model", "oracle", *flags])
    if script == "ppo":
        return lambda: ppo.parse_args(["--env", env, "--init", "base", *flags])
    return lambda: sft.parse_args(["--env", env, *flags])


@pytest.mark.parametrize("env", ["generalpoints", "virl"])
@pytest.mark.parametrize("script", ["sft", "ppo", "evaluate"])
def test_ood_visual_needs_vision(script, env, capsys):
    flag = "--splits" if script == "evaluate" else "--eval-splits"
    refused(entry(script, env, [flag, "id,ood-visual"]), capsys, flag, "ood-visual", "--vision")
    if script != "evaluate":  # with --vision it is the visual-OOD split, the default's third
        assert entry(script, env, ["--vision"])().eval_splits == "id,ood-rule,ood-visual"


@pytest.mark.parametrize("text,why", [(",", "no split given"), ("id,ood-rule,id", "'id' is given twice")])
@pytest.mark.parametrize("script", ["sft", "ppo", "evaluate"])
def test_split_lists_empty_or_repeated(script, text, why, capsys):
    refused(entry(script, "generalpoints", ["--splits" if script == "evaluate" else "--eval-splits", text]),
            capsys, why)


def test_the_experiments_ask_for_splits_that_fit_their_variant():
    """Every --eval-splits of experiments/headline.py's stages parses for its task's variant (the
    README's GP-L evaluation example with ood-visual is the case this refuses)."""
    spec = importlib.util.spec_from_file_location("headline", ROOT / "experiments" / "headline.py")
    headline = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(headline)
    checked = 0
    for task in headline.TASKS.values():
        env, vision = task["env"][1], "--vision" in task["env"]
        for flags in [*task["full"].values(), *task["smoke"].values()]:
            if isinstance(flags, list) and "--eval-splits" in flags:
                evaluate.parse_splits(flags[flags.index("--eval-splits") + 1], env, vision)
                checked += 1
    assert checked >= 8
    with pytest.raises(ValueError, match="--vision"):
        evaluate.parse_splits("id,ood-visual", "generalpoints", vision=False)


# ---------------------------------------------------------------------------------------------
# 4. the context: the longest conversation is checked before any work; 13. bounded counts
# ---------------------------------------------------------------------------------------------
CONTEXT_CASES = [  # (script, flags, the flag the line must name)
    ("evaluate", ["--max-new-tokens", "100000"], "--max-new-tokens"),
    ("evaluate", ["--attempts", "100"], "--attempts"),
    ("evaluate", ["--preset", "paper"], "--max-new-tokens 256 x 5 attempts"),  # the tiny model's 2,048
    ("evaluate", ["--env", "virl", "--vision", "--splits", "ood-visual", "--max-new-tokens", "4000"],
     "--max-new-tokens"),
    ("sft", ["--eval-every", "1", "--eval-max-new-tokens", "5000"], "--eval-max-new-tokens"),
    ("sft", ["--preset", "paper", "--eval-every", "20", "--batch-size", "1", "--micro-batch-size", "1"],
     "--eval-max-new-tokens 256"),
    ("ppo", ["--max-new-tokens", "5000"], "--max-new-tokens 5000"),
    ("ppo", ["--max-attempts", "100"], "--max-attempts"),
    ("ppo", ["--eval-max-new-tokens", "5000"], "--eval-max-new-tokens"),
    ("ppo", ["--eval-attempts", "100"], "--eval-attempts"),
    ("ppo", ["--preset", "paper"], "--max-new-tokens 512 x 5 attempts"),
    ("ppo", ["--env", "virl", "--max-new-tokens", "3000"], "--max-new-tokens 3000 x 2 attempts"),
]


@pytest.mark.parametrize("script,flags,names", CONTEXT_CASES, ids=[f"{c[0]}:{' '.join(c[1])}" for c in CONTEXT_CASES])
def test_longer_than_the_context_is_refused_before_any_work(work, tmp_path, script, flags, names, capsys):
    out = tmp_path / "run"
    model = str(work["model"])
    if script == "evaluate":
        argv = ["--env", "generalpoints", "--model", model, *flags, "--out", str(out / "eval.json")]
        argv = argv[2:] if "--env" in flags else argv
        call = lambda: evaluate.main(argv)  # noqa: E731
    elif script == "sft":
        call = lambda: sft.main(["--model", model, *SFT_FAST, *flags, "--out", str(out)])  # noqa: E731
    else:
        call = lambda: ppo.main(["--init", model, *PPO_FAST, *flags, "--out", str(out)])  # noqa: E731
    before = snapshot(work["model"])
    began = time.time()
    line = refused(call, capsys, names, "the model holds 2,048", "lower")
    assert "needs up to" in line and time.time() - began < 20  # nothing ran: no config.json, no log
    assert not out.exists() and snapshot(work["model"]) == before


def test_the_defaults_and_a_real_models_paper_values_fit(work, monkeypatch):
    """No refusal of the defaults on the tiny model, nor of --preset paper on a 128k model."""
    policy = load_policy(str(work["model"]))
    for env in ("generalpoints", "virl"):
        for vision in (False, True):
            splits = "id,ood-rule" + (",ood-visual" if vision else "")
            for new, attempts, training in ((96, None, True), (96, None, False), (128, None, False)):
                evaluate.check_context(policy, env, vision, None, [(splits, attempts, new, ("--x",), training)])
    monkeypatch.setattr(policy, "context", 131072)  # Llama-3.2-Vision's max_position_embeddings
    for env in ("generalpoints", "virl"):
        image_size = evaluate.paper_image_size(env)
        evaluate.check_context(policy, env, True, image_size, [("id", None, 512, ("--x",), True),
                                                               ("id,ood-rule,ood-visual", None, 256, ("--x",), False)])
    with pytest.raises(RunError, match="lower --a or --b"):
        evaluate.check_context(policy, "generalpoints", False, None, [("id", 100, 2000, ("--a", "--b"), False)])


def test_a_conversation_that_outgrows_the_context_mid_run_is_one_line(work):
    policy = load_policy(str(work["model"]))
    obs = generalpoints.make_env(seed=0).reset()[0]
    with pytest.raises(RunError, match="longer than the model's context of 2048 tokens: lower") as err:
        policy.generate([obs], max_new_tokens=10**6)
    assert "\n" not in str(err.value)  # cli.main prints it as one line, exit status 1


ABSURD = [("evaluate", "--attempts", "1000000"), ("evaluate", "--samples", "1000000"),
          ("ppo", "--max-attempts", "1000000"), ("ppo", "--eval-attempts", "1000000"),
          ("ppo", "--eval-samples", "1000000"), ("ppo", "--num-envs", "1000000000"),
          ("ppo", "--minibatch-size", "1000000000"), ("ppo", "--threads", "1000000000"),
          ("sft", "--batch-size", "1000000000"), ("sft", "--micro-batch-size", "1000000000"),
          ("sft", "--threads", "1000000000")]


@pytest.mark.parametrize("script,flag,value", ABSURD)
def test_absurd_counts_are_refused_by_their_type(script, flag, value, capsys):
    """Values that would run for ever (attempts, passes) or exhaust memory before the first step
    (a batch of 10**9, 10**9 threads: libgomp aborts), refused in one line before any model."""
    refused(entry(script, "generalpoints", [flag, value]), capsys, flag, "must be <=")


def test_the_most_attempts_with_a_stand_in_ends(tmp_path, capsys):
    began = time.time()  # the random stand-in: ~1 in 6 answers right, 100 attempts per position
    evaluate.main(["--env", "virl", "--model", "random", "--attempts", "100", "--episodes", "4", "--splits",
                   "ood-rule", "--out", str(tmp_path / "eval.json")])
    assert json.loads((tmp_path / "eval.json").read_text())["ood-rule"]["n"] == 4 and time.time() - began < 20


# ---------------------------------------------------------------------------------------------
# 11. images in --data: decompression bombs and unreadable files skipped and counted; odd modes decoded
# ---------------------------------------------------------------------------------------------
BAD_IMAGES = {
    "decompression bomb": lambda f: f.write_bytes(png_header(20000, 20000)),  # 4e8 pixels: PIL's error
    "bomb warning": lambda f: f.write_bytes(png_header(10000, 10000)),  # 1e8 > 89M pixels: PIL's warning
    "zero bytes": lambda f: f.write_bytes(b""),
    "a folder": lambda f: f.mkdir(),
    "text": lambda f: f.write_text("not an image at all\n" * 50),
}
ODD_IMAGES = {
    "animated GIF": lambda f: Image.new("RGB", (40, 30), "red").save(
        f, "GIF", save_all=True, append_images=[Image.new("RGB", (40, 30), "blue")]),
    "CMYK JPEG": lambda f: Image.new("CMYK", (40, 30), (0, 50, 100, 0)).save(f, "JPEG"),
    "16-bit PNG": lambda f: Image.new("I;16", (40, 30), 40000).save(f, "PNG"),
    "palette with transparency": lambda f: Image.new("P", (40, 30)).save(f, "PNG", transparency=b"\x00\x80"),
    "1-bit PNG": lambda f: Image.new("1", (40, 30), 1).save(f, "PNG"),
}


def data_file(folder, bad):
    """A --data file of two good GP-VL records and one whose image is made by `bad`."""
    examples = generalpoints.sft_examples(3, vision=True, seed=5)
    (folder / "images").mkdir(exist_ok=True)
    for i in (0, 1):
        examples[i]["image"].save(folder / "images" / f"good{i}.png")
    bad(folder / "images" / "bad.png")
    data = folder / "data.json"
    data.write_text(json.dumps([record(examples[0], "images/good0.png"), record(examples[1], "images/bad.png"),
                                record(examples[2], "images/good1.png")]))
    return data


@pytest.mark.parametrize("kind", list(BAD_IMAGES))
def test_data_image_that_is_a_bomb_or_unreadable_is_skipped_and_counted(tmp_path, kind, capsys):
    records = sft.load_sft_file(data_file(tmp_path, BAD_IMAGES[kind]), vision=True)
    line = one_line(capsys.readouterr().err, "skipped 1 of 3 malformed records", "bad.png cannot be opened")
    assert len(records) == 2 and ("decompression bomb" in line) == (kind.startswith(("decompression", "bomb")))


@pytest.mark.parametrize("kind", list(ODD_IMAGES))
def test_data_image_of_an_odd_mode_is_decoded_without_a_word(tmp_path, kind, capsys):
    records = sft.load_sft_file(data_file(tmp_path, ODD_IMAGES[kind]), vision=True)
    images = [ex["image"] for ex in sft.file_examples(records, 0, 3, seed=0)]
    assert len(records) == 3 and all(im.mode == "RGB" for im in images)
    assert capsys.readouterr().err == ""  # no PIL warning about the mode


def test_data_image_truncated_after_its_header_is_one_line(tmp_path):
    data = data_file(tmp_path, lambda f: generalpoints.sft_examples(1, vision=True)[0]["image"].save(f))
    bad = tmp_path / "images" / "bad.png"
    bad.write_bytes(bad.read_bytes()[:200])  # the header reads, the pixels do not
    records = sft.load_sft_file(data, vision=True)
    with pytest.raises(RunError, match="bad.png cannot be decoded") as err:
        sft.file_examples(records, 0, 3, seed=0)
    assert "\n" not in str(err.value)


# ---------------------------------------------------------------------------------------------
# --data files of other encodings and shapes
# ---------------------------------------------------------------------------------------------
def gp_records(n=2):
    return [record(ex) for ex in generalpoints.sft_examples(n, seed=7)]


DATA_REFUSED = {  # the file's bytes -> what the one line says
    "UTF-16": (lambda: json.dumps(gp_records()).encode("utf-16"), "not valid JSON"),
    "JSON lines": (lambda: "\n".join(json.dumps(r) for r in gp_records()).encode(), "not valid JSON"),
    "a JSON object": (lambda: json.dumps({"data": gp_records()}).encode(), "expected a JSON list"),
    "an empty list": (lambda: b"[]", "no usable record of 0"),
    "records of the wrong types": (lambda: json.dumps([
        {"conversations": {"from": "human"}}, {"conversations": [{"from": "human", "value": 3},
                                                                 {"from": "gpt", "value": "x"}]},
        {"conversations": [["human", "hi"], ["gpt", "x"]]}, "a string", 5, None]).encode(), "no usable record of 6"),
    "NaN and huge numbers": (lambda: b'[NaN, 1e999, -Infinity]', "no usable record of 3"),
}


@pytest.mark.parametrize("kind", list(DATA_REFUSED))
def test_data_file_of_another_encoding_or_shape(work, tmp_path, kind, capsys):
    make, why = DATA_REFUSED[kind]
    data = tmp_path / "data.json"
    data.write_bytes(make())
    refused(lambda: sft.main(["--model", str(work["model"]), *SFT_FAST, "--data", str(data),
                              "--out", str(tmp_path / "run")]), capsys, "--data", why)
    assert not (tmp_path / "run").exists()


def test_data_with_a_bom_and_wrong_typed_records_is_read(work, tmp_path, capsys):
    """A BOM (Windows editors) is read; records of the wrong types are skipped and counted."""
    records = gp_records(2) + [{"conversations": [{"from": "human", "value": "hi"}, {"from": "gpt", "value": 7}]},
                               {"conversations": "hi", "image": [1, 2]}]
    data = tmp_path / "data.json"
    data.write_bytes(b"\xef\xbb\xbf" + json.dumps(records).encode())
    assert len(sft.load_sft_file(data, vision=False)) == 2
    one_line(capsys.readouterr().err, "skipped 2 of 4 malformed records")


def test_data_record_of_100_mb_is_skipped_without_tokenizing_it(work, tmp_path, capsys):
    huge = gp_records(2)
    huge[1]["conversations"][1]["value"] = "7" * 100_000_000
    data = tmp_path / "data.json"
    data.write_text(json.dumps(huge))
    policy = load_policy(str(work["model"]))
    began = time.time()
    kept = sft.drop_too_long(sft.load_sft_file(data, vision=False), policy)
    assert len(kept) == 1 and time.time() - began < 15
    one_line(capsys.readouterr().err, "skipped 1 of 2 records longer than the model's context of 2048")


# ---------------------------------------------------------------------------------------------
# 15. model folders whose config.json, tokenizer or chat template is malformed: one line, unchanged
# ---------------------------------------------------------------------------------------------
def edit_config(**changes):
    """Set keys of config.json ("text_config.x" for the language model's) to other values."""
    def damage(folder):
        config = json.loads((folder / "config.json").read_text())
        for key, value in changes.items():
            *parent, name = key.split(".")
            (config[parent[0]] if parent else config)[name] = value
        (folder / "config.json").write_text(json.dumps(config))
    return damage


def write(name, text):
    return lambda folder: (folder / name).write_text(text)


MODEL_DAMAGE = {  # what the folder's line must name is the folder itself, and for some the cause
    "model_type 5": edit_config(model_type=5),
    "model_type a list": edit_config(model_type=["mllama"]),
    "model_type null": edit_config(model_type=None),
    "config a list": write("config.json", "[1, 2]"),
    "config a string": write("config.json", '"mllama"'),
    "config not JSON": write("config.json", '{"model_type": "mllama",'),
    "config missing": lambda folder: (folder / "config.json").unlink(),
    "negative hidden_size": edit_config(**{"text_config.hidden_size": -128}),
    "vocab_size a string": edit_config(**{"text_config.vocab_size": "many"}),
    "huge vocab_size": edit_config(**{"text_config.vocab_size": 10**12}),
    "zero layers": edit_config(**{"text_config.num_hidden_layers": 0}),  # the weights would be dropped
    "more layers": edit_config(**{"text_config.num_hidden_layers": 5}),  # ... or re-initialised
    "a bad dtype": edit_config(dtype="float99", torch_dtype="float99"),
    "text_config a list": edit_config(text_config=[1]),
    "tokenizer.json garbage": lambda folder: (folder / "tokenizer.json").write_bytes(b"\xff\x00garbage"),
    "tokenizer.json of another shape": write("tokenizer.json", '{"version": "1.0", "model": 5}'),
    "tokenizer_config a list": write("tokenizer_config.json", "[]"),
    "processor_config a list": write("processor_config.json", "[]"),
    "chat template broken": write("chat_template.jinja", "{% for %}"),
}
CAUSES = {"zero layers": "weights do not fit its config.json", "more layers": "weights do not fit its config.json",
          "chat template broken": "chat template does not render", "model_type a list": "unhashable"}


@pytest.mark.parametrize("kind", list(MODEL_DAMAGE))
def test_malformed_model_folder(work, kind, capsys):
    folder = work["models"][kind]
    before = snapshot(folder)
    refused(lambda: evaluate.main(["--env", "generalpoints", "--model", str(folder)]), capsys,
            str(folder), CAUSES.get(kind, "cannot load"))
    assert snapshot(folder) == before


# ---------------------------------------------------------------------------------------------
# 14. play.py's input; 16. every command line's error is one line: all as subprocesses, at once
# ---------------------------------------------------------------------------------------------
STRICT = {**os.environ, "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8:strict"}
PLAY = {  # name -> (command line, bytes on stdin, what stdout must show)
    "GP undecodable bytes": (["generalpoints.py", "--play", "--seed", "1"], b"\xff\xfe 1+2 \x80\n", "illegal_formula"),
    "V-IRL undecodable bytes": (["virl.py", "--play"], b"\xc3\x28 forward()\n", "wrong_action"),
    "GP control characters": (["generalpoints.py", "--play", "--seed", "1"],
                              b"\x1b[2J\x00\x07\x08 (1+2)*8\r\n\x04\n", "illegal_formula"),
    "GP 5 MB of text": (["generalpoints.py", "--play", "--seed", "1"], b"1+" * 2_500_000 + b"\n", "too long"),
    "V-IRL 5 MB of JSON": (["virl.py", "--play"], b'{"action": "' + b"x" * 5_000_000 + b'"}\n', "wrong_action"),
}
BAD_FLAGS = {  # name -> (command line, what the one line must name)
    "generalpoints.py --seed": (["generalpoints.py", "--play", "--seed", "x"], "--seed"),
    "generalpoints.py --size": (["generalpoints.py", "--show", "x.png", "--size", "1000000000"], "--size"),
    "generalpoints.py two modes": (["generalpoints.py", "--play", "--show", "x.png"], "--play or --show"),
    "virl.py --city": (["virl.py", "--play", "--city", "atlantis"], "atlantis"),
    "virl.py --seed": (["virl.py", "--play", "--seed", "1.5"], "--seed"),
    "virl.py no mode": (["virl.py"], "--show --play"),
    "policy.py --seed": (["policy.py", "--seed", "-1"], "--seed"),
    "plots.py": (["plots.py", "runs/x", "--bogus"], "--bogus"),
    "evaluate.py --splits": (["evaluate.py", "--env", "generalpoints", "--model", "oracle", "--splits", "ood-visual"],
                             "--vision"),
    "experiments/main_job.py": (["experiments/main_job.py", "--bogus"], "--bogus"),
    "experiments/make_init.py": (["experiments/make_init.py", "gp-l", "--bogus"], "--bogus"),
    "experiments/rft_ceiling.py": (["experiments/rft_ceiling.py", "--bogus"], "--bogus"),
    "experiments/rl_ablation.py": (["experiments/rl_ablation.py", "--bogus"], "--bogus"),
    "experiments/style_gap.py": (["experiments/style_gap.py", "runs/x", "--bogus"], "--bogus"),
}


@pytest.fixture(scope="module")
def command_lines(tmp_path_factory):
    """Every command line of PLAY and BAD_FLAGS run at once (parsers and imports; policy.py alone
    imports torch: the other torch scripts' parsers are checked in-process below): {name: CompletedProcess}."""
    cwd = tmp_path_factory.mktemp("cwd")  # --show x.png and the like would write here, never in the repo

    def run(name):
        argv, stdin = (PLAY[name][0], PLAY[name][1]) if name in PLAY else (BAD_FLAGS[name][0], b"")
        argv = [str(ROOT / argv[0]), *argv[1:]]
        return subprocess.run([sys.executable, *argv], cwd=cwd, input=stdin, capture_output=True, timeout=300,
                              env=STRICT)

    names = [*PLAY, *BAD_FLAGS]
    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(zip(names, pool.map(run, names)))


@pytest.mark.parametrize("name", list(PLAY))
def test_play_survives_any_input(command_lines, name):
    done = command_lines[name]
    out, err = done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace")
    assert done.returncode == 0 and err == "", err[-2000:]
    assert PLAY[name][2] in out and ("bye" in out or "failed" in out), out[-2000:]


@pytest.mark.parametrize("name", list(BAD_FLAGS))
def test_every_command_line_error_is_one_line(command_lines, name):
    done = command_lines[name]
    assert done.returncode != 0, done.stdout[-500:]
    one_line(done.stderr.decode("utf-8", "replace"), BAD_FLAGS[name][1])


def test_in_process_parsers_and_a_librarys_report_are_one_line(work, capfd, monkeypatch):
    """pretrain.py's parser (its own, then sft.py's), and transformers' load report on a folder
    whose weights do not fit its config.json (transformers' logger, pointed at the captured stderr)."""
    for handler in logging.getLogger("transformers").handlers:  # made before the capture began
        monkeypatch.setattr(handler, "stream", sys.stderr)
    spec = importlib.util.spec_from_file_location("pretrain", ROOT / "experiments" / "pretrain.py")
    pretrain = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pretrain)
    for call, fragment in [(lambda: pretrain.parse_args(["--bogus"]), "--bogus"),
                           (lambda: evaluate.main(["--env", "generalpoints", "--model",
                                                   str(work["models"]["more layers"])]), "weights do not fit")]:
        capfd.readouterr()
        with pytest.raises(SystemExit) as stop:
            call()
        code = stop.value.code
        assert code not in (0, None)
        one_line(capfd.readouterr().err + (f"{code}\n" if isinstance(code, str) else ""), fragment)
