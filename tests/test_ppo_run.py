"""ppo.py end to end: the real script with tiny settings on every task variant, a NaN stop,
kill-and-resume, and a 2-process gloo torchrun run (FSDP on CPU, ~15 s).

The runs start from a freshly saved tiny checkpoint (--init), which skips the SFT warm start;
the untrained model writes garbage, which is the point: every output must be a verifier outcome.
"""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import checkpoints
import ppo
from policy import load_policy

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--updates", "2", "--num-envs", "4", "--rollout-steps", "8", "--minibatch-size", "4",
        "--grad-accum", "2", "--ppo-epochs", "1", "--eval-episodes", "2", "--max-attempts", "2",
        "--max-new-tokens", "8", "--save-every", "1"]


@pytest.fixture(scope="module")
def init_ckpt(tmp_path_factory):
    path = tmp_path_factory.mktemp("init") / "tiny"
    load_policy("tiny", seed=0).save(str(path))
    return str(path)


def run_ppo(args, timeout=300):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, "ppo.py", *args], cwd=ROOT, env=env, timeout=timeout,
                          capture_output=True, text=True)


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("env,vision", [("generalpoints", False), ("generalpoints", True),
                                        ("virl", False), ("virl", True)],
                         ids=["gp-l", "gp-vl", "virl-l", "virl-vl"])
def test_end_to_end_run_writes_its_logs(env, vision, init_ckpt, tmp_path):
    out = tmp_path / "run"
    flags = ["--env", env, "--init", init_ckpt, "--out", str(out), *TINY] + (["--vision"] if vision else [])
    result = run_ppo(flags)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "update 2/2" in result.stdout and "sample 1" in result.stdout and "| rollout: success" in result.stdout
    assert "learned (update 0 -> 2, greedy then sampled): id " in result.stdout.splitlines()[-1]  # the last line
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == "ppo" and config["env"] == env and config["vision"] is vision
    lines = read_jsonl(out / "metrics.jsonl")
    evals = [r for r in lines if "eval" in r]
    train = [r for r in lines if "eval" not in r]
    assert [r["step"] for r in evals] == [0, 2] and [r["step"] for r in train] == [1, 2]
    splits = {"id", "ood-rule"} | ({"ood-visual"} if vision else set())
    assert set(evals[0]["eval"]) == splits
    # the sampled evaluation beside the greedy one: 3 seeded passes over the same episodes
    assert set(evals[0]["eval_sampled"]) == splits
    greedy, sampled = evals[0]["eval"], evals[0]["eval_sampled"]
    assert all(m["samples"] == 3 and m["n"] == 3 * greedy[s]["n"] for s, m in sampled.items())
    assert evals[0]["flops"] < train[0]["flops"] < train[1]["flops"] == evals[1]["flops"]
    for key in ("reward", "outcomes", "value_loss", "policy_loss", "approx_kl", "clipfrac",
                "explained_variance", "response_len", "cut_off", "tokens_per_s", "lr", "grad_norm"):
        assert key in train[0]
    assert sum(train[0]["outcomes"].values()) == pytest.approx(1.0)
    samples = read_jsonl(out / "samples.jsonl")
    assert samples and all(s["attempts"] and "feedback" in s["attempts"][0] for s in samples)
    assert (out / "checkpoint-2" / "value_head.safetensors").exists()
    assert list(out.glob("*.png"))


def test_nan_loss_stops_with_the_last_checkpoint_intact(init_ckpt, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    calls = []
    real_update = ppo.ppo_update

    def update_then_fail(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise ppo.NonFiniteLoss("loss is nan")
        return real_update(*args, **kwargs)

    monkeypatch.setattr(ppo, "ppo_update", update_then_fail)
    with pytest.raises(SystemExit) as stop:
        ppo.main(["--init", init_ckpt, "--out", str(out), *TINY, "--eval-episodes", "1"])
    assert "non-finite PPO loss at update 2" in str(stop.value)
    assert "checkpoint-1" in str(stop.value)
    assert (out / "checkpoint-1" / "trainer_state.json").exists()
    assert not (out / "checkpoint-2").exists()


def test_kill_and_resume(init_ckpt, tmp_path):
    out = tmp_path / "run"
    flags = ["--init", init_ckpt, "--out", str(out), *TINY, "--updates", "4", "--eval-episodes", "1"]
    proc = subprocess.Popen([sys.executable, "ppo.py", *flags], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not (out / "checkpoint-2" / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, "the run ended before its 2nd checkpoint"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)  # killed mid-run, without any chance to clean up
    proc.wait()
    done = json.loads((Path(checkpoints.latest(out)) / "trainer_state.json").read_text())["step"]
    assert done < 4
    again = run_ppo(flags)
    assert again.returncode != 0 and "--resume" in again.stderr  # never overwrites a run silently
    result = run_ppo(flags + ["--resume"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming from {out / f'checkpoint-{done}'}" in result.stdout
    train = [r["step"] for r in read_jsonl(out / "metrics.jsonl") if "eval" not in r]
    assert train == [1, 2, 3, 4]  # the killed run's lines after the checkpoint are dropped
    assert json.loads((out / "final" / "trainer_state.json").read_text())["step"] == 4


def test_torchrun_two_processes_gloo(init_ckpt, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "ppo.py", "--init", init_ckpt, "--out", str(out), "--kl-coef", "0.1", *TINY]  # + a sharded reference
    result = subprocess.run(cmd, cwd=ROOT, env=env, timeout=600, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("update 2/2") == 1  # rank 0 prints
    config = json.loads((out / "config.json").read_text())
    assert config["world_size"] == 2
    train = [r for r in read_jsonl(out / "metrics.jsonl") if "eval" not in r]
    assert [r["step"] for r in train] == [1, 2]
    assert all(r["kl_ref"] >= 0 for r in train) and train[-1]["kl_ref"] > 0  # the KL to the initial policy
    assert (out / "checkpoint-2" / "optimizer.pt").exists()
