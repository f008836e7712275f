"""The benchmark scripts run (in --quick mode, as subprocesses) and print their key lines, so
they cannot rot. Nothing here asserts a speed: timings on a shared CI machine mean nothing."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def bench(script, *flags, timeout=180):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    return subprocess.run([sys.executable, f"benchmarks/{script}", *flags], cwd=ROOT, env=env,
                          timeout=timeout, capture_output=True, text=True)


@pytest.mark.parametrize("script,key_lines", [
    ("env_speed.py", ["resets/s (GP-L, id)", "grids/s (448x448, V-IRL-VL)"]),
    ("rollout_speed.py", ["generation, batch of 32:", "scoring, one at a time:",
                          "batched/sequential speedup:"]),
    ("train_speed.py", ["SFT step, batch of 8:", "PPO update, micro-batches of  8 (ppo.py):",
                        "PPO update, micro-batches of  1 (paper)", "scoring, one at a time:",
                        "scoring batched/sequential speedup:", "update batched/sequential speedup:",
                        "scoring with cached prompt ids / tokenized every call:"]),
    ("end_to_end.py", ["rollouts", "updates", "evals", "other", "wall time:"]),
    ("rollout_speed.py --vision", ["generation, batch of 32:", "image encodings cached"]),
], ids=["env_speed", "rollout_speed", "train_speed", "end_to_end", "rollout_speed_vision"])
def test_quick_mode_runs_and_prints_its_figures(script, key_lines):
    script, *flags = script.split()
    result = bench(script, "--quick", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    for line in key_lines:
        assert line in result.stdout, f"{line!r} missing from:\n{result.stdout}"


def test_train_speed_on_a_model_config_prints_mfu(tmp_path):
    """The --model CONFIG/PATH path (the GPU one) on the CPU: a small Qwen2-VL config (M-RoPE,
    image tokens that must never be drawn), FSDP2 at world size 1, MFU against a given peak."""
    from transformers import Qwen2VLConfig
    Qwen2VLConfig(text_config=dict(vocab_size=1000, hidden_size=64, intermediate_size=128,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   rope_parameters={"rope_type": "default", "rope_theta": 1e6,
                                                    "mrope_section": [2, 3, 3]}),
                  vision_config=dict(depth=1, embed_dim=32, hidden_size=64, num_heads=2),
                  image_token_id=990, video_token_id=991, vision_start_token_id=992,
                  vision_end_token_id=993, tie_word_embeddings=True).save_pretrained(tmp_path)
    result = bench("train_speed.py", "--model", str(tmp_path), "--quick", "--fsdp",
                   "--peak-flops", "1e11")
    assert result.returncode == 0, result.stderr[-3000:]
    for line in ("SFT step, 2 x 32 tokens", "generation, batch of 2", "generation MFU:", "SFT MFU:"):
        assert line in result.stdout, f"{line!r} missing from:\n{result.stdout}"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the guard is for machines without a GPU")
def test_a_real_size_config_on_cpu_is_refused_in_one_line():
    result = bench("train_speed.py", "--model", "qwen2-vl-2b")
    assert result.returncode == 2
    assert "2.21B parameters" in result.stderr and "--allow-cpu" in result.stderr
    assert "Traceback" not in result.stderr


def test_named_configs_have_the_real_models_sizes():
    """The shapes written in train_speed.py give the published parameter counts (built on the
    meta device: no memory)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import train_speed
    sizes = {name: sum(p.numel() for p in train_speed.build_model(make(), "meta").parameters())
             for name, make in train_speed.CONFIGS.items()}
    assert sizes["qwen2-vl-2b"] == pytest.approx(2.21e9, rel=0.01)
    assert sizes["llama-3.2-11b-vision"] == pytest.approx(10.67e9, rel=0.01)
