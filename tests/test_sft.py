"""sft.py: the SFT loss and its labels, learning, FSDP by hand, resume, the public data format,
bad input. Every run uses the tiny model with a batch of 4 and a handful of steps."""

import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

import checkpoints
import generalpoints
import sft
from policy import load_policy

ROOT = Path(__file__).resolve().parent.parent
FAST = ["--model", "tiny", "--batch-size", "4", "--log-every", "1", "--eval-every", "0", "--save-every", "0"]


def train(out, *flags):
    """Run sft.py's main() in-process; returns the per-step training losses it logged."""
    sft.main([*FAST, "--out", str(out), *flags])
    return losses(out)


def losses(out):
    lines = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in lines if "loss" in r]


def steps_logged(out):
    return [json.loads(line)["step"] for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


def to_public_record(example, image=None):
    """An SFT example in the public release's LLaVA format."""
    user, answer = example["messages"]
    prompt = "".join(p.get("text", "") for p in user["content"])
    record = {"conversations": [{"from": "human", "value": ("<image>\n" if image else "") + prompt},
                                {"from": "gpt", "value": answer["content"][0]["text"]}]}
    if image:
        record["image"] = image
    return record


# -----------------------------------------------------------------------------------------------
# The loss and its labels


def test_sft_loss_hand_example():
    # sft_loss's docstring: left-padded prompt "a b", answer "c d" + E. Only the logits of the
    # columns before c, d and E count (columns 2, 3, 4): what the others say changes nothing.
    c, d, E = 3, 4, 1
    labels = torch.tensor([[-100, -100, -100, c, d, E]])  # [B=1, L=6]
    logits = torch.randn(1, 6, 8, generator=torch.Generator().manual_seed(0))  # [B, L, V=8]
    expected = torch.nn.functional.cross_entropy(logits[0, 2:5], torch.tensor([c, d, E]))
    assert torch.allclose(sft.sft_loss(logits, labels), expected)
    noisy = logits.clone()
    noisy[0, :2], noisy[0, 5] = 100 * torch.randn(2, 8), 100 * torch.randn(8)  # prompt columns, last column
    assert torch.allclose(sft.sft_loss(noisy, labels), expected)
    # a second row, padded on the right: its padding is masked, the mean is over the 5 answer tokens
    labels2 = torch.tensor([[-100, -100, -100, c, d, E], [-100, -100, -100, d, E, -100]])
    logits2 = torch.cat([logits, logits])
    both = torch.nn.functional.cross_entropy(torch.cat([logits[0, 2:5], logits[0, 2:4]]),
                                             torch.tensor([c, d, E, d, E]))
    assert torch.allclose(sft.sft_loss(logits2, labels2), both)


def test_labels_mask_exactly_prompt_and_padding():
    policy = load_policy("tiny")
    examples = generalpoints.sft_examples(3, seed=11)
    obs = [{"messages": ex["messages"][:-1], "image": None} for ex in examples]
    answers = [policy.response_ids(ex["messages"][-1]["content"][0]["text"]) for ex in examples]
    answers[1] = policy.response_ids('{"formula": "1"}')  # a shorter answer: right padding
    batch = policy.build_batch(obs, answers)
    prompt_len, width = batch.prompt_len, batch.input_ids.shape[1]
    for row, answer in enumerate(answers):
        # by hand: -100 on every prompt column (left padding included), the answer ids (with the
        # end-of-turn token) right after the prompt, -100 on the right padding
        expected = [-100] * prompt_len + answer + [-100] * (width - prompt_len - len(answer))
        assert batch.labels[row].tolist() == expected
        assert answer[-1] == policy.tokenizer.eos_token_id
    # padding (left of short prompts, right of short answers) is masked in attention and labels
    pad = batch.attention_mask == 0
    assert pad[1, prompt_len + len(answers[1]):].all() and (batch.labels[pad] == -100).all()

    # sft_loss on the kept columns equals the plain cross-entropy of the full logits
    with torch.no_grad():
        full = policy.model(**batch.inputs).logits  # [B, L, V]
        answer_len = width - prompt_len
        kept = policy.model(**batch.inputs, logits_to_keep=answer_len + 1).logits  # [B, R+1, V]
    reference = torch.nn.functional.cross_entropy(full[:, :-1].reshape(-1, full.shape[-1]),
                                                  batch.labels[:, 1:].reshape(-1), ignore_index=-100)
    loss = sft.sft_loss(kept, batch.labels[:, -(answer_len + 1):])
    assert torch.allclose(loss, reference, atol=1e-5)


def test_length_groups_give_the_one_forward_gradient_with_less_padding():
    # --revise 0.5 mixes single-turn answers with conversations of failed attempts: sorted into
    # groups by length, each pads far less, and the groups' summed losses are the batch's mean
    policy = load_policy("tiny")
    examples = generalpoints.sft_examples(16, revise=0.5, seed=1)
    groups = sft.length_groups(examples, 4)
    assert sorted(map(id, sum(groups, []))) == sorted(map(id, examples)) and len(groups) == 4
    assert [len(g) for g in sft.length_groups(examples[:2], 4)] == [1, 1]  # no empty group

    def gradient(batches, n_answer):
        policy.model.zero_grad()
        loss = sum(sft.micro_batch_loss(policy.model, b, contextlib.nullcontext(), n_answer) for b in batches)
        loss.backward()
        return loss.detach(), torch.cat([p.grad.flatten() for p in policy.model.parameters() if p.grad is not None])

    whole = sft.sft_batch(policy, examples)
    parts = [sft.sft_batch(policy, g) for g in groups]
    loss_1, grad_1 = gradient([whole], None)
    loss_3, grad_3 = gradient(parts, sum(int(b.response_mask.sum()) for b in parts))
    assert torch.allclose(loss_1, loss_3, atol=1e-6) and torch.allclose(grad_1, grad_3, atol=1e-6)
    padded = sum(b.attention_mask.numel() for b in parts)
    assert padded < 0.8 * whole.attention_mask.numel()  # the padding the groups save (16 / 4: 27%)
    assert sum(int(b.attention_mask.sum()) for b in parts) == int(whole.attention_mask.sum())  # same FLOPs


def test_a_run_with_length_groups_logs_the_same_losses(tmp_path):
    one = train(tmp_path / "one", "--steps", "3", "--revise", "0.5")
    two = train(tmp_path / "two", "--steps", "3", "--revise", "0.5", "--length-groups", "2")
    assert one == pytest.approx(two, rel=1e-4) and len(one) == 3


def test_vision_labels_mask_the_image_token():
    policy = load_policy("tiny", vision=True)
    example = generalpoints.sft_examples(1, vision=True, seed=3)[0]
    answer = policy.response_ids(example["messages"][-1]["content"][0]["text"])
    batch = policy.build_batch([{"messages": example["messages"][:-1], "image": example["image"]}], [answer])
    image_id = policy.model.config.image_token_index
    assert (batch.input_ids == image_id).sum() == 1
    assert batch.labels[batch.input_ids == image_id].item() == -100
    assert batch.labels[0, batch.prompt_len:].tolist() == answer


def test_cosine_schedule_warms_up_then_decays():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = sft.cosine_schedule(opt, total_steps=100, warmup_frac=0.03)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        schedule.step()
    assert lrs[:4] == pytest.approx([1 / 3, 2 / 3, 1.0, 1.0])
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:])) and lrs[-1] < 1e-3


# -----------------------------------------------------------------------------------------------
# Training runs


def test_loss_falls_within_a_few_dozen_steps(tmp_path):
    curve = train(tmp_path / "run", "--steps", "30", "--batch-size", "8")
    first, last = sum(curve[:5]) / 5, sum(curve[-5:]) / 5
    assert len(curve) == 30
    assert last < first - 1.5, f"loss did not fall: first 5 steps {first:.2f}, last 5 {last:.2f}"
    # the run folder: config, metrics with the compute axis, a final checkpoint behind `final`
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["method"] == "sft" and config["env"] == "generalpoints" and config["vision"] is False
    line = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    assert line["flops"] == pytest.approx(6 * config["num_params"] * line["tokens"])
    assert {"step", "loss", "lr", "tokens", "tokens_per_s", "flops"} <= line.keys()
    assert os.path.realpath(tmp_path / "run" / "final") == str(tmp_path / "run" / "checkpoint-30")
    assert load_policy(str(tmp_path / "run" / "final")).num_params == config["num_params"]


def test_eval_lines_start_at_step_zero(tmp_path):
    out = tmp_path / "run"
    sft.run(sft.parse_args([*FAST, "--out", str(out), "--steps", "2", "--eval-every", "2",
                            "--eval-episodes", "2", "--eval-max-new-tokens", "8"]))
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert [e["step"] for e in evals] == [0, 2]
    assert set(evals[0]["eval"]) == {"id", "ood-rule"} and evals[0]["eval"]["id"]["n"] == 2
    assert evals[0]["flops"] == 0.0 < evals[1]["flops"]


def test_eval_at_adds_evaluations_at_the_listed_steps(tmp_path):
    out = tmp_path / "run"
    sft.run(sft.parse_args([*FAST, "--out", str(out), "--steps", "4", "--eval-every", "0", "--eval-at", "3,1",
                            "--eval-episodes", "2", "--eval-max-new-tokens", "8"]))
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines() if '"eval"' in x]
    assert [e["step"] for e in evals] == [0, 1, 3]  # not the end: --eval-every 0
    assert sft.parse_args(["--eval-at", "40, 10,10"]).eval_at == (10, 40)


def test_kill_and_resume_reproduces_the_uninterrupted_losses(tmp_path, monkeypatch):
    flags = ["--steps", "6", "--save-every", "3"]
    uninterrupted = train(tmp_path / "a", *flags)

    # the same run killed during step 5: checkpoint-3 is the newest one left
    real_loss, calls = sft.sft_loss, []

    def dies_at_step_5(logits, labels, n_answer_tokens=None):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real_loss(logits, labels, n_answer_tokens)

    monkeypatch.setattr(sft, "sft_loss", dies_at_step_5)
    with pytest.raises(SystemExit) as stop:  # cli.main: a Ctrl-C is one line and exit status 130
        train(tmp_path / "b", *flags)
    assert stop.value.code == 130
    monkeypatch.setattr(sft, "sft_loss", real_loss)
    assert checkpoints.latest(tmp_path / "b") == str(tmp_path / "b" / "checkpoint-3")
    assert not (tmp_path / "b" / "final").exists()

    resumed = train(tmp_path / "b", *flags, "--resume")
    assert steps_logged(tmp_path / "b") == [1, 2, 3, 4, 5, 6]  # steps 4 (and 5) of the killed run dropped
    assert resumed == pytest.approx(uninterrupted, abs=1e-6)
    # the same weights at the end
    a = load_policy(str(tmp_path / "a" / "final")).model.state_dict()
    b = load_policy(str(tmp_path / "b" / "final")).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_failed_checkpoint_write_leaves_the_previous_one(tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_save, calls = type(load_policy("tiny")).save, []

    def disk_full_on_second_save(self, path):
        calls.append(path)
        if len(calls) == 2:
            real_save(self, path)  # half-written: the model is there, the rest is not
            raise OSError(28, "No space left on device")
        real_save(self, path)

    monkeypatch.setattr(type(load_policy("tiny")), "save", disk_full_on_second_save)
    with pytest.raises(SystemExit) as exit_info:
        train(out, "--steps", "4", "--save-every", "2")
    assert "No space left" in str(exit_info.value.code) and "checkpoint-2" in str(exit_info.value.code)
    assert checkpoints.latest(out) == str(out / "checkpoint-2")
    monkeypatch.undo()
    train(out, "--steps", "4", "--save-every", "2", "--resume")
    assert checkpoints.latest(out) == str(out / "checkpoint-4")
    assert not (out / ".tmp-checkpoint-4").exists()


def test_nan_loss_stops_with_the_last_checkpoint_intact(tmp_path, monkeypatch):
    out, real_loss, calls = tmp_path / "run", sft.sft_loss, []

    def nan_at_step_3(logits, labels, n_answer_tokens=None):
        calls.append(1)
        loss = real_loss(logits, labels, n_answer_tokens)
        return loss * float("nan") if len(calls) == 3 else loss

    monkeypatch.setattr(sft, "sft_loss", nan_at_step_3)
    with pytest.raises(SystemExit) as exit_info:
        train(out, "--steps", "4", "--save-every", "2")
    message = str(exit_info.value.code)
    assert message.startswith("error:") and "nan" in message and "checkpoint-2" in message
    assert "\n" not in message
    assert checkpoints.latest(out) == str(out / "checkpoint-2")


# -----------------------------------------------------------------------------------------------
# The public SFT release's format


def test_public_format_file_trains_and_skips_malformed_records(tmp_path, capsys):
    records = [to_public_record(ex) for ex in generalpoints.sft_examples(6, seed=5)]
    records += [{"conversations": [{"from": "gpt", "value": "hi"}]}, "not a record"]
    data = tmp_path / "data.json"
    data.write_text(json.dumps(records))
    curve = train(tmp_path / "run", "--data", str(data), "--steps", "3")
    assert len(curve) == 3 and all(c == c for c in curve)
    warning = capsys.readouterr().err
    assert "skipped 2 of 8 malformed records" in warning and "record 6" in warning


def test_public_format_with_images_trains(tmp_path):
    examples = generalpoints.sft_examples(4, vision=True, seed=9)
    (tmp_path / "images").mkdir()
    records = []
    for i, ex in enumerate(examples):
        ex["image"].save(tmp_path / "images" / f"{i}.png")
        records.append(to_public_record(ex, image=f"images/{i}.png"))
    records.append(to_public_record(examples[0], image="images/missing.png"))  # skipped
    data = tmp_path / "data.json"
    data.write_text(json.dumps(records))
    examples_read = sft.load_sft_file(data, vision=True)
    assert len(examples_read) == 4
    messages, image = examples_read[0]
    assert messages[0]["content"][0] == {"type": "image"} and "<image>" not in messages[0]["content"][1]["text"]
    assert Image.open(image).size == examples[0]["image"].size
    curve = train(tmp_path / "run", "--vision", "--data", str(data), "--steps", "2")
    assert len(curve) == 2


# -----------------------------------------------------------------------------------------------
# Bad input: one line, non-zero exit


def test_bad_input_exits_with_one_line(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        sft.parse_args(["--env", "chess"])
    assert e.value.code == 2 and "invalid choice: 'chess'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        sft.parse_args(["--data", str(tmp_path / "missing.json")])
    assert e.value.code == 2 and "no such file" in capsys.readouterr().err

    garbage = tmp_path / "garbage.json"
    for text, why in [("{not json", "not valid JSON"), ('{"a": 1}', "expected a JSON list"),
                      ('[{"conversations": []}]', "no usable record")]:
        garbage.write_text(text)
        with pytest.raises(SystemExit) as e:
            sft.main([*FAST, "--data", str(garbage), "--out", str(tmp_path / "x")])
        assert str(e.value.code).startswith("error:") and why in str(e.value.code)
        assert "\n" not in str(e.value.code)

    with pytest.raises(SystemExit) as e:
        sft.main([*FAST, "--model", str(tmp_path / "nowhere"), "--out", str(tmp_path / "y")])
    assert str(e.value.code).startswith("error:") and "nowhere" in str(e.value.code)


def test_cli_missing_data_file_no_traceback(tmp_path):
    done = subprocess.run([sys.executable, "sft.py", "--data", str(tmp_path / "missing.json")],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "error: --data" in done.stderr.strip().splitlines()[-1]  # after argparse's usage line


def test_existing_run_needs_resume_of_the_same_task(tmp_path):
    train(tmp_path / "run", "--steps", "1")
    with pytest.raises(SystemExit) as e:
        train(tmp_path / "run", "--steps", "1")
    assert "--resume" in str(e.value.code)
    with pytest.raises(SystemExit) as e:
        train(tmp_path / "run", "--steps", "2", "--env", "virl", "--resume")
    assert str(e.value.code).startswith("error:") and "different env" in str(e.value.code)


# -----------------------------------------------------------------------------------------------
# FSDP by hand: 2 processes follow the 1-process loss curve; the wrapped model equals the plain one


def test_torchrun_two_ranks_follow_the_single_process_curve(tmp_path):
    """Same global batch (8 = 2 micro-batches of 4): 1 process accumulates both micro-batches,
    2 ranks take one each and FSDP averages the gradients. Tolerance: 1e-4 on each step's loss
    (the sums run in a different order; fp32 on CPU); the final weights agree to 1e-4 too."""
    flags = ["--steps", "4", "--batch-size", "8", "--micro-batch-size", "4", "--log-every", "1",
             "--eval-every", "0", "--save-every", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           "--nproc_per_node=2", "sft.py", *flags, "--out", str(tmp_path / "fsdp")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 rank(s)" in done.stdout
    sft.run(sft.parse_args([*flags, "--out", str(tmp_path / "single")]))
    fsdp, single = losses(tmp_path / "fsdp"), losses(tmp_path / "single")
    assert len(fsdp) == len(single) == 4
    assert fsdp == pytest.approx(single, abs=1e-4)
    a = load_policy(str(tmp_path / "fsdp" / "final")).model.state_dict()
    b = load_policy(str(tmp_path / "single" / "final")).model.state_dict()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4


def test_without_torchrun_nothing_is_distributed(monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    rank, world, device = sft.setup_distributed()
    assert (rank, world) == (0, 1) and not torch.distributed.is_initialized()
    policy = load_policy("tiny")
    assert sft.shard(policy) is policy and not policy.sharded  # world size 1: nothing to shard


def test_fsdp_under_torchrun_matches_unwrapped(tmp_path):
    """tests/fsdp_check.py under `torchrun --nproc_per_node=2` (gloo): logits, one AdamW step,
    greedy generation with images and the gathered checkpoint equal the unwrapped model's."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           str(ROOT / "tests" / "fsdp_check.py"), str(tmp_path)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "fsdp check ok" in result.stdout
