"""FSDP2 check run by tests/test_sft.py (or by hand):

    torchrun --standalone --nproc_per_node=2 tests/fsdp_check.py OUT_DIR

Works at any world size (the test uses 2). Every rank builds the same tiny policy twice: a plain
reference and a copy wrapped by sft.shard (gloo on CPU). Both see the same batch on every rank, so
the FSDP-averaged gradient is the plain one and everything must agree: log-probs and values, the
loss after one AdamW step, greedy generation with images, and the checkpoint that
Policy.save gathers on rank 0 (sft.full_state). Prints "fsdp check ok".
"""
import os
import sys

import torch
import torch.distributed as dist

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import generalpoints  # noqa: E402
import policy as P  # noqa: E402
import sft  # noqa: E402


def close(a, b, what, atol=1e-5):
    err = (a.detach().float() - b.detach().float()).abs().max().item()
    assert err <= atol, f"{what}: max abs difference {err:.2e} > {atol:.0e}"


def step_loss(policy, obs, responses):
    """A PPO-like loss touching the log-probs and the value head."""
    s = policy.score(obs, responses, temperature=0.5)
    return -(s.logprobs.sum(1) / s.mask.sum(1)).mean() + s.values.pow(2).mean()


def main():
    out_dir = sys.argv[1]
    rank, world, device = sft.setup_distributed()
    assert dist.is_initialized(), "run me under torchrun"
    ref = P.load_policy("tiny", seed=0, device=device)
    wrapped = sft.shard(P.load_policy("tiny", seed=0, device=device))
    assert wrapped.sharded and wrapped.num_params == ref.num_params

    env = generalpoints.make_env(vision=True, seed=0)
    obs, responses = [], []
    for _ in range(3):
        o, _ = env.reset()
        obs.append(o)
        responses.append(ref.response_ids(env.oracle_response()))
    text_obs = [{"messages": [{"role": m["role"], "content": [p for p in m["content"]
                                                             if p["type"] == "text"]}
                              for m in o["messages"]], "image": None} for o in obs]

    # 1. same log-probs and values, with and without images
    for batch in (obs, text_obs):
        with torch.no_grad():
            a = ref.score(batch, responses, 0.5, "formula")
            b = wrapped.score(batch, responses, 0.5, "formula")
        close(a.logprobs, b.logprobs, "log-probs")
        close(a.values, b.values, "values")

    # 2. one AdamW step on the same loss gives the same loss afterwards
    losses = []
    for policy in (ref, wrapped):
        opt = torch.optim.AdamW(list(policy.parameters()), lr=1e-3)
        loss = step_loss(policy, text_obs, responses)
        loss.backward()
        opt.step()
        with torch.no_grad():
            losses.append((loss, step_loss(policy, text_obs, responses)))
    close(losses[0][0], losses[1][0], "loss before the step")
    close(losses[0][1], losses[1][1], "loss after the step")
    assert (losses[0][1] - losses[0][0]).abs() > 1e-4, "the step changed nothing"

    # 3. generation does not hang and agrees (greedy, images, ranks with different prompts)
    mine = obs[rank:rank + 2]
    assert ref.generate(mine, max_new_tokens=8) == wrapped.generate(mine, max_new_tokens=8)

    # 4. the full state dict is gathered on rank 0 and loads back as the trained model
    wrapped.save(out_dir)  # every rank: the full state is gathered to rank 0
    dist.barrier()
    if rank == 0:
        loaded = P.load_policy(out_dir)
        with torch.no_grad():
            a = ref.score(obs, responses, 0.5, "formula")
            b = loaded.score(obs, responses, 0.5, "formula")
        close(a.logprobs, b.logprobs, "reloaded log-probs")
        close(a.values, b.values, "reloaded values")
        print("fsdp check ok")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
