"""Tests of policy.py: exact log-probs, the answer split, checkpoints of three families.

The minGPT pattern: each test compares against a reference computed the plain way (the HF model
alone, one sequence at a time). FSDP is tested with sft.py, which wraps the model (tests/test_sft.py).
"""
import copy
import os

import pytest
import torch
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (DynamicCache, LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2VLConfig,
                          Qwen2VLForConditionalGeneration)
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

import generalpoints
import kvcache
import policy as P
import virl


@pytest.fixture(scope="module")
def tiny():
    return P.load_policy("tiny", seed=0)


def gp_obs(n, vision=False, split="id", seed=0):
    """n first observations of GeneralPoints hands, with the oracle answers."""
    env = generalpoints.make_env(split, vision=vision, seed=seed)
    obs, answers = [], []
    for _ in range(n):
        o, _ = env.reset()
        obs.append(o)
        answers.append(env.oracle_response())
    return obs, answers


def multi_turn(obs, answer="The answer is 24."):
    """The obs after one failed attempt: conversation + answer + feedback turn."""
    env_msgs = obs["messages"] + [
        {"role": "assistant", "content": [{"type": "text", "text": answer}]},
        {"role": "user", "content": [{"type": "text", "text": "You failed this trial because "
                                                             "your answer has no formula."}]}]
    return {"messages": env_msgs, "image": obs["image"]}


def random_responses(lengths, vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(10, vocab, (n,), generator=g).tolist() for n in lengths]


# --- the tokenizer -------------------------------------------------------------------------------

def test_tokenizer_is_deterministic_short_and_lossless(tiny):
    again = P.build_tokenizer()
    assert again.get_vocab() == tiny.tokenizer.get_vocab()
    tok = tiny.tokenizer
    for text in ["24 points: (10-4)*4=24", "héllo wörld ✓ 日本", "J Q K 123"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text  # byte-level: nothing unknown, exact round trip
    digits = tok.convert_ids_to_tokens(tok("12345", add_special_tokens=False)["input_ids"])
    assert digits == list("12345")
    for special in P.SPECIAL_TOKENS:  # special tokens stay whole
        assert tok(special, add_special_tokens=False)["input_ids"] == [tok.convert_tokens_to_ids(special)]
    obs, answers = gp_obs(8)
    prompt = tiny.prompt_inputs(obs)["input_ids"]
    assert prompt.shape[1] < 80  # the fixed phrases are single tokens (~60 tokens, not ~600)
    assert max(len(tiny.response_ids(a)) for a in answers) < 40


# --- log-probs -----------------------------------------------------------------------------------

def plain_logprobs(model, inputs, response, temperature):
    """Reference: the plain HF model on one unpadded sequence, no value head, no tricks."""
    ids = torch.cat([inputs["input_ids"], torch.tensor([response])], 1)  # [1, P + R]
    kwargs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    for key in ("pixel_values", "aspect_ratio_ids", "aspect_ratio_mask"):
        if key in inputs:
            kwargs[key] = inputs[key]
    if "cross_attention_mask" in inputs:  # response tokens see the image like the last prompt token
        cam = inputs["cross_attention_mask"]
        kwargs["cross_attention_mask"] = torch.cat(
            [cam, cam[:, -1:].expand(-1, len(response), -1, -1)], 1)
    logits = model(**kwargs).logits[0].float() / temperature  # [P + R, V]
    logprobs = torch.log_softmax(logits[:-1], -1)  # [P + R - 1, V] position t scores token t+1
    targets = ids[0, 1:]
    return logprobs.gather(-1, targets[:, None])[-len(response):, 0]  # [R]


def test_cached_prompt_ids_equal_the_processors_batch_encoding(tiny):
    """prompt_inputs tokenizes each text prompt once (PPO scores the same prompts 5 times) and
    left-pads: exactly what the processor gives for the batch, first turns and revisions mixed."""
    obs, _ = gp_obs(6)
    obs[2] = multi_turn(obs[2])
    texts = [tiny.chat_text(o["messages"]) for o in obs]
    want = tiny.processor(text=texts, padding="longest", return_tensors="pt", add_special_tokens=False)
    for _ in range(2):  # the second call reads the cache
        got = tiny.prompt_inputs(obs)
        assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want)
    assert texts[2] in tiny.encoded.ids


def virl_vision_obs(n, seed=0):
    """n V-IRL street-view observations of different lengths (one past its first step)."""
    env, obs = virl.make_env("id", vision=True, seed=seed), []
    for i in range(n):
        o, _ = env.reset()
        if i % 3 == 2:
            o, *_ = env.step(env.oracle_response())
        obs.append(o)
    return obs


def check_cached_image_encoding(policy, obs):
    """prompt_inputs encodes each (prompt, image) once and collates: exactly the processor's batch."""
    texts = [policy.chat_text(o["messages"]) for o in obs]
    want = policy.processor(text=texts, images=[[o["image"]] for o in obs], padding="longest",
                            return_tensors="pt", add_special_tokens=False)
    assert len({len(policy.tokenizer(t)["input_ids"]) for t in texts}) > 1  # padding is exercised
    for _ in range(2):  # the second call reads the cache
        got = policy.prompt_inputs(obs)
        assert set(got) == set(want) and all(torch.equal(got[k], want[k]) for k in want), \
            [k for k in want if not torch.equal(got[k], want[k])]
    assert (texts[0], id(obs[0]["image"])) in policy.encoded.rows


def test_cached_image_encodings_equal_the_processors_batch():
    check_cached_image_encoding(P.load_policy("tiny-vl", vision=True), virl_vision_obs(6))


@pytest.mark.parametrize("vision", [False, True])
def test_batched_logprobs_equal_one_at_a_time(tiny, vision):
    obs, _ = gp_obs(4, vision=vision)
    obs[1] = multi_turn(obs[1])  # a longer, multi-turn prompt -> real left padding
    responses = random_responses([5, 9, 1, 7], len(tiny.tokenizer))
    with torch.no_grad():
        scores = tiny.score(obs, responses, temperature=0.7)
        for i, (o, r) in enumerate(zip(obs, responses)):
            ref = plain_logprobs(tiny.model, tiny.prompt_inputs([o]), r, 0.7)
            torch.testing.assert_close(scores.logprobs[i, :len(r)], ref, atol=1e-5, rtol=0)
            assert scores.logprobs[i, len(r):].abs().sum() == 0  # padding scored 0
    assert scores.mask.sum(1).tolist() == [5, 9, 1, 7]


def test_logprobs_do_not_depend_on_batch_mates(tiny):
    obs, _ = gp_obs(5)
    long = multi_turn(obs[4], "x" * 300)
    responses = random_responses([6, 3, 12, 4, 20], len(tiny.tokenizer), seed=1)
    with torch.no_grad():
        alone = tiny.score(obs[:1], responses[:1], temperature=0.2)
        crowd = tiny.score([obs[2], obs[0], long], [responses[2], responses[0], responses[4]],
                           temperature=0.2)
    torch.testing.assert_close(crowd.logprobs[1, :6], alone.logprobs[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(crowd.values[1], alone.values[0], atol=1e-5, rtol=0)


def test_value_head_leaves_logits_alone_and_gets_gradients(tiny):
    obs, answers = gp_obs(2)
    responses = [tiny.response_ids(a) for a in answers]
    batch = tiny.build_batch(obs, responses)
    with torch.no_grad():
        plain = tiny.model(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                           position_ids=batch.inputs["position_ids"]).logits
        with_head = tiny.model(**batch.inputs, output_hidden_states=True).logits
    torch.testing.assert_close(with_head, plain, atol=0, rtol=0)
    # SFT's loss on batch.labels is the mean negative log-prob of score's tokens (temperature 1)
    with torch.no_grad():
        loss = tiny.model(**batch.inputs, labels=batch.labels).loss
        scores = tiny.score(obs, responses)
    torch.testing.assert_close(loss, -scores.logprobs.sum() / scores.mask.sum(), atol=1e-5,
                               rtol=1e-5)
    scores = tiny.score(obs, responses)
    (scores.values.sum() - scores.logprobs.sum()).backward()
    assert all(p.grad is not None for p in tiny.value_head.parameters())
    assert tiny.model.lm_head.weight.grad is not None
    tiny.model.zero_grad(set_to_none=True)
    tiny.value_head.zero_grad(set_to_none=True)
    assert scores.values.dtype == torch.float32 and scores.values.shape == (2,)


# --- the thought / answer split -----------------------------------------------------------------

def check_split(policy, response_text, key):
    ids = policy.response_ids(response_text)
    mask = P.answer_mask(policy.tokenizer, [ids], key, len(ids))[0].tolist()
    first = mask.index(1)
    assert mask == [0] * first + [1] * (len(ids) - first)
    thought = policy.tokenizer.decode(ids[:first])
    answer_and_before = policy.tokenizer.decode(ids[:first + 1])
    assert f'"{key}"' not in thought  # the key starts in token `first`, not before
    assert response_text.find(f'"{key}"') < len(answer_and_before)


def test_answer_split_on_real_responses(tiny):
    _, answers = gp_obs(5)
    for answer in answers:
        check_split(tiny, answer, generalpoints.ANSWER_KEY)
    env = virl.make_env(seed=0)
    env.reset()
    for _ in range(5):
        answer = env.oracle_response()
        check_split(tiny, answer, virl.ANSWER_KEY)
        _, _, terminated, truncated, _ = env.step(answer)
        if terminated or truncated:
            env.reset()
    no_key = tiny.response_ids("I think the answer is 24.")
    assert P.answer_mask(tiny.tokenizer, [no_key], "formula", len(no_key) + 2).tolist() == [[0] * (len(no_key) + 2)]
    obs, answers = gp_obs(2)
    responses = [tiny.response_ids(a) for a in answers]
    scores = tiny.score(obs, responses)
    answer = P.answer_mask(tiny.tokenizer, responses, "formula", scores.mask.shape[1])
    assert (answer <= scores.mask).all() and answer.sum() > 0  # never on padding


# --- generation ----------------------------------------------------------------------------------

def test_generate_greedy_sampling_eos_and_cut_off(tiny):
    obs, _ = gp_obs(3)
    greedy = tiny.generate(obs, temperature=0.0, max_new_tokens=6)
    assert greedy == tiny.generate(obs, temperature=0.0, max_new_tokens=6)
    assert all(g.cut_off and len(g.token_ids) == 6 for g in greedy)  # random weights: no EOS
    torch.manual_seed(0)
    sampled = tiny.generate(obs, temperature=1.0, max_new_tokens=6)
    assert [g.token_ids for g in sampled] != [g.token_ids for g in greedy]
    # a head that always prefers end-of-turn: generation stops, EOS kept, not cut off
    policy = copy.deepcopy(tiny)  # an nn.Module: copy.copy would share its children with tiny
    with torch.no_grad():
        policy.model.lm_head.weight.zero_()  # all logits tie: greedy takes the lowest id
    eot = tiny.eos_id
    assert min(i for i in range(len(tiny.tokenizer)) if i not in tiny.suppress_ids) == eot
    out = policy.generate(obs[:1], temperature=0.0, max_new_tokens=6)[0]
    assert out.token_ids == [eot] and not out.cut_off and out.text == ""
    out = policy.generate(obs[:1], temperature=0.0, max_new_tokens=6, min_new_tokens=3)[0]
    assert len(out.token_ids) == 4 and out.token_ids[-1] == eot  # EOS blocked for 3 tokens
    assert not set(out.token_ids) & set(tiny.suppress_ids)  # never an image placeholder


def test_growing_kv_cache_holds_and_generates_what_the_dynamic_cache_does(tiny, monkeypatch):
    layer, keys = kvcache.GrowingLayer(), []
    for n in (5, 1, 1, 7, 1):  # a prefill, tokens, and a jump past the doubled buffer
        k = torch.randn(2, 3, n, 4)
        keys.append(k)
        out, values = layer.update(k, k + 1)
        assert torch.equal(out, torch.cat(keys, -2)) and torch.equal(values, torch.cat(keys, -2) + 1)
    layer.batch_select_indices(torch.tensor([1, 0]))  # generate reordering the batch: a new tensor
    k = torch.randn(2, 3, 1, 4)
    assert torch.equal(layer.update(k, k)[0], torch.cat([torch.cat(keys, -2)[[1, 0]], k], -2))
    # the same tokens as the stock cache: greedy, seeded sampling, a longer prompt among short
    # ones, answers longer than the prompt (the buffer grows), an image
    obs, _ = gp_obs(3)
    obs[1] = multi_turn(obs[1])
    vision_obs, _ = gp_obs(2, vision=True)

    def answers():
        out = []
        for batch, temperature in ((obs, 0.0), (obs, 1.0), (vision_obs, 1.0)):
            torch.manual_seed(0)
            out.append([g.token_ids for g in tiny.generate(batch, temperature=temperature, max_new_tokens=120)])
        return out

    made = []  # the caches generate got: each filled in place (a layer holds its buffers)
    monkeypatch.setattr(P, "growing_cache", lambda model: made.append(kvcache.growing_cache(model)) or made[-1])
    growing = answers()
    assert len(made) == 3 and all(any(hasattr(layer, "buffers") for layer in cache.layers) for cache in made)
    monkeypatch.setattr(P, "growing_cache", lambda model: DynamicCache(config=model.config))
    assert answers() == growing


def test_generate_with_images_and_bad_inputs(tiny):
    obs, _ = gp_obs(2, vision=True)
    outs = tiny.generate(obs, temperature=1.0, max_new_tokens=5)
    assert len(outs) == 2 and all(len(g.token_ids) == 5 for g in outs)
    text_obs, _ = gp_obs(1)
    with pytest.raises(ValueError, match="all with images or all without"):
        tiny.generate([obs[0], text_obs[0]])
    with pytest.raises(ValueError, match="image parts"):
        tiny.generate([{"messages": obs[0]["messages"], "image": None}])
    with pytest.raises(ValueError, match="longer than the model's context"):
        tiny.generate([multi_turn(text_obs[0], "24 " * 3000)])
    with pytest.raises(ValueError, match="longer than the model's context"):
        tiny.score(text_obs, [[5] * 3000])


def test_the_tiny_model_sees_its_image_from_the_start(tiny):
    """The image path's tanh gates start open: the same prompt and answer score differently
    under two different card images (with Mllama's zero gates they would score the same)."""
    (a, b), answers = gp_obs(2, vision=True)
    same_text = {"messages": a["messages"], "image": b["image"]}
    ids = [tiny.tokenizer(answers[0], add_special_tokens=False)["input_ids"]] * 2
    with torch.no_grad():
        logprobs = tiny.score([a, same_text], ids).logprobs
    assert (logprobs[0] - logprobs[1]).abs().max() > 1e-4
    names = ("cross_attn_attn_gate", "cross_attn_mlp_gate", "gated_positional_embedding.gate")
    gates = [p.item() for n, p in tiny.model.named_parameters() if n.endswith(names)]
    assert gates == [1.0, 1.0, 1.0]


def test_tiny_vl_is_tiny_with_one_patch_per_card_rank(tiny):
    """"tiny-vl" (GP-VL's model) differs from "tiny" only in its 56-pixel patches, 4 x 4 per
    image, and it sees its image too."""
    vl = P.load_policy("tiny-vl", vision=True)
    assert vl.model.config.get_text_config().to_dict() == tiny.model.config.get_text_config().to_dict()
    vision = vl.model.config.vision_config
    assert vision.patch_size == 56 and vision.image_size // vision.patch_size == 4
    assert tiny.model.config.vision_config.patch_size == 14
    (a, b), answers = gp_obs(2, vision=True)
    ids = [vl.tokenizer(answers[0], add_special_tokens=False)["input_ids"]] * 2
    with torch.no_grad():
        logprobs = vl.score([a, {"messages": a["messages"], "image": b["image"]}], ids).logprobs
    assert (logprobs[0] - logprobs[1]).abs().max() > 1e-4


# --- checkpoints ---------------------------------------------------------------------------------

def test_save_load_round_trip(tiny, tmp_path, caplog):
    tiny.save(tmp_path)
    assert {"model.safetensors", "value_head.safetensors", "config.json",
            "tokenizer.json"} <= set(os.listdir(tmp_path))
    loaded = P.load_policy(str(tmp_path))
    assert type(loaded.model) is type(tiny.model) and loaded.num_params == tiny.num_params
    for a, b in zip(tiny.model.state_dict().values(), loaded.model.state_dict().values()):
        assert torch.equal(a, b)
    obs, answers = gp_obs(3, vision=True)
    assert loaded.tokenizer.get_vocab() == tiny.tokenizer.get_vocab()
    for key, value in tiny.prompt_inputs(obs).items():  # tokenizer, template, image processor
        assert torch.equal(loaded.prompt_inputs(obs)[key], value), key
    responses = [tiny.response_ids(a) for a in answers]
    assert [loaded.response_ids(a) for a in answers] == responses
    with torch.no_grad():
        s1, s2 = tiny.score(obs, responses, 0.5), loaded.score(obs, responses, 0.5)
    for f in ("logprobs", "mask", "values"):
        assert torch.equal(getattr(s1, f), getattr(s2, f)), f
    assert tiny.generate(obs, max_new_tokens=5) == loaded.generate(obs, max_new_tokens=5)
    # without its value head: a fresh one, and a warning saying so
    os.remove(tmp_path / "value_head.safetensors")
    with caplog.at_level("WARNING", logger="policy"):
        fresh = P.load_policy(str(tmp_path), seed=3)
    assert "fresh value head" in caplog.text
    assert not torch.equal(fresh.value_head[0].weight, tiny.value_head[0].weight)
    os.remove(tmp_path / "model.safetensors")
    with pytest.raises(ValueError, match="not a Hugging Face checkpoint"):
        P.load_policy(str(tmp_path))


def test_bad_model_paths(tmp_path):
    with pytest.raises(ValueError, match="neither"):
        P.load_policy(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="not a Hugging Face checkpoint"):
        P.load_policy(str(tmp_path))  # an empty directory
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a Hugging Face checkpoint"):
        P.load_policy(str(tmp_path))


def byte_bpe(specials, **wrapper):
    """A small byte-level BPE tokenizer with the given special tokens."""
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, show_progress=False, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[AddedToken(s, special=True, normalized=False) for s in specials])
    raw.train_from_iterator(generalpoints.tokenizer_corpus(50), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=raw, **wrapper)


QWEN_TEMPLATE = (
    "{%- for m in messages -%}<|im_start|>{{ m['role'] }}\n"
    "{%- if m['content'] is string -%}{{ m['content'] }}{%- else -%}{%- for p in m['content'] -%}"
    "{%- if p['type'] == 'image' -%}<|vision_start|><|image_pad|><|vision_end|>"
    "{%- elif p['type'] == 'text' -%}{{ p['text'] }}{%- endif -%}{%- endfor -%}{%- endif -%}"
    "<|im_end|>\n{%- endfor -%}{%- if add_generation_prompt -%}<|im_start|>assistant\n{%- endif -%}")
LLAMA_TEMPLATE = (
    "{{- bos_token -}}{%- for m in messages -%}<|start_header_id|>{{ m['role'] }}"
    "<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|start_header_id|>assistant<|end_header_id|>\n\n{%- endif -%}")


def save_tiny_qwen2_vl(path):
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>",
                "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]
    tok = byte_bpe(specials, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                   chat_template=QWEN_TEMPLATE)
    ids = {s: tok.convert_tokens_to_ids(s) for s in specials}
    config = Qwen2VLConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, eos_token_id=ids["<|im_end|>"],
                         pad_token_id=ids["<|endoftext|>"],
                         rope_parameters={"rope_type": "default", "rope_theta": 10000.0,
                                          "mrope_section": [2, 3, 3]}),  # sums to head_dim / 2
        vision_config=dict(depth=2, embed_dim=32, hidden_size=64, num_heads=2, mlp_ratio=2),
        image_token_id=ids["<|image_pad|>"], video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"], vision_end_token_id=ids["<|vision_end|>"])
    torch.manual_seed(0)
    Qwen2VLForConditionalGeneration(config).save_pretrained(path)
    tok.save_pretrained(path)
    Qwen2VLImageProcessorPil(min_pixels=224 * 224, max_pixels=224 * 224).save_pretrained(path)


def save_tiny_llama(path):
    specials = ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
    tok = byte_bpe(specials, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>",
                   chat_template=LLAMA_TEMPLATE)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=1024, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, tie_word_embeddings=True)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)


def check_checkpoint(policy, vision):
    """Generates (with an image for VLMs) and scores a padded batch exactly."""
    obs, _ = gp_obs(3, vision=vision)
    obs[1] = multi_turn(obs[1])
    outs = policy.generate(obs, temperature=1.0, max_new_tokens=6)
    assert len(outs) == 3 and all(1 <= len(g.token_ids) <= 6 for g in outs)
    responses = [g.token_ids for g in outs]
    with torch.no_grad():
        batched = policy.score(obs, responses)
        for i in range(3):
            alone = policy.score([obs[i]], [responses[i]])
            torch.testing.assert_close(batched.logprobs[i, :len(responses[i])],
                                       alone.logprobs[0], atol=1e-5, rtol=0)


@pytest.mark.parametrize("family", ["qwen2_vl", "llama"])
def test_other_families_load_through_a_path(family, tmp_path, caplog):
    (save_tiny_qwen2_vl if family == "qwen2_vl" else save_tiny_llama)(tmp_path)
    vision = family == "qwen2_vl"
    with caplog.at_level("WARNING", logger="policy"):
        policy = P.load_policy(str(tmp_path), vision=vision)
    assert "fresh value head" in caplog.text
    assert (policy.processor is not None) == vision
    check_checkpoint(policy, vision=vision)
    if vision:
        check_checkpoint(policy, vision=False)  # a VLM plays the language variants too
        check_cached_image_encoding(policy, virl_vision_obs(5))
    else:
        with pytest.raises(ValueError, match="text-only"):
            P.load_policy(str(tmp_path), vision=True)
        obs, _ = gp_obs(1, vision=True)
        with pytest.raises(ValueError, match="text-only"):
            policy.generate(obs)
    policy.save(tmp_path / "again")  # our checkpoint format for any family
    again = P.load_policy(str(tmp_path / "again"), vision=vision)
    assert torch.equal(again.value_head[0].weight, policy.value_head[0].weight)
