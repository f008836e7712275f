"""A run's life under faults (issue 27: Ctrl-C, kill -9 at any point, resumes that change things,
a run folder of the other method): one line and a non-zero exit, or a clean finish, never a
traceback, and a resumed run whose logged steps and evaluations are each present exactly once.

Real signals go to the real command lines (`python sft.py ...`, side by side in threads: each pays
~7 s of imports); the many points a run can die at are reached in-process by making one call
raise, at its n-th time, KeyboardInterrupt (what Ctrl-C raises) or `Killed` (kill -9: nothing
catches it and nothing cleans up), then --resume runs until the run is finished. SFT resumes are
bit-identical, so its log must equal an uninterrupted run's; PPO's deal new hands on resume, so
its steps, evaluations and samples are counted. Tiny model, tokenizer trained on 16 prompts.
"""
import collections
import hashlib
import io
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from tqdm import tqdm

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import checkpoints  # noqa: E402
import cli  # noqa: E402
import evaluate  # noqa: E402
import generalpoints  # noqa: E402
import plots  # noqa: E402
import policy  # noqa: E402
import ppo  # noqa: E402
import sft  # noqa: E402
from test_bad_input import one_line, refused, snapshot  # noqa: E402  (round one's checks)

SFT = ["--batch-size", "1", "--steps", "4", "--eval-every", "2", "--eval-episodes", "1", "--eval-splits", "id",
       "--eval-max-new-tokens", "4", "--log-every", "1", "--save-every", "1", "--threads", "1"]
PPO = ["--num-envs", "2", "--rollout-steps", "2", "--minibatch-size", "2", "--grad-accum", "1", "--ppo-epochs", "1",
       "--eval-episodes", "1", "--eval-splits", "id", "--max-attempts", "1", "--max-new-tokens", "4",
       "--updates", "3", "--eval-every", "2", "--save-every", "1", "--eval-samples", "1", "--threads", "1"]
MAIN = {"sft": sft.main, "ppo": ppo.main}


class Killed(BaseException):
    """kill -9, in-process: no handler catches it (cli.main neither), nothing is cleaned up."""


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def records(out, name="metrics.jsonl"):
    return [json.loads(line) for line in (Path(out) / name).read_text().splitlines()]


def config(out):
    return json.loads((Path(out) / "config.json").read_text())


def steps(out):
    """(the training lines' steps, the evaluations' steps), in the order logged."""
    logged = records(out)
    return [r["step"] for r in logged if "eval" not in r], [r["step"] for r in logged if "eval" in r]


def weights(out, step):
    return hashlib.sha256((Path(out) / f"checkpoint-{step}" / "model.safetensors").read_bytes()).hexdigest()


def interrupted(call, capsys, out):
    """A Ctrl-C in `call` (cli.main): exit status 130 and one line naming the last logged step, the
    newest checkpoint and the command that continues; returns that command's flags."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        call()
    assert stop.value.code == 130
    last = checkpoints.latest(out)
    line = one_line(capsys.readouterr().err, "interrupted (Ctrl-C) after step", str(out),
                    f"newest checkpoint is {last}; continue with:" if last else "no checkpoint yet")
    command = shlex.split(line.split("with: ", 1)[1])
    assert command[0] == "python" and command.count("--resume") == 1
    return command[2:]  # what follows `python <script>` (in-process: pytest's name)


def cli_run(*argv):
    """A command line started as a user starts it, from the repository root."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.Popen([sys.executable, *map(str, argv)], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def signalled(proc, ready, sig, timeout=240):
    """Send `sig` to `proc` once ready() holds; (return code, stderr)."""
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline, "the run never got there"
        time.sleep(0.05)
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=300), proc.stderr.read()
    except subprocess.TimeoutExpired:  # a hang: fail with what it said
        proc.kill()
        raise AssertionError(f"still running 300 s after {sig!r}: {proc.communicate()[1][-3000:]}") from None


def n_lines(out, n):
    path = Path(out) / "metrics.jsonl"
    return lambda: path.is_file() and path.read_text().count("\n") >= n


# ---------------------------------------------------------------------------------------------
# fixtures: a tiny model, an uninterrupted SFT and PPO run to compare with
# ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("life")
    examples = generalpoints.sft_examples(16, seed=0)
    corpus = [" ".join(part.get("text", "") for m in ex["messages"] for part in m["content"]) for ex in examples]
    model = root / "model"
    policy.load_policy("tiny", corpus=corpus).save(str(model))
    flags = {"sft": [*SFT, "--model", str(model)], "ppo": [*PPO, "--init", str(model)]}
    for method in ("sft", "ppo"):
        MAIN[method]([*flags[method], "--out", str(root / method)])
    return dict(root=root, model=model, flags=flags, sft=root / "sft", ppo=root / "ppo")


def copy_run(work, method, tmp_path):
    run = tmp_path / f"{method}-run"
    shutil.copytree(work[method], run, symlinks=True)
    return run


def assert_complete(work, method, out):
    """Every step and evaluation of the uninterrupted run exactly once, the final one included, the
    final checkpoint linked, nothing half-written left; SFT: the same numbers and weights."""
    ref = work[method]
    assert steps(out) == steps(ref)
    last = steps(ref)[0][-1]
    assert (Path(out) / "final").resolve() == (Path(out) / f"checkpoint-{last}").resolve()
    assert not list(Path(out).glob(".tmp-*")) and not list(Path(out).glob(".*.tmp"))
    if method == "sft":  # bit-identical resumes: the same losses, evaluations, weights
        def numbers(run):
            return [(r.get("loss"), r.get("eval"), r["flops"]) for r in records(run)]
        got, want = numbers(out), numbers(ref)
        assert [g[1:] for g in got] == [w[1:] for w in want]
        assert [g[0] for g in got] == pytest.approx([w[0] for w in want], abs=1e-6)
        assert weights(out, last) == weights(ref, last)
    else:  # new hands after a resume: two samples per update, as many as the uninterrupted run's
        def count(run):
            return collections.Counter(r["step"] for r in records(run, "samples.jsonl"))
        assert count(out) == count(ref)


# ---------------------------------------------------------------------------------------------
# kinds 1 and 5, and "at any point": die there, then --resume until finished
# ---------------------------------------------------------------------------------------------
def dies(monkeypatch, owner, name, nth, how, after=False, half_line=False):
    """Make owner.name raise `how` at its nth call: before it runs, or after (after=True); with
    half_line (RunLogger.log) half of its record is written first, as kill -9 mid-write leaves."""
    real, calls = getattr(owner, name), []

    def call(*args, **kwargs):
        calls.append(1)
        if len(calls) != nth:
            return real(*args, **kwargs)
        if half_line:
            self, record = args[0], args[1]
            with open(self.out_dir / (args[2] if len(args) > 2 else kwargs.get("name", "metrics.jsonl")), "a") as f:
                f.write(json.dumps(record)[:20])
        if after:
            real(*args, **kwargs)
        raise how()

    monkeypatch.setattr(owner, name, call)


# (owner, attribute, n-th call, after); SFT: 4 steps, evaluations at 0, 2, 4, a checkpoint every step
SFT_POINTS = {
    "initial-eval": (sft, "evaluate", 1, False),
    "eval-before-a-checkpoint": (sft, "evaluate", 2, False),
    "between-eval-and-checkpoint": (checkpoints, "save", 2, False),
    "right-after-a-checkpoint": (checkpoints, "save", 2, True),
    "mid-checkpoint-write": (policy.Policy, "save", 3, False),
    "after-a-log-line": (checkpoints.RunLogger, "log", 3, True),
    "half-a-log-line": (checkpoints.RunLogger, "log", 4, "half"),
    "final-eval": (sft, "evaluate", 3, False),
    "between-final-eval-and-checkpoint": (checkpoints, "save", 4, False),
    "after-the-final-checkpoint": (checkpoints, "save", 4, True),
    "writing-config-on-resume": (checkpoints, "write_atomic", 1, False),
}
# PPO: 3 updates, evaluations at 0 (greedy + sampled), 2, 3 (greedy + sampled), a checkpoint every update
PPO_POINTS = {
    "initial-eval": (evaluate, "evaluate", 1, False),
    "initial-sampled-eval": (evaluate, "evaluate", 2, False),
    "eval-before-a-checkpoint": (evaluate, "evaluate", 3, False),
    "between-eval-and-checkpoint": (checkpoints, "save", 2, False),
    "right-after-a-checkpoint": (checkpoints, "save", 1, True),
    "mid-checkpoint-write": (policy.Policy, "save", 2, False),
    "after-a-log-line": (checkpoints.RunLogger, "log", 4, True),
    "half-a-log-line": (checkpoints.RunLogger, "log", 6, "half"),
    "final-sampled-eval": (evaluate, "evaluate", 5, False),
    "between-final-eval-and-checkpoint": (checkpoints, "save", 3, False),
    "plotting-at-the-end": (plots, "plot_run", 1, False),
    "writing-samples-on-resume": (checkpoints, "write_atomic", 2, True),
}
CASES = [("sft", point, how) for i, point in enumerate(SFT_POINTS) for how in (["ctrl-c", "kill"][i % 2],)]
CASES += [("ppo", point, how) for i, point in enumerate(PPO_POINTS) for how in (["kill", "ctrl-c"][i % 2],)]
CASES += [("sft", "between-eval-and-checkpoint", "kill"), ("ppo", "right-after-a-checkpoint", "ctrl-c")]


@pytest.mark.parametrize("method,point,how", CASES, ids=[f"{m}-{p}-{h}" for m, p, h in CASES])
def test_a_run_stopped_at_any_point_resumes_to_the_same_log(work, tmp_path, monkeypatch, capsys, method, point,
                                                             how):
    out = tmp_path / "run"
    argv = [*work["flags"][method], "--out", str(out)]
    owner, name, nth, after = (SFT_POINTS if method == "sft" else PPO_POINTS)[point]
    exc = KeyboardInterrupt if how == "ctrl-c" else Killed
    on_resume = name == "write_atomic"  # the first run is stopped after its first checkpoint, the resume here
    deaths = [(checkpoints, "save", 1, True)] * on_resume + [(owner, name, nth, after)]
    for k, (where, attribute, n, when) in enumerate(deaths):
        with monkeypatch.context() as m:
            dies(m, where, attribute, n, exc, after=when is True, half_line=when == "half")
            again = argv + ["--resume"] * (k > 0)
            if exc is KeyboardInterrupt:
                flags = interrupted(lambda: MAIN[method](again), capsys, out)
                assert flags == argv + ["--resume"]  # the printed command continues this run
            else:
                with pytest.raises(Killed):
                    MAIN[method](again)
    MAIN[method](argv + ["--resume"])
    assert_complete(work, method, out)
    resumed_at = [r["step"] for r in config(out).get("resumes", [])]  # config.json: a record of each resume
    assert resumed_at == sorted(resumed_at) and len(resumed_at) <= len(deaths)


# ---------------------------------------------------------------------------------------------
# kind 1 and "at any point" with real signals, on the real command lines, side by side
# ---------------------------------------------------------------------------------------------
def test_real_signals_at_any_point_then_resume(work, tmp_path, capsys):
    """SIGINT to `python sft.py` and `python ppo.py` mid-run, SIGKILL to ppo.py right after a
    checkpoint appears (ppo.py used to evaluate after its checkpoint: a kill between the two lost
    that evaluation for good); then --resume to the end. The runs are long and cut short on resume
    by fewer --steps/--updates, which a resume may set, above the checkpoint's step."""
    model = str(work["model"])
    cases = {  # name: (script, flags, when, signal)
        "sft-ctrl-c-mid-run": ("sft.py", [*SFT, "--model", model, "--steps", "1000", "--save-every", "2"],
                               lambda out: checkpoints.latest(out) and n_lines(out, 5)(), signal.SIGINT),
        "ppo-ctrl-c-mid-run": ("ppo.py", [*PPO, "--init", model, "--updates", "1000", "--eval-every", "1"],
                               lambda out: n_lines(out, 4)(), signal.SIGINT),
        "ppo-kill-right-after-a-checkpoint": ("ppo.py", [*PPO, "--init", model, "--updates", "1000", "--eval-every",
                                                         "1"], lambda out: checkpoints.latest(out), signal.SIGKILL),
    }

    def one(name):
        script, flags, when, sig = cases[name]
        out = tmp_path / name
        proc = cli_run(script, *flags, "--out", out)
        return signalled(proc, lambda: when(out), sig)

    with ThreadPoolExecutor(len(cases)) as pool:
        results = dict(zip(cases, pool.map(one, cases)))
    for name, (rc, err) in results.items():
        script, flags, _, sig = cases[name]
        out = tmp_path / name
        if sig == signal.SIGINT:
            assert rc == 130, err
            last = checkpoints.latest(out)
            line = one_line(err, "interrupted (Ctrl-C)", f"newest checkpoint is {last}" if last else "no checkpoint")
            argv = shlex.split(line.split("with: ", 1)[1])
            assert argv[:2] == ["python", script] and argv[2:] == [*flags, "--out", str(out), "--resume"]
        else:
            assert rc == -signal.SIGKILL
            argv = ["python", script, *flags, "--out", str(out), "--resume"]
        done = json.loads((Path(checkpoints.latest(out)) / "trainer_state.json").read_text())["step"] \
            if checkpoints.latest(out) else 0
        end = done + 2
        MAIN[script[:3]](argv[2:] + ["--steps" if script == "sft.py" else "--updates", str(end)])
        train, evals = steps(out)
        assert train == list(range(1, end + 1)), name  # each step exactly once
        every = int(flags[len(flags) - flags[::-1].index("--eval-every")])  # the last --eval-every's value
        want = sorted({0, end, *range(every, end + 1, every)}) if every else [] if script == "sft.py" else [0, end]
        assert evals == want, name  # each evaluation exactly once, the final one included
        assert (out / "final").resolve().name == f"checkpoint-{end}"
        changed = config(out)["resumes"][-1].get("changed", {}) if done else {}
        assert not done or changed["steps" if script == "sft.py" else "updates"] == [1000, end]


def test_ctrl_c_while_a_script_still_imports_torch(tmp_path):
    """SIGINT 1 s after `python sft.py` / `python ppo.py` start, while they import torch (cli.py,
    imported first, holds the signal until main() runs): one line, exit status 130, nothing
    written. On a machine fast enough to be in main() already, main()'s own Ctrl-C line is as good."""
    cases = {"sft.py": ["--out", tmp_path / "sft"], "ppo.py": ["--out", tmp_path / "ppo"]}

    def one(script):
        proc = cli_run(script, *cases[script])
        start = time.time()
        return signalled(proc, lambda: time.time() > start + 1.0, signal.SIGINT)

    with ThreadPoolExecutor(len(cases)) as pool:
        results = dict(zip(cases, pool.map(one, cases)))
    for script, (rc, err) in results.items():
        assert rc == 130, (script, err)
        line = one_line(err, "interrupted (Ctrl-C)")
        if "while starting" in line:
            assert line == "interrupted (Ctrl-C) while starting; nothing was written"
            assert not any(tmp_path.iterdir()), script  # nothing was written


# ---------------------------------------------------------------------------------------------
# kind 1 elsewhere: every CLI's Ctrl-C is one line and exit status 130
# ---------------------------------------------------------------------------------------------
def test_ctrl_c_while_the_model_loads_changes_nothing(work, tmp_path, monkeypatch, capsys):
    run = copy_run(work, "sft", tmp_path)
    before = snapshot(run)

    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sft, "load_policy", ctrl_c)
    flags = interrupted(lambda: sft.main([*work["flags"]["sft"], "--steps", "6", "--out", str(run), "--resume"]),
                        capsys, run)
    assert snapshot(run) == before and flags[-1] == "--resume" and flags.count("--resume") == 1
    fresh = tmp_path / "fresh"
    interrupted(lambda: sft.main([*work["flags"]["sft"], "--out", str(fresh)]), capsys, fresh)
    assert not fresh.exists()  # nothing written before the model loads


@pytest.mark.parametrize("script", ["evaluate", "plots", "headline"])
def test_ctrl_c_in_the_other_command_lines_is_one_line(work, monkeypatch, capsys, script):
    def ctrl_c(*args, **kwargs):
        raise KeyboardInterrupt

    if script == "evaluate":  # `python evaluate.py` runs cli.main(main, lambda argv: argv), as here
        monkeypatch.setattr(evaluate, "evaluate", ctrl_c)
        call = lambda: cli.main(evaluate.main, lambda argv: argv,  # noqa: E731
                                ["--env", "generalpoints", "--model", "random", "--episodes", "1"])
    elif script == "plots":
        monkeypatch.setattr(plots, "plot_runs", ctrl_c)
        call = lambda: cli.main(plots.main, lambda argv: argv, [str(work["sft"]), "--out", "/tmp/x"])  # noqa: E731
    else:
        import importlib.util
        spec = importlib.util.spec_from_file_location("headline", ROOT / "experiments" / "headline.py")
        headline = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(headline)
        monkeypatch.setattr(headline, "run", ctrl_c)
        call = lambda: headline.main([])  # noqa: E731
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        call()
    assert stop.value.code == 130
    assert one_line(capsys.readouterr().err) == "interrupted (Ctrl-C)"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the caller's Ctrl-C restored


def test_ctrl_c_clears_a_progress_bar_before_its_line(capsys):
    """On a terminal sft.py and ppo.py show a tqdm bar; the Ctrl-C line must not follow it on its line."""
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()

    def run(args):
        bar = tqdm(total=10, file=terminal, ncols=60, desc="sft")
        bar.update(3)
        bar.refresh()
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as stop:
        cli.main(run, lambda argv: argv, [])
    assert stop.value.code == 130 and one_line(capsys.readouterr().err) == "interrupted (Ctrl-C)"
    shown = terminal.getvalue()
    assert "3/10" in shown and shown.rsplit("3/10", 1)[1].split("\r", 1)[1].strip() == ""  # then cleared


# ---------------------------------------------------------------------------------------------
# kind 2: --resume with changed flags: applied and recorded truly, or refused naming the flag
# ---------------------------------------------------------------------------------------------
REFUSED = {
    "sft": [(["--lr", "0.001"], "--lr (0.0001 -> 0.001)"), (["--batch-size", "2"], "different batch_size"),
            (["--warmup-frac", "0.5"], "--warmup-frac"), (["--weight-decay", "0.1"], "--weight-decay"),
            (["--max-grad-norm", "0.5"], "--max-grad-norm"), (["--eval-episodes", "2"], "--eval-episodes"),
            (["--eval-splits", "id,ood-rule"], "--eval-splits"), (["--eval-max-new-tokens", "8"], "--eval-max-new"),
            (["--steps", "3"], "--steps (4 -> 3)"), (["--model", "tiny"], "--model"),
            (["--revise", "0.5"], "different revise")],
    "ppo": [(["--lr", "0.001"], "--lr (0.0001 -> 0.001)"), (["--num-envs", "1"], "--num-envs"),
            (["--kl-coef", "0"], "--kl-coef"), (["--temperature", "0.9"], "--temperature"),
            (["--gamma", "0.9"], "--gamma"), (["--clip-coef", "0.2"], "--clip-coef"),
            (["--updates", "2"], "--updates (3 -> 2)"), (["--max-new-tokens", "5"], "--max-new-tokens"),
            (["--eval-temperature", "0.5"], "--eval-temperature"), (["--critic", "shared"], "--critic"),
            (["--seed", "1"], "different seed")],
}
REFUSED_CASES = [(m, flags, why) for m in REFUSED for flags, why in REFUSED[m]]


@pytest.mark.parametrize("method,flags,why", REFUSED_CASES,
                         ids=[f"{m}{''.join(f)}" for m, f, _ in REFUSED_CASES])
def test_resume_refuses_a_changed_setting_in_one_line(work, capsys, method, flags, why):
    run = work[method]
    before = snapshot(run)
    line = refused(lambda: MAIN[method]([*work["flags"][method], "--out", str(run), "--resume", *flags]),
                   capsys, why)
    assert "different" in why or ("cannot change" in line and "may change only" in line)
    assert snapshot(run) == before


def test_resume_to_the_checkpoints_own_step_is_refused(work, tmp_path, capsys):
    """A run killed after checkpoint-3 of 4 cannot be 'finished' at 3: it would end without its final
    evaluation; more steps than 3, or the run's own 4, continue it."""
    run = copy_run(work, "sft", tmp_path)
    shutil.rmtree(run / "checkpoint-4")
    (run / "final").unlink()
    before = snapshot(run)
    refused(lambda: sft.main([*work["flags"]["sft"], "--out", str(run), "--resume", "--steps", "3"]),
            capsys, "--steps (4 -> 3)", "above the checkpoint's 3")
    assert snapshot(run) == before


@pytest.mark.parametrize("method", ["sft", "ppo"])
def test_resume_with_more_steps_and_a_lower_lr_applies_and_records_them(work, tmp_path, method):
    """The lower lr is the one the optimizer uses from the resumed step on (the schedule's
    multiplier at that step times it), the log says so, config.json holds the new values and a
    record of the resume: its step and each change, before -> after."""
    more, lr = ("--steps", 6) if method == "sft" else ("--updates", 5), 5e-5
    key = more[0][2:]
    runs = {}
    for name, extra in (("lower", ["--lr", str(lr)]), ("same", [])):
        runs[name] = copy_run(work, method, tmp_path / name)
        MAIN[method]([*work["flags"][method], "--out", str(runs[name]), "--resume", more[0], str(more[1]), *extra])
    done = steps(work[method])[0][-1]
    train, evals = steps(runs["lower"])
    assert train == list(range(1, more[1] + 1)) and evals[-1] == more[1] and evals.count(done) == 1
    # the lr each step used: the new run's schedule over its new length, from the resumed step on
    dummy = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    if method == "sft":
        schedule = sft.cosine_schedule(dummy, more[1], 0.03)
    else:
        horizon = max(200, more[1])
        schedule = sft.cosine_schedule(dummy, horizon, 3 / horizon)
    expected = []
    for _ in range(more[1]):
        dummy.step()
        schedule.step()
        expected.append(schedule.get_last_lr()[0])
    logged = {r["step"]: r["lr"] for r in records(runs["lower"]) if "lr" in r}
    assert [logged[s] for s in range(done + 1, more[1] + 1)] == pytest.approx(expected[done:], rel=1e-12)
    assert weights(runs["lower"], more[1]) != weights(runs["same"], more[1])  # the optimizer used it
    saved = config(runs["lower"])
    assert saved["lr"] == lr and saved[key] == more[1]
    assert saved["resumes"] == [{"step": done, "changed": {key: [done, more[1]], "lr": [1e-4, lr]}}]
    assert config(runs["same"])["resumes"] == [{"step": done, "changed": {key: [done, more[1]]}}]


def test_resume_may_change_the_cadence_and_records_it(work, tmp_path):
    run = copy_run(work, "sft", tmp_path)
    sft.main([*work["flags"]["sft"], "--out", str(run), "--resume", "--steps", "7", "--eval-every", "3",
              "--save-every", "3", "--log-every", "2"])
    train, evals = steps(run)
    assert train == [1, 2, 3, 4, 6, 7] and evals == [0, 2, 4, 6, 7]
    assert config(run)["resumes"][-1]["changed"] == {"steps": [4, 7], "eval_every": [2, 3], "save_every": [1, 3],
                                                     "log_every": [1, 2]}
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-6", "checkpoint-7"]


def test_resume_with_nothing_changed_only_records_the_resume(work, tmp_path):
    run = copy_run(work, "ppo", tmp_path)
    logs = {name: (run / name).read_text() for name in ("metrics.jsonl", "samples.jsonl")}
    ppo.main([*work["flags"]["ppo"], "--out", str(run), "--resume"])
    assert {name: (run / name).read_text() for name in logs} == logs
    saved = config(run)
    assert saved["resumes"] == [{"step": 3}]  # and the settings as they were (the folder was copied: --out)
    assert {**saved, "resumes": 0, "out": 0} == {**config(work["ppo"]), "resume": True, "resumes": 0, "out": 0}


# ---------------------------------------------------------------------------------------------
# kind 9: a run folder of the other method is refused before anything is written
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method,resume", [("sft", True), ("ppo", True), ("sft", False), ("ppo", False)],
                         ids=["sft-resumes-ppo", "ppo-resumes-sft", "sft-into-ppo", "ppo-into-sft"])
def test_a_run_folder_of_the_other_method_is_refused(work, tmp_path, capsys, method, resume):
    other = "ppo" if method == "sft" else "sft"
    run = copy_run(work, other, tmp_path)
    if not resume:  # the other run killed before its first checkpoint: its config and log only
        for folder in [*run.glob("checkpoint-*"), run / "final"]:
            folder.unlink() if folder.is_symlink() else shutil.rmtree(folder)
    before = snapshot(run)
    line = refused(lambda: MAIN[method]([*work["flags"][method], "--out", str(run), *["--resume"] * resume]),
                   capsys, f"is a {other} run folder", f"not one of {method}.py")
    assert (f"resume it with {other}.py" if resume else "choose another --out") in line
    assert snapshot(run) == before


def test_check_same_run_reads_json_values_as_they_were_written(work, tmp_path):
    """A tuple flag (--preset paper's image size) is a list in config.json: the same value."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"method": "sft", "image_size": [1200, 1200], "lr": 1e-4}))
    args = sft.parse_args(["--out", str(run), "--lr", "1e-4"])
    args.image_size = (1200, 1200)
    checkpoints.check_same_run(run, args, ("env",), done=2)  # no RunError
    args.image_size = (600, 600)
    with pytest.raises(cli.RunError, match=r"--image-size \(\[1200, 1200\] -> \[600, 600\]\)"):
        checkpoints.check_same_run(run, args, ("env",), done=2)
