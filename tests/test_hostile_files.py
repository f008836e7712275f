"""Hostile files and folders (issue 27, round two): a full disk, an --out that cannot be written or
is a model folder, an --init of another task, files only their owner may read, odd --data paths.

Checked as in tests/test_bad_input.py (its helpers): a non-zero exit, one line on stderr naming the
problem, no traceback, and the run or model folder byte-identical before and after. The faults are
real where this machine allows it (a tiny tmpfs that fills up or is read-only, as root; a process
without the capability to read other users' files), else skipped; every write of a checkpoint is
also failed in-process by monkeypatching the call that writes it, as a full disk fails it.
"""
import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from pathlib import Path

import pytest
import torch
import transformers.modeling_utils
from safetensors import SafetensorError

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import checkpoints  # noqa: E402
import cli as cli_lib  # noqa: E402
import evaluate  # noqa: E402
import generalpoints  # noqa: E402
import plots  # noqa: E402
import policy as policy_lib  # noqa: E402
import ppo  # noqa: E402
import sft  # noqa: E402
from test_bad_input import SFT_FAST, _experiment, cli, one_line, plot_run, refused, snapshot  # noqa: E402

FAST = [*SFT_FAST, "--threads", "1", "--save-every", "1"]
NO_SPACE = "No space left on device"


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A tiny model folder, a finished GeneralPoints SFT run (checkpoint-1, -2, final) and a V-IRL
    one (checkpoint-1): ~3 s."""
    root = tmp_path_factory.mktemp("files")
    examples = generalpoints.sft_examples(16, seed=0)
    corpus = [" ".join(part.get("text", "") for m in ex["messages"] for part in m["content"]) for ex in examples]
    model = root / "model"
    policy = policy_lib.load_policy("tiny", corpus=corpus)
    policy.save(str(model))
    gp_run, virl_run = root / "gp-run", root / "virl-run"
    sft.run(sft.parse_args(["--model", str(model), "--steps", "2", *FAST, "--out", str(gp_run)]))
    sft.run(sft.parse_args(["--env", "virl", "--model", str(model), "--steps", "1", *FAST, "--out", str(virl_run)]))
    return dict(root=root, model=model, policy=policy, gp_run=gp_run, virl_run=virl_run)


def copy_run(work, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(work["gp_run"], run, symlinks=True)
    return run


@contextmanager
def tmpfs(folder, size="16m", options=""):
    """A real tmpfs of `size` at `folder` (root only, where mounting is allowed; else the test is skipped)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}{options}", "tmpfs", str(folder)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@contextmanager
def fifo(path):
    """A FIFO at `path`. Should a regression open it (and block), a timer opens and closes its other
    end after 20 s, so the test fails instead of hanging."""
    os.mkfifo(path)

    def unblock():
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK)  # a reader and a writer: either side's open returns
        time.sleep(1)
        os.close(fd)  # a blocked read then ends
    timer = threading.Timer(20, unblock)
    timer.start()
    try:
        yield path
    finally:
        timer.cancel()


def fill(folder):
    """Fill the file system of `folder` to the last byte."""
    with open(folder / "filler", "wb", buffering=0) as f:
        for size in (65536, 1):
            try:
                while f.write(b"\0" * size):
                    pass
            except OSError:
                pass


# ---------------------------------------------------------------------------------------------
# the real command lines, side by side (each torch-importing one pays ~7 s of imports)
# ---------------------------------------------------------------------------------------------
def test_command_lines(work, tmp_path):
    model_before = snapshot(work["model"])
    cases = [
        (["ppo.py", "--init", work["model"], "--out", work["model"]], ["--out", "--init folder"]),
        (["evaluate.py", "--env", "virl", "--model", "oracle", "--out", "/proc/eval.json"],
         ["--out", "cannot be written"]),
        (["plots.py", work["gp_run"], "--out", "/proc/figures"], ["--out", "cannot be written"]),
    ]
    with ThreadPoolExecutor(max_workers=len(cases)) as pool:
        results = list(pool.map(lambda case: cli(*case[0]), cases))
    for (argv, fragments), done in zip(cases, results):
        assert done.returncode != 0, (argv, done.stdout[-500:])
        one_line(done.stderr, *fragments)
    assert snapshot(work["model"]) == model_before


def test_full_disk_on_a_real_tmpfs(work, tmp_path, capsys):
    """sft.py with its run folder on a 16 MB tmpfs: checkpoint-1 (11.5 MB) fits, checkpoint-2 does
    not (the real writers fail: safetensors, torch.save). One line, checkpoint-1 intact, no
    half-written folder; the log has its lines. In-process: the command line adds only cli.main."""
    with tmpfs(tmp_path / "disk") as disk:
        run = disk / "run"
        refused(lambda: sft.main(["--model", str(work["model"]), "--steps", "3", *FAST, "--out", str(run)]), capsys,
                "writing", "checkpoint-2", NO_SPACE, f"latest complete checkpoint is {run}/checkpoint-1", "--resume")
        assert sorted(p.name for p in run.iterdir()) == ["checkpoint-1", "config.json", "metrics.jsonl"]
        assert checkpoints.problem(run / "checkpoint-1") is None
        steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
        assert steps == [1, 2]


# ---------------------------------------------------------------------------------------------
# 6. a full disk at each write of a checkpoint, of the log, of config.json: one handler
# ---------------------------------------------------------------------------------------------
def _half_then(error):
    """A fake writer: half a file where the real one would write, then `error`, as a full disk."""
    def write(path):
        Path(path).write_bytes(b"\0" * 1000)
        raise error
    return write


def _fail_save_at(where, monkeypatch):
    """Make the write of `where` (a file of checkpoint-3, or its rename or link) fail."""
    enospc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if where == "model.safetensors":
        monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", lambda state, filename, **kw: _half_then(
            SafetensorError(f"Error while serializing: I/O error: {NO_SPACE} (os error 28)"))(filename))
    elif where == "value_head.safetensors":
        monkeypatch.setattr(policy_lib, "save_file", lambda state, filename: _half_then(enospc)(filename))
    elif where.endswith(".pt"):
        real = torch.save

        def save(obj, file, *a, **kw):
            if Path(file).name == where:  # torch's own writer says only this
                _half_then(RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534"))(file)
            return real(obj, file, *a, **kw)
        monkeypatch.setattr(torch, "save", save)
    elif where == "trainer_state.json":
        real_write = Path.write_text
        monkeypatch.setattr(Path, "write_text", lambda self, text, *a, **kw: _half_then(enospc)(self)
                            if self.name == where else real_write(self, text, *a, **kw))
    elif where == "rename":
        monkeypatch.setattr(checkpoints.os, "rename", lambda *a: (_ for _ in ()).throw(
            OSError(errno.EROFS, os.strerror(errno.EROFS))))
    elif where == "final link":
        monkeypatch.setattr(Path, "symlink_to", lambda *a, **kw: (_ for _ in ()).throw(enospc))


@pytest.mark.parametrize("where", ["model.safetensors", "value_head.safetensors", "optimizer.pt", "scheduler.pt",
                                   "rng-rank0.pt", "trainer_state.json", "rename", "final link"])
def test_full_disk_at_each_write_of_a_checkpoint(work, tmp_path, where, monkeypatch, capsys):
    run = copy_run(work, tmp_path)
    kept = snapshot(run / "checkpoint-2")
    _fail_save_at(where, monkeypatch)
    reason = {"rename": "Read-only file system", "optimizer.pt": "unexpected pos", "scheduler.pt": "unexpected pos",
              "rng-rank0.pt": "unexpected pos"}.get(where, NO_SPACE)
    latest = run / ("checkpoint-3" if where == "final link" else "checkpoint-2")  # a link: checkpoint-3 is whole
    refused(lambda: sft.main(["--model", str(work["model"]), "--steps", "3", *FAST, "--out", str(run), "--resume"]),
            capsys, "writing", "checkpoint-3", reason, f"latest complete checkpoint is {latest}")
    assert not list(run.glob(".tmp-*")) and snapshot(run / "checkpoint-2") == kept
    assert (run / "final").resolve().name == "checkpoint-2"  # the old link stands until a new one replaces it


def test_after_a_full_disk_resume_finishes(work, tmp_path, monkeypatch, capsys):
    run = copy_run(work, tmp_path)
    argv = ["--model", str(work["model"]), "--steps", "3", *FAST, "--out", str(run), "--resume"]
    with monkeypatch.context() as patch:
        _fail_save_at("optimizer.pt", patch)
        refused(lambda: sft.main(argv), capsys, "optimizer.pt")
    sft.main(argv)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3] and (run / "final").resolve().name == "checkpoint-3"
    assert checkpoints.problem(run / "checkpoint-3") is None


def test_full_disk_mid_line_of_the_log(work, tmp_path, monkeypatch, capsys):
    """The append of metrics.jsonl fails halfway: one line; --resume drops the half line."""
    run = copy_run(work, tmp_path)
    argv = ["--model", str(work["model"]), "--steps", "3", *FAST, "--out", str(run), "--resume"]

    class Full:
        def __init__(self, path, mode):
            self.f = open(path, mode)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, text):
            self.f.write(text[:len(text) // 2])
            raise OSError(errno.ENOSPC, NO_SPACE)

    with monkeypatch.context() as patch:
        patch.setattr(checkpoints, "open", Full, raising=False)
        refused(lambda: sft.main(argv), capsys, "metrics.jsonl", NO_SPACE, "checkpoint-2")
    assert not (run / "metrics.jsonl").read_text().endswith("\n")  # the half line a full disk leaves
    sft.main(argv)
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3]


@pytest.mark.parametrize("name", ["config.json", "metrics.jsonl"])
def test_full_disk_rewriting_the_run_files_on_resume(work, tmp_path, name, monkeypatch, capsys):
    """--resume rewrites config.json and the log (dropping lines past the checkpoint): with a full
    disk the old files stay whole, never truncated."""
    run = copy_run(work, tmp_path)
    before = snapshot(run)
    real_write = Path.write_text
    monkeypatch.setattr(Path, "write_text", lambda self, text, *a, **kw: _half_then(
        OSError(errno.ENOSPC, NO_SPACE))(self) if self.name == f".{name}.tmp" else real_write(self, text, *a, **kw))
    refused(lambda: sft.main(["--model", str(work["model"]), "--steps", "3", *FAST, "--out", str(run), "--resume"]),
            capsys, f"writing {run / name} failed", NO_SPACE)
    after = snapshot(run)
    if name == "metrics.jsonl":  # config.json, written before it, now says --resume --steps 3, truly
        assert json.loads((run / "config.json").read_text())["steps"] == 3
        after["config.json"] = before["config.json"]
    assert after == before


def test_full_disk_writing_the_evaluation_and_the_figures(work, tmp_path, capsys):
    with tmpfs(tmp_path / "disk", size="1m") as disk:
        (disk / "eval.json").write_text('{"id": "an older evaluation"}\n')
        fill(disk)
        refused(lambda: evaluate.main(["--env", "virl", "--model", "oracle", "--episodes", "1", "--splits", "id",
                                       "--out", str(disk / "eval.json")]), capsys, "--out", NO_SPACE)
        assert (disk / "eval.json").read_text() == '{"id": "an older evaluation"}\n'  # not truncated
        assert not list(disk.glob(".eval.json*"))
        (disk / "figures").mkdir()
        run = plot_run(tmp_path / "plotted", '{"step": 0, "flops": 0, "eval": {"id": {"success": 0.5}}}')
        refused(lambda: plots.main([str(run), "--out", str(disk / "figures")]), capsys,
                "cannot write the figures", NO_SPACE)


# ---------------------------------------------------------------------------------------------
# 7. an --out that cannot be written: refused before any model loads, nothing left behind
# ---------------------------------------------------------------------------------------------
UNWRITABLE = {"under /proc": ("/proc/run", "No such file"),
              "a name too long": ("n" * 300, "File name too long"),
              "a symlink loop": ("loop", "a link to nowhere")}


def _unwritable(kind, tmp_path):
    path, reason = UNWRITABLE[kind]
    if kind == "a symlink loop":
        (tmp_path / "loop").symlink_to(tmp_path / "loop")
    return str(tmp_path / path if not path.startswith("/") else path), reason


@pytest.mark.parametrize("kind", list(UNWRITABLE))
@pytest.mark.parametrize("script", ["sft", "ppo", "evaluate", "plots", "headline"])
def test_out_that_cannot_be_written(work, tmp_path, kind, script, capsys):
    out, reason = _unwritable(kind, tmp_path)
    before = sorted(tmp_path.iterdir())
    entry = {"sft": lambda: sft.parse_args(["--model", str(work["model"]), "--out", out]),
             "ppo": lambda: ppo.parse_args(["--init", str(work["model"]), "--out", out]),
             "evaluate": lambda: evaluate.main(["--env", "virl", "--model", "oracle", "--out", out + "/e.json"]),
             "plots": lambda: plots.main([str(work["gp_run"]), "--out", out]),
             "headline": lambda: _experiment("headline").main(["--root", out])}[script]
    refused(entry, capsys, "--root" if script == "headline" else "--out", reason)
    assert sorted(tmp_path.iterdir()) == before


def test_out_on_a_read_only_file_system_and_a_read_only_run_on_resume(work, tmp_path, capsys):
    with tmpfs(tmp_path / "ro", size="32m") as disk:
        shutil.copytree(work["gp_run"], disk / "run", symlinks=True)
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        before = snapshot(disk / "run")
        for argv in (["--out", str(disk / "new")], ["--out", str(disk / "run"), "--resume", "--steps", "3"]):
            refused(lambda: sft.main(["--model", str(work["model"]), *FAST, *argv]), capsys, "--out",
                    "Read-only file system")
        refused(lambda: ppo.main(["--init", str(work["model"]), "--out", str(disk / "run"), "--resume"]), capsys,
                "--out", "Read-only file system")
        refused(lambda: evaluate.main(["--env", "virl", "--model", "oracle", "--out", str(disk / "run" / "e.json")]),
                capsys, "Read-only file system")
        assert snapshot(disk / "run") == before


@pytest.mark.parametrize("kind", ["a folder of other files", "under /proc"])
def test_make_init_out_is_checked_before_it_trains(tmp_path, kind, capsys):
    """experiments/make_init.py replaces --out by the new init: never a folder that is not an init."""
    out = tmp_path / "mine" if kind == "a folder of other files" else Path("/proc/init")
    if kind == "a folder of other files":
        out.mkdir()
        (out / "thesis.tex").write_text("years of work")
    refused(lambda: _experiment("make_init").main(["gp-l", "--out", str(out), "--work", str(tmp_path / "w")]),
            capsys, "--out", "no card.json" if kind == "a folder of other files" else "cannot be written")
    assert not (tmp_path / "w").exists() and (kind != "a folder of other files" or
                                              (out / "thesis.tex").read_text() == "years of work")


def test_the_check_leaves_nothing_and_a_writable_out_passes(work, tmp_path):
    deep = tmp_path / "a" / "b" / "run"
    assert cli_lib.out_problem(deep) is None and not (tmp_path / "a").exists()
    assert cli_lib.out_problem(tmp_path / "new.json", folder=False) is None and not (tmp_path / "new.json").exists()
    (tmp_path / "old.json").write_text("mine")
    assert cli_lib.out_problem(tmp_path / "old.json", folder=False) is None
    assert (tmp_path / "old.json").read_text() == "mine" and sorted(p.name for p in tmp_path.iterdir()) == ["old.json"]


@pytest.mark.parametrize("kind", ["a FIFO", "/dev/null", "a folder"])
def test_evaluation_out_that_is_not_a_regular_file(tmp_path, kind, capsys):
    """A FIFO would block the evaluation's write for ever; /dev/null would be renamed over."""
    out = {"a FIFO": tmp_path / "fifo", "/dev/null": Path("/dev/null"), "a folder": tmp_path}[kind]
    with fifo(out) if kind == "a FIFO" else nullcontext():
        refused(lambda: evaluate.main(["--env", "virl", "--model", "oracle", "--out", str(out)]), capsys, "--out",
                "a folder" if kind == "a folder" else "not a regular file")
    assert Path("/dev/null").is_char_device()


# ---------------------------------------------------------------------------------------------
# 8. a run folder is never a model folder: --out == --model, --init, a link to one, inside one
# ---------------------------------------------------------------------------------------------
def _clash(kind, work, tmp_path):
    """(the command line, the folder it must leave as it was, what the line must say)."""
    model, run = work["model"], work["gp_run"]
    (tmp_path / "link").symlink_to(model)
    (tmp_path / "bare").mkdir()  # a model's config.json alone, the weights not downloaded yet
    (tmp_path / "bare" / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "config.json").write_text('{"name": "my data set"}')
    sft_model = ["sft", "--model", str(model), "--out"]
    return {"sft --out == --model": ([*sft_model, str(model)], model, "is the --model folder"),
            "sft --out a link to --model": ([*sft_model, str(tmp_path / "link")], model, "is the --model folder"),
            "ppo --out == --init": (["ppo", "--init", str(model), "--out", str(model)], model, "is the --init folder"),
            "ppo --out == --model": (["ppo", "--init", "base", "--model", str(model), "--out", str(model)], model,
                                     "is the --model folder"),
            "ppo --out a shipped init": (["ppo", "--init", str(model), "--out", str(ROOT / "inits" / "virl-l")],
                                         ROOT / "inits" / "virl-l", "is a model folder"),
            "sft --out inside a shipped init": ([*sft_model, str(ROOT / "inits" / "gp-l" / "run")],
                                                ROOT / "inits" / "gp-l", "is inside"),
            "sft --out a run's final": ([*sft_model, str(run / "final")], run, "is a model folder"),
            "ppo --out inside a checkpoint": (["ppo", "--init", str(model), "--out", str(run / "checkpoint-2" / "ppo")],
                                              run, "is inside"),
            "sft --out a model folder without weights": ([*sft_model, str(tmp_path / "bare")], tmp_path / "bare",
                                                         "not a run's"),
            "sft --out a folder with another config.json": ([*sft_model, str(tmp_path / "data")], tmp_path / "data",
                                                            "not a run's")}[kind]


@pytest.mark.parametrize("kind", ["sft --out == --model", "sft --out a link to --model", "ppo --out == --init",
                                  "ppo --out == --model", "ppo --out a shipped init", "sft --out inside a shipped init",
                                  "sft --out a run's final", "ppo --out inside a checkpoint",
                                  "sft --out a model folder without weights",
                                  "sft --out a folder with another config.json"])
def test_out_is_never_a_model_folder(work, tmp_path, kind, capsys):
    (script, *argv), folder, fragment = _clash(kind, work, tmp_path)
    before = snapshot(folder)
    refused(lambda: {"sft": sft.main, "ppo": ppo.main}[script](argv), capsys, "--out", fragment)
    assert snapshot(folder) == before


def test_a_run_folder_itself_is_accepted_for_resume(work, tmp_path):
    run = copy_run(work, tmp_path)
    assert cli_lib.run_folder_problem(run, {"--model": str(work["model"])}) is None


# ---------------------------------------------------------------------------------------------
# 10. --init (ppo.py) or --model (sft.py) of another task: refused before any model loads
# ---------------------------------------------------------------------------------------------
INITS = ROOT / "inits"


@pytest.mark.parametrize("argv,fragments", [
    (["ppo", "--env", "generalpoints", "--init", str(INITS / "virl-l")], ["trained on virl", "card.json"]),
    (["ppo", "--env", "virl", "--init", str(INITS / "gp-l")], ["trained on generalpoints", "card.json"]),
    (["ppo", "--env", "virl", "--init", "{gp_run}/final"], ["trained on generalpoints", "gp-run/config.json"]),
    (["ppo", "--env", "generalpoints", "--init", "{virl_run}/checkpoint-1"], ["trained on virl", "not on this run's"]),
    (["ppo", "--env", "generalpoints", "--vision", "--init", "{gp_run}/checkpoint-2"], ["(vision)"]),
    (["sft", "--env", "virl", "--model", "{gp_run}/final"], ["trained on generalpoints"]),
    (["sft", "--env", "virl", "--model", "{gp_run}/final", "--init-flops", "0"], ["trained on generalpoints"]),
    (["sft", "--env", "generalpoints", "--model", str(INITS / "virl-l")], ["trained on virl"]),
])
def test_init_of_another_task(work, argv, fragments, capsys, tmp_path):
    script, *argv = [a.format(**{k: v for k, v in work.items() if isinstance(v, Path)}) for a in argv]
    out = tmp_path / "never"
    refused(lambda: {"sft": sft.parse_args, "ppo": ppo.parse_args}[script]([*argv, "--out", str(out)]),
            capsys, *fragments)
    assert not out.exists()


def test_init_of_the_same_task_or_recording_nothing_is_accepted(work, tmp_path):
    out = ["--out", str(tmp_path / "run")]
    args = ppo.parse_args(["--env", "generalpoints", "--init", str(work["gp_run"] / "checkpoint-1"), *out])
    state = json.loads((work["gp_run"] / "checkpoint-1" / "trainer_state.json").read_text())
    assert args.flops_init == state["flops"] > 0  # its compute counted as the init's
    assert ppo.parse_args(["--env", "virl", "--init", str(work["model"]), *out]).flops_init == 0.0  # a plain model
    assert sft.parse_args(["--env", "virl", "--model", str(INITS / "virl-l"), *out]).init_flops > 0


# ---------------------------------------------------------------------------------------------
# 12. files readable as the umask says; a file that may not be read is named as such
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_saved_files_follow_the_umask(work, tmp_path, umask):
    old = os.umask(umask)
    try:
        work["policy"].save(str(tmp_path / "m"))
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in (tmp_path / "m").iterdir()}
    assert set(modes.values()) == {0o666 & ~umask}, modes


def test_every_checkpoint_file_is_readable_by_others(work):
    modes = {p.name: p.stat().st_mode & 0o777 for p in (work["gp_run"] / "checkpoint-2").iterdir()}
    assert all(mode & 0o044 == 0o044 for mode in modes.values()), modes  # under the usual umask 022


def test_a_model_file_that_may_not_be_read_says_so(work, tmp_path):
    """The real thing: a 0600 model.safetensors of another user, read by a process without root's
    capability to read it anyway (setpriv); transformers alone says "No such file or directory"."""
    if not shutil.which("setpriv") or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to drop the capability of reading others' files")
    model = tmp_path / "model"
    shutil.copytree(work["model"], model)
    os.chown(model / "model.safetensors", 65534, 65534)
    os.chmod(model / "model.safetensors", 0o600)
    done = subprocess.run(["setpriv", "--bounding-set=-dac_override,-dac_read_search", sys.executable,
                           "evaluate.py", "--env", "generalpoints", "--model", str(model), "--episodes", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and "setpriv" in done.stderr:
        pytest.skip(f"setpriv cannot drop capabilities here: {done.stderr.strip()}")
    assert done.returncode != 0
    line = one_line(done.stderr, "model.safetensors", "permission denied", "-rw-------")
    assert "No such file" not in line


def test_unreadable_files_named_in_process(work, tmp_path, monkeypatch, capsys):
    """As root nothing is unreadable: the open() of one file raises PermissionError instead."""
    real_open = open

    def deny(name):
        def fake(file, *a, **kw):
            if Path(file).name == name:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
            return real_open(file, *a, **kw)
        return fake

    monkeypatch.setattr(cli_lib, "open", deny("tokenizer.json"), raising=False)
    assert "tokenizer.json cannot be read: permission denied" in cli_lib.unreadable(work["model"])
    data = tmp_path / "data.json"
    data.write_text("[]")
    real_read = Path.read_text
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **kw: deny("data.json")(self) if self == data
                        else real_read(self, *a, **kw))
    refused(lambda: sft.main(["--model", str(work["model"]), *FAST, "--data", str(data), "--out", str(tmp_path / "r")]),
            capsys, "--data", "cannot be read", "Permission denied")


def test_resume_from_checkpoints_that_may_not_be_read(work, tmp_path, monkeypatch, capsys):
    """Not "corrupt or truncated": permission denied, and the run folder as it was."""
    run = copy_run(work, tmp_path)
    before = snapshot(run)
    real_open = checkpoints.safe_open

    def safe_open(file, *a, **kw):
        if Path(file).name == "model.safetensors":
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(file))
        return real_open(file, *a, **kw)
    monkeypatch.setattr(checkpoints, "safe_open", safe_open)
    refused(lambda: sft.main(["--model", str(work["model"]), "--steps", "3", *FAST, "--out", str(run), "--resume"]),
            capsys, "no intact checkpoint", "checkpoint-2/model.safetensors cannot be read: permission denied",
            "checkpoint-1/model.safetensors cannot be read")
    assert snapshot(run) == before


# ---------------------------------------------------------------------------------------------
# other hostile files: --data a folder, a FIFO, an empty file, a device
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind,fragment", [("a folder", "not a regular file"), ("a FIFO", "not a regular file"),
                                           ("/dev/zero", "not a regular file"), ("an empty file", "not valid JSON"),
                                           ("a missing file", "no such file")])
def test_data_that_is_not_a_data_file(work, tmp_path, kind, fragment, capsys):
    data = {"a folder": tmp_path, "a FIFO": tmp_path / "fifo", "/dev/zero": Path("/dev/zero"),
            "an empty file": tmp_path / "empty.json", "a missing file": tmp_path / "gone.json"}[kind]
    if kind == "an empty file":
        data.write_text("")
    with fifo(data) if kind == "a FIFO" else nullcontext():
        refused(lambda: sft.main(["--model", str(work["model"]), *FAST, "--data", str(data),
                                  "--out", str(tmp_path / "run")]), capsys, "--data", fragment)
    assert not (tmp_path / "run").exists()


def test_plots_of_a_run_folder_written_only_in_part(work, tmp_path, capsys):
    """A run whose metrics.jsonl a full disk cut mid-line still plots, from the whole lines."""
    run = plot_run(tmp_path / "run", '{"step": 0, "flops": 0, "eval": {"id": {"success": 0.5}}}', '{"step": 1, "fl')
    plots.main([str(run), "--out", str(tmp_path / "figures")])
    assert (tmp_path / "figures" / "headline.png").is_file()
