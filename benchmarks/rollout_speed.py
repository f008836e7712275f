"""Rollout speed: batched generation (and scoring) against one conversation at a time.

PPO spends most of its time sampling answers (the paper: rollouts of 256 steps per update and GPU), so
policy.generate batches conversations, left-padded, with the KV cache. This measures new tokens
per second at 1, 8, 32 and 64 conversations of real GeneralPoints prompts against generating the
same conversations one at a time with the same model, and the same for scoring (the no-grad
log-prob pass that gives PPO its old log-probs). Every answer is forced to exactly
--new-tokens tokens (end-of-turn blocked until then): a random model stops whenever it happens
to sample an end-of-turn, which would make the two sides produce different token counts.

    python benchmarks/rollout_speed.py            # ~1 minute on 2 CPU cores
    python benchmarks/rollout_speed.py --quick    # a few seconds
    python benchmarks/rollout_speed.py --model runs/x/final --vision

It also times the KV cache generate() fills: kvcache.GrowingLayer (in place, what policy.py
uses) against transformers' stock DynamicCache (torch.cat at every token), interleaved, on the
largest batch, with the same tokens checked.

With --vision it also times policy.prompt_inputs on 32 prompts with each prompt's image encoding
cached (prompt_cache.py) against running the image processor at every call, interleaved.

Ends with `batched/sequential speedup: X.Xx` (generation, 32 conversations).
"""
import argparse
import os
import sys
import time

import torch
from transformers import DynamicCache

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import generalpoints  # noqa: E402
import policy as P  # noqa: E402


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="'tiny', 'tiny-large' or a checkpoint dir")
    parser.add_argument("--vision", action="store_true", help="GP-VL prompts (cards as an image)")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter answers: seconds")
    parser.add_argument("--new-tokens", type=int, default=None,
                        help="tokens per answer (default 32, 16 with --quick)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="sampling temperature (0 = greedy)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (default 1: on a shared 2-core machine a second "
                             "thread stalls whenever another process holds a core)")
    args = parser.parse_args()
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    new_tokens = args.new_tokens or (16 if args.quick else 32)
    if new_tokens < 1:
        parser.error("--new-tokens must be at least 1")
    sizes = (1, 8, 32) if args.quick else (1, 8, 32, 64)
    try:
        policy = P.load_policy(args.model, vision=args.vision, seed=0, threads=args.threads)
    except ValueError as e:
        sys.exit(f"error: {e}")
    env = generalpoints.make_env(vision=args.vision, seed=0)
    obs = [env.reset()[0] for _ in range(max(sizes))]
    prompt_len = [policy.prompt_inputs([o])["input_ids"].shape[1] for o in obs]
    print(f"model {args.model}: {policy.num_params:,} parameters, {torch.get_num_threads()} "
          f"threads, GP{'-VL' if args.vision else '-L'} prompts of {min(prompt_len)}-"
          f"{max(prompt_len)} tokens, {new_tokens} new tokens each")

    def generate(batch):
        return policy.generate(batch, temperature=args.temperature, max_new_tokens=new_tokens,
                               min_new_tokens=new_tokens)

    generate(obs[:2])  # warm-up: first-call allocations and lazy imports
    # one at a time: the 32 conversations (fewer with --quick), each its own generate call
    n_seq = 32
    seq_time = timed(lambda: [generate([o]) for o in obs[:n_seq]])
    seq_rate = n_seq * new_tokens / seq_time
    print(f"generation, one at a time ({n_seq} conversations): {seq_rate:8.0f} new tokens/s")
    rates = {}
    for size in sizes:
        outs = []
        t = timed(lambda: outs.extend(generate(obs[:size])))
        assert all(len(g.token_ids) == new_tokens for g in outs)
        rates[size] = size * new_tokens / t
        print(f"generation, batch of {size:2d}: {rates[size]:8.0f} new tokens/s "
              f"({rates[size] / seq_rate:4.1f}x one at a time)")

    # the KV cache: in place (policy.py's) against the stock one, interleaved, on the largest batch
    in_place, stock, growing = [], [], P.growing_cache
    for _ in range(3):
        for cache, times in ((growing, in_place), (lambda model: DynamicCache(config=model.config), stock)):
            P.growing_cache = cache
            torch.manual_seed(0)
            outs = []
            times.append(timed(lambda: outs.extend(generate(obs[:max(sizes)]))))
            times.append([g.token_ids for g in outs])
    P.growing_cache = growing
    assert in_place[1::2] == stock[1::2], "the two caches must give the same tokens"
    ratio = sorted(s / i for s, i in zip(stock[::2], in_place[::2]))[1]  # the median of 3 pairs
    print(f"KV cache, batch of {max(sizes)}: in place {ratio:.2f}x the stock DynamicCache (median of 3 pairs)")

    # scoring: the log-probs of the same answers, batched against one at a time
    responses = [g.token_ids for g in generate(obs[:n_seq])]
    with torch.no_grad():
        policy.score(obs[:2], responses[:2])  # warm-up
        seq = timed(lambda: [policy.score([o], [r]) for o, r in zip(obs, responses)])
        batched = timed(lambda: policy.score(obs[:n_seq], responses))
    tokens = n_seq * new_tokens
    print(f"scoring, one at a time: {tokens / seq:8.0f} tokens/s; batch of {n_seq}: "
          f"{tokens / batched:8.0f} tokens/s ({seq / batched:4.1f}x)")
    if args.vision:  # PPO encodes each prompt 4-5 times: its image once (prompt_cache.py) or every time
        cached, every_call = [], []
        for _ in range(5):
            cached.append(timed(lambda: policy.prompt_inputs(obs[:n_seq])))
            policy.encoded.images = lambda texts, images: None  # prompt_inputs falls back to the processor
            every_call.append(timed(lambda: policy.prompt_inputs(obs[:n_seq])))
            del policy.encoded.images
        ratio = sorted(e / c for e, c in zip(every_call, cached))[2]
        print(f"prompt encoding, batch of {n_seq}: image encodings cached {ratio:.1f}x the processor at "
              f"every call (median of 5 pairs; {1000 * min(every_call):.0f} ms a call uncached)")
    print(f"batched/sequential speedup: {rates[32] / seq_rate:.1f}x")


if __name__ == "__main__":
    main()
