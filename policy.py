"""The policy: a Hugging Face (vision-)language model with a value head, batched generation and
exact per-token log-probs: everything about "the model", so that the trainers stay about theirs.

Two kinds of model, one code path:
- `load_policy("tiny")` (the default everywhere): a Llama-3.2-Vision model (`Mllama*` classes,
  the paper's architecture) built from a config with seeded random weights, sized for a
  2-core CPU: hidden 128, two self-attention layers plus one cross-attention layer (where the
  image enters; it is skipped on text-only input), a 64-wide vision tower reading one 224x224
  tile. Its tokenizer is a byte-level BPE trained here, deterministically, on the text of every
  variant of both environments (`tokenizer_corpus()`), so that the tasks' fixed phrases become
  single tokens, digits stay single and any text still tokenizes. "tiny-large" is ~5x bigger;
  "tiny-vl" is "tiny" with 56-pixel image patches, the one that learns to read GP-VL's cards.
- `load_policy(PATH)`: a local checkpoint through the Auto classes (`AutoModelForImageTextToText`
  for VLMs such as Qwen2-VL or Llama-3.2-Vision, `AutoModelForCausalLM` for text-only LMs).
  A directory written by `Policy.save` is such a checkpoint plus `value_head.safetensors`.

The value head is the paper's MLP (hidden -> 1024 -> 512 -> 1, ReLU, fp32) on the last layer's
hidden state at the last prompt token. `score` gives PPO both its old and its new log-probs
(logits / sampling temperature, fp32 log-softmax, as the public code): the first ratio is 1.
Under torchrun sft.py's "FSDP by hand" wraps the model; generate and save call its two gathers.

    python policy.py                      # build the tiny model, greedy-answer one GP prompt
    python policy.py --model runs/x/final --vision
"""
import contextlib
import copy
import functools
import inspect
import json
import logging
import os
import pickle
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (AutoConfig, AutoImageProcessor, AutoModelForCausalLM,
                          AutoModelForImageTextToText, AutoProcessor, AutoTokenizer,
                          GenerationConfig, MllamaConfig, MllamaForConditionalGeneration,
                          MllamaProcessor, PreTrainedTokenizerFast, ProcessorMixin)
from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil
from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor
from transformers.utils import logging as hf_logging

from cli import RunError, follow_umask, one_line, quiet, unreadable
from kvcache import growing_cache
from prompt_cache import PromptCache

log = logging.getLogger("policy")
hf_logging.disable_progress_bar()  # no "Loading weights" bars at every checkpoint

# ---- The tiny model: a Llama-3.2-Vision config and a tokenizer trained on the environments' text ----

# Measured on 2 CPU cores: a ~0.6M-parameter decoder with short sequences learns GP-L fastest.
# Mllama counts its cross-attention layers inside num_hidden_layers.
TINY_SIZES = {
    "tiny": dict(hidden=128, layers=3, cross_layers=[1], heads=4, mlp=384,
                 vision_width=64, vision_layers=2, vision_heads=2, patch=14),
    "tiny-large": dict(hidden=256, layers=5, cross_layers=[2], heads=8, mlp=768,
                       vision_width=128, vision_layers=4, vision_heads=4, patch=14),
    # "tiny" with 56-pixel patches, 4 x 4 per image: in GP-VL's table each card's large rank sits in
    # one patch; it learns to read the ranks where "tiny" stays at chance (experiments/LOG.md).
    "tiny-vl": dict(hidden=128, layers=3, cross_layers=[1], heads=4, mlp=384,
                    vision_width=64, vision_layers=2, vision_heads=2, patch=56),
}
IMAGE_SIZE = 224        # one tile: 16 x 16 patches of 14 pixels ("tiny"), 4 x 4 of 56 ("tiny-vl")
CONTEXT = 2048          # the tiny model's max_position_embeddings
BOS, EOT, IMAGE, PAD = "<|begin_of_text|>", "<|eot_id|>", "<|image|>", "<|finetune_right_pad_id|>"
ROLES = ("<|system|>", "<|user|>", "<|assistant|>")  # one token per role header
SPECIAL_TOKENS = [BOS, EOT, IMAGE, "<|python_tag|>", PAD, *ROLES]  # Mllama needs the python tag

# Llama-3 layout with one-token role headers: <bos><|user|>[<|image|>]text<eot><|assistant|>
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- for message in messages -%}"
    "{{- '<|' + message['role'] + '|>' -}}"
    "{%- if message['content'] is string -%}{{- message['content'] -}}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{- '<|image|>' -}}"
    "{%- elif part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|eot_id|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|assistant|>' -}}{%- endif -%}"
)


def build_tokenizer(corpus=None, vocab_size=2048):
    """A byte-level BPE trained on `corpus` (default: every environment variant's text).

    Digits are split off one by one, and ByteLevel runs without its word regex, so merges may
    cross spaces: "You are an expert" or '", "formula": "' become single tokens while a number
    stays digit by digit. Training is deterministic: the same corpus gives the same vocabulary.
    """
    if corpus is None:
        import generalpoints
        import virl
        corpus = generalpoints.tokenizer_corpus() + virl.tokenizer_corpus()
    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    raw.decoder = decoders.ByteLevel()
    specials = [AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    raw.train_from_iterator(corpus, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=raw, bos_token=BOS, eos_token=EOT,
                                   pad_token=PAD, padding_side="left",
                                   chat_template=CHAT_TEMPLATE, model_max_length=CONTEXT)


def build_tiny(size="tiny", seed=0, corpus=None):
    """(model, processor) of a tiny Llama-3.2-Vision with seeded random weights."""
    if size not in TINY_SIZES:
        raise ValueError(f"unknown tiny size {size!r} (choose from {', '.join(TINY_SIZES)})")
    s = TINY_SIZES[size]
    tok = build_tokenizer(corpus)
    ids = {t: tok.convert_tokens_to_ids(t) for t in (BOS, EOT, PAD, IMAGE)}
    config = MllamaConfig(
        text_config=dict(
            vocab_size=len(tok), hidden_size=s["hidden"], num_hidden_layers=s["layers"],
            cross_attention_layers=s["cross_layers"], num_attention_heads=s["heads"],
            num_key_value_heads=s["heads"], intermediate_size=s["mlp"],
            max_position_embeddings=CONTEXT, bos_token_id=ids[BOS], eos_token_id=ids[EOT],
            pad_token_id=ids[PAD]),
        vision_config=dict(
            hidden_size=s["vision_width"], num_hidden_layers=s["vision_layers"],
            num_global_layers=1, attention_heads=s["vision_heads"],
            intermediate_size=4 * s["vision_width"], image_size=IMAGE_SIZE, patch_size=s["patch"],
            max_num_tiles=1, supported_aspect_ratios=[[1, 1]], intermediate_layers_indices=[0],
            vision_output_dim=2 * s["vision_width"]),  # width x (len(indices) + 1)
        image_token_index=ids[IMAGE])
    torch.manual_seed(seed)
    model = MllamaForConditionalGeneration(config)
    # Mllama's tanh gates on the image path (the cross-attention layer's two, the vision tower's
    # positional embedding's) start at 0, as in the released checkpoints, whose pretraining opened
    # them. From a random init they keep the image out of the language model and of its gradients:
    # trained to name one card per image for 600 steps, the model stayed at chance (3 of 64), with
    # the gates at 1 it named 64 of 64 (experiments/README.md, "GP-VL"). Open them.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("cross_attn_attn_gate", "cross_attn_mlp_gate", "gated_positional_embedding.gate")):
                p.fill_(1.0)
    model.generation_config = GenerationConfig(bos_token_id=ids[BOS], eos_token_id=ids[EOT],
                                               pad_token_id=ids[PAD])
    image_processor = MllamaImageProcessorPil(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, max_image_tiles=1)
    processor = MllamaProcessor(image_processor, tok, chat_template=CHAT_TEMPLATE)
    return model, processor


# ---- Loading a local checkpoint through the Auto classes ------------------------------------

class QwenVLImageProcessor(Qwen2VLProcessor):
    """Qwen2(.5)-VL's processor without its video half, which needs torchvision (measured with transformers 5.24:
    without it AutoProcessor silently returns only the tokenizer)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template)


def _chat_template(path, tokenizer):
    """The chat template of a checkpoint, wherever it was saved."""
    if tokenizer.chat_template:
        return tokenizer.chat_template
    for name in ("chat_template.jinja", "chat_template.json"):
        if os.path.exists(os.path.join(path, name)):
            with open(os.path.join(path, name)) as f:
                text = f.read()
            return json.loads(text)["chat_template"] if name.endswith(".json") else text
    return None


def _processor(path, config):
    """AutoProcessor, or for Qwen2(.5)-VL without torchvision the image-only processor."""
    try:
        processor = AutoProcessor.from_pretrained(path)
    except ImportError:  # a video processor that needs torchvision
        processor = None
    if isinstance(processor, ProcessorMixin):
        return processor
    if not config.model_type.startswith("qwen2"):  # failed, or only the tokenizer came back
        raise ValueError(f"no usable processor for {config.model_type}")
    tokenizer = AutoTokenizer.from_pretrained(path)
    return QwenVLImageProcessor(AutoImageProcessor.from_pretrained(path), tokenizer,
                                chat_template=_chat_template(path, tokenizer))


def load_checkpoint(path, vision=False, device="cpu", dtype=None):
    """(model, tokenizer, processor or None) from a local Hugging Face checkpoint directory."""
    if not os.path.isdir(path):
        raise ValueError(f"--model {path!r} is neither a tiny size ({', '.join(TINY_SIZES)}) nor a directory")

    def unusable(e):  # missing files, bad JSON, an unknown model type, truncated weights: one line
        reason = unreadable(path) or one_line(e)  # a file we may not read, not "No such file"
        if isinstance(e, pickle.UnpicklingError):  # a .bin that is more than tensors: never run
            reason = "its pickled weights hold more than tensors (refused by torch.load weights_only)"
        return ValueError(f"{path!r} is not a Hugging Face checkpoint that loads: {reason}")

    try:
        config = AutoConfig.from_pretrained(path)
    except Exception as e:  # whatever a malformed config.json raises (a model_type 5, a list, a bad size)
        raise unusable(e) from e
    is_vlm = config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    if vision and not is_vlm:
        raise ValueError(f"--model {path!r} is a text-only {config.model_type} model; it cannot take images")
    auto = AutoModelForImageTextToText if is_vlm else AutoModelForCausalLM
    kwargs = {"dtype": dtype} if dtype is not None else {}
    try:
        with quiet("transformers"):  # its load report: said below in one line
            model, info = auto.from_pretrained(path, output_loading_info=True, **kwargs)
        if stray := sorted(info["missing_keys"]) or sorted(info["unexpected_keys"]):  # else re-initialised / dropped
            raise ValueError(f"{len(stray)} weights do not fit its config.json (first: {stray[0]})")
        model = model.to(device)
        processor = _processor(path, config) if is_vlm else None
        tokenizer = processor.tokenizer if is_vlm else AutoTokenizer.from_pretrained(path)
    except Exception as e:  # whatever its files raise (bad sizes or dtype, damaged weights or tokenizer)
        raise unusable(e) from e
    tokenizer.padding_side = "left"  # batched generation appends on the right
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer, processor


# ---- The policy object ----------------------------------------------------------------------

@dataclass
class Generation:
    text: str             # decoded response, special tokens dropped
    token_ids: list       # sampled ids, the EOS included when produced
    cut_off: bool         # True when max_new_tokens ran out before an EOS


@dataclass
class Batch:
    """Prompts left-padded to a common length P, each response right after it, right-padded:

        input_ids      [pad pad p0 p1 p2 | r0 r1 EOS]      prompt_len P = 5
                       [p0  p1  p2 p3 p4 | r0 EOS pad]
        response_mask  [0   0   0  0  0  | 1  1  1  ]
                       [0   0   0  0  0  | 1  1  0  ]

    the layout `generate` produces, so scoring sees exactly what sampling saw.
    """
    inputs: dict           # the model's forward kwargs: input_ids [B, L], attention_mask [B, L],
                           # position_ids, pixel values etc. as the family needs
    response_mask: torch.Tensor  # [B, L] 1 on response tokens only
    prompt_len: int              # P; the last prompt token sits at column P - 1

    @property
    def input_ids(self):
        return self.inputs["input_ids"]

    @property
    def attention_mask(self):
        return self.inputs["attention_mask"]

    @property
    def labels(self):  # SFT targets: the response tokens, -100 elsewhere
        return self.input_ids.masked_fill(self.response_mask == 0, -100)  # [B, L]


@dataclass
class Scores:
    logprobs: torch.Tensor     # [B, R] log p(response token), 0 on padding
    mask: torch.Tensor         # [B, R] 1 on response tokens
    values: torch.Tensor       # [B] value head at the last prompt token
    prompt_tokens: torch.Tensor  # [B] non-padding prompt tokens (image placeholders included)


def answer_mask(tokenizer, responses, answer_key, width) -> torch.Tensor:
    """[B, width]: 1 from the response token where '"<answer_key>"' starts, 0 before it and on the
    padding; all 0 when the key never appears (the whole response then counts as "thought").

    The character offset of every token comes from decoding the response token by token: the
    ids may be a sampled, non-canonical tokenization, so re-tokenizing the text is not safe.
    """
    rows = []
    for response in responses:
        pieces = [_piece(tokenizer, t) for t in response]
        start, end, first = "".join(pieces).find(f'"{answer_key}"'), 0, len(response)
        for i, piece in enumerate(pieces):
            end += len(piece)  # piece i covers characters [end - len, end)
            if 0 <= start < end:
                first = i
                break
        rows.append([0] * first + [1] * (len(response) - first) + [0] * (width - len(response)))
    return torch.tensor(rows)


@functools.cache
def _piece(tokenizer, token_id: int) -> str:
    return tokenizer.decode([token_id])


def value_head(hidden_size):
    """The paper's value head (public code: rl/trainer/model_tz_llama.py): hidden -> 1024 -> 512 -> 1
    with ReLU, kept in fp32."""
    return nn.Sequential(nn.Linear(hidden_size, 1024), nn.ReLU(), nn.Linear(1024, 512),
                         nn.ReLU(), nn.Linear(512, 1))


class Policy(nn.Module):
    """A model, its tokenizer/processor and its value head (load_policy): an nn.Module whose children
    `model` and `value_head` hold every parameter. `num_params` is N of the paper's compute axis:
    every model parameter, vision tower included, not the head."""

    def __init__(self, model, tokenizer, processor, head, device):
        super().__init__()
        self.model, self.value_head = model, head
        self.tokenizer, self.processor, self.device = tokenizer, processor, torch.device(device)
        self.num_params = sum(p.numel() for p in model.parameters())
        self.sharded, self.gathered, self.full_state = False, None, None  # sft.shard: FSDP, its two gathers
        self._chat_texts, self.encoded = {}, PromptCache(tokenizer, processor)  # PPO meets each prompt 4-5 times
        self._ids_only = None  # whether text prompts encode to input_ids + attention_mask alone
        config = model.config
        self.context = config.get_text_config().max_position_embeddings
        gen_eos = model.generation_config.eos_token_id
        gen_eos = gen_eos if isinstance(gen_eos, list) else [gen_eos]
        self.eos_id = tokenizer.eos_token_id
        self.eos_ids = sorted({self.eos_id, *(i for i in gen_eos if i is not None)})
        # A random or young VLM writes image placeholders, which break the next forward
        # (seen with tiny random models): never sample them, nor a bos or a pad token.
        suppress = {getattr(config, name, None) for name in (
            "image_token_id", "image_token_index", "video_token_id", "vision_start_token_id",
            "vision_end_token_id")}
        suppress |= {tokenizer.bos_token_id, tokenizer.pad_token_id}
        if processor is not None:
            suppress.add(getattr(processor, "image_token_id", None))
        self.suppress_ids = sorted(i for i in suppress if i is not None and i not in self.eos_ids)

    # --- prompts -----------------------------------------------------------------------------
    def chat_text(self, messages):
        """The prompt string for one conversation, ending with the assistant header (memoised:
        PPO renders each prompt for generation, two scoring passes and every epoch)."""
        if (key := repr(messages)) in self._chat_texts:
            return self._chat_texts[key]
        if self.processor is not None and getattr(self.processor, "chat_template", None):
            text = self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        elif self.tokenizer.chat_template is None:
            raise ValueError("the tokenizer has no chat template")
        else:
            flat = [{"role": m["role"], "content": m["content"] if isinstance(m["content"], str)
                     else "".join(p.get("text", "") for p in m["content"])} for m in messages]
            text = self.tokenizer.apply_chat_template(flat, add_generation_prompt=True, tokenize=False)
        if len(self._chat_texts) > 8192:
            self._chat_texts.clear()
        self._chat_texts[key] = text
        return text

    def prompt_inputs(self, obs_list):
        """Model inputs of a batch of observations, prompts left-padded."""
        texts, images = [], []
        for obs in obs_list:
            n_parts = sum(isinstance(m["content"], list) and any(
                p.get("type") == "image" for p in m["content"]) for m in obs["messages"])
            image = obs.get("image")
            if image is not None and getattr(self.processor, "image_processor", None) is None:
                raise ValueError("this model is text-only; it cannot take an image")
            if n_parts != (image is not None):
                raise ValueError(f"an observation has {n_parts} image parts but "
                                 f"{'an' if image is not None else 'no'} image")
            texts.append(self.chat_text(obs["messages"]))
            images.append(image)
        has_image = [im is not None for im in images]
        if any(has_image) and not all(has_image):
            raise ValueError("a batch must be all with images or all without")
        kwargs = dict(padding="longest", return_tensors="pt", add_special_tokens=False)
        if not any(has_image) and self._ids_only is None:  # e.g. Qwen2-VL's processor adds mm_token_type_ids
            probe = self.tokenizer(texts[:1], **kwargs) if self.processor is None else \
                self.processor(text=texts[:1], **kwargs)
            self._ids_only = set(probe) == {"input_ids", "attention_mask"}  # else no cache
        if not any(has_image) and self._ids_only:  # each prompt's ids cached, then left-padded
            return {k: v.to(self.device) for k, v in self.encoded.texts(texts).items()}
        if self.processor is None:
            enc = self.tokenizer(texts, **kwargs)
        elif all(has_image):
            enc = self.encoded.images(texts, images) or self.processor(
                text=texts, images=[[im] for im in images], **kwargs)
        else:
            enc = self.processor(text=texts, **kwargs)
        return {k: v.to(self.device) for k, v in enc.items()}

    def _check_context(self, length):
        if length > self.context:
            raise RunError(f"conversation of {length} tokens is longer than the model's context of "
                           f"{self.context} tokens: lower --max-new-tokens or the attempts")

    # --- sampling ----------------------------------------------------------------------------
    @torch.no_grad()
    def generate(self, obs_list, temperature=0.0, max_new_tokens=64, min_new_tokens=0):
        """Batched sampling with the KV cache: temperature 0 = greedy, > 0 = plain sampling
        (top-k / top-p off, as PPO needs: the scored distribution), None = the checkpoint's own
        generation_config (the public evaluator's way). Returns one Generation per observation."""
        inputs = self.prompt_inputs(obs_list)
        prompt_len = inputs["input_ids"].shape[1]
        self._check_context(prompt_len + max_new_tokens)
        limits = dict(max_new_tokens=max_new_tokens, min_new_tokens=min_new_tokens, eos_token_id=self.eos_ids,
                      pad_token_id=self.tokenizer.pad_token_id, suppress_tokens=self.suppress_ids or None,
                      use_cache=True)
        if temperature is None:  # the checkpoint's own settings, as the public evaluator samples
            config = copy.deepcopy(self.model.generation_config)
            config.update(**limits)
        else:  # every field set explicitly: a checkpoint's generation_config (repetition
            # penalty, top-k) would otherwise fill in whatever is left unset
            sampling = dict(do_sample=True, temperature=temperature, top_k=0, top_p=1.0,
                            typical_p=1.0) if temperature > 0 else dict(do_sample=False)
            config = GenerationConfig(**sampling, repetition_penalty=1.0, no_repeat_ngram_size=0,
                                      num_beams=1, **limits)
        with self.gathered() if self.sharded else contextlib.nullcontext({}) as extra:  # sft.py, FSDP 3
            out = self.model.generate(**inputs, generation_config=config, cache=growing_cache(self.model),
                                      **extra)
        results = []
        for row in out[:, prompt_len:].tolist():  # [B, new]
            end = next((i for i, t in enumerate(row) if t in self.eos_ids), None)
            ids = row if end is None else row[:end + 1]
            results.append(Generation(self.tokenizer.decode(ids, skip_special_tokens=True),
                                      ids, end is None))
        return results

    def response_ids(self, text):
        """Token ids of an answer as the model should write it: text then end-of-turn."""
        return self.tokenizer(text, add_special_tokens=False)["input_ids"] + [self.eos_id]

    # --- scoring -----------------------------------------------------------------------------
    def build_batch(self, obs_list, responses):
        """Prompt + response inputs in the layout of `Batch` (responses are lists of ids)."""
        inputs = self.prompt_inputs(obs_list)
        ids = inputs["input_ids"]  # [B, P]
        batch_size, prompt_len = ids.shape
        resp_len = max(len(r) for r in responses)
        self._check_context(prompt_len + resp_len)
        pad = self.tokenizer.pad_token_id
        resp = torch.full((batch_size, resp_len), pad, dtype=ids.dtype)  # [B, R]
        resp_mask = torch.zeros(batch_size, resp_len, dtype=torch.long)  # [B, R]
        for i, r in enumerate(responses):
            resp[i, :len(r)] = torch.tensor(r, dtype=ids.dtype)
            resp_mask[i, :len(r)] = 1
        resp, resp_mask = resp.to(self.device), resp_mask.to(self.device)
        out = {}
        for key, value in inputs.items():
            if key == "input_ids":
                value = torch.cat([value, resp], 1)  # [B, L]
            elif key == "attention_mask":
                value = torch.cat([value, resp_mask], 1)  # [B, L]
            elif value.dim() >= 2 and value.shape[:2] == (batch_size, prompt_len):
                # per-token extras (Mllama's cross_attention_mask, Qwen's mm_token_type_ids):
                # response tokens repeat the last prompt token's row, as generate does
                tail = value[:, -1:].expand(-1, resp_len, *value.shape[2:])
                value = torch.cat([value, tail], 1)
            out[key] = value
        # the positions generate uses (padding-aware, 3-D for Qwen's M-RoPE), from the
        # (private) method generate itself calls, so every family gets its own rule
        if "position_ids" in inspect.signature(self.model.forward).parameters:
            out["position_ids"] = self.model._prepare_position_ids_for_generation(
                out["input_ids"], dict(out))
        zeros = torch.zeros(batch_size, prompt_len, dtype=torch.long, device=self.device)
        return Batch(out, torch.cat([zeros, resp_mask], 1), prompt_len)

    def score(self, obs_list, responses, temperature=1.0, detach_value=False):
        """Per-token log-probs of `responses` and the value of each prompt (differentiable).

        logits at column t score token t + 1 (shift by one); divided by the sampling temperature
        and log-softmaxed in fp32, as the public code scores. The caller sets train()/eval(); the tiny model has
        no dropout either way.
        """
        if temperature <= 0:
            raise ValueError("score needs a temperature > 0 (greedy has no log-probs)")
        batch = self.build_batch(obs_list, responses)
        prompt_len, resp_len = batch.prompt_len, max(len(r) for r in responses)
        out = self.model(**batch.inputs, use_cache=False, output_hidden_states=True,
                         logits_to_keep=resp_len + 1)
        logits = out.logits[:, :-1].float() / temperature  # [B, R, V] columns P-1 .. L-2
        targets = batch.input_ids[:, prompt_len:]  # [B, R]
        mask = batch.response_mask[:, prompt_len:]  # [B, R]
        logprobs = torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        logprobs = logprobs * mask  # [B, R]
        hidden = out.hidden_states[-1][:, prompt_len - 1].float()  # [B, H] last prompt token
        if detach_value:  # the value loss then trains the head alone, not the shared model
            hidden = hidden.detach()
        values = self.value_head(hidden).squeeze(-1)  # [B]
        prompt_tokens = batch.attention_mask[:, :prompt_len].sum(1)  # [B]
        return Scores(logprobs, mask, values, prompt_tokens)

    # --- checkpoints -------------------------------------------------------------------------
    def save(self, out_dir):
        """save_pretrained (safetensors) + processor/tokenizer + value_head.safetensors, modes as the
        umask says. Sharded: every rank calls it, full_state gathers to rank 0, which alone writes."""
        model_state, head_state = self.full_state() if self.sharded else (None, self.value_head.state_dict())
        if head_state is None:  # a rank other than 0
            return
        os.makedirs(out_dir, exist_ok=True)
        self.model.save_pretrained(out_dir, state_dict=model_state)
        (self.processor or self.tokenizer).save_pretrained(out_dir)
        save_file({k: v.detach().float().cpu().contiguous() for k, v in head_state.items()},
                  os.path.join(out_dir, "value_head.safetensors"))
        follow_umask(out_dir)  # safetensors writes 0600: a colleague could not read the checkpoint


def load_policy(model="tiny", vision=False, seed=0, device=None, dtype=None, corpus=None,
                threads=1):
    """The Policy for "tiny" / "tiny-large" or a local checkpoint directory.

    vision: the caller will pass images (a text-only checkpoint is refused up front).
    seed: seeds the tiny model's weights and a fresh value head. corpus: tokenizer training
    text for the tiny model (default: both environments' tokenizer_corpus()).
    threads: torch CPU threads for this process (None: leave torch's setting); a second thread
    stalls the tiny model's ops whenever another process holds a core (9x slower, benchmarks/).
    """
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cpu" and threads:
        torch.set_num_threads(threads)
    head_path = None
    if model in TINY_SIZES:
        net, processor = build_tiny(model, seed, corpus)
        net = net.to(device=device, dtype=dtype) if dtype else net.to(device)
        tokenizer = processor.tokenizer
    else:
        net, tokenizer, processor = load_checkpoint(model, vision, device, dtype)
        head_path = os.path.join(model, "value_head.safetensors")
    net.eval()  # dropout off; the trainers call train() when they want it
    torch.manual_seed(seed)
    head = value_head(net.config.get_text_config().hidden_size)
    if head_path is not None:
        if os.path.exists(head_path):
            try:
                head.load_state_dict(load_file(head_path))
            except (OSError, RuntimeError, SafetensorError) as e:  # truncated, or another model's head
                raise ValueError(f"{head_path} cannot be loaded: {one_line(e)}") from e
        else:
            log.warning("%s has no value_head.safetensors: starting a fresh value head", model)
    # A NaN in the weights (a diverged run saved, a damaged file) would evaluate to 0% without
    # a word: refuse it here, where it is one pass over the weights.
    weights = {**net.state_dict(), **{f"value_head.{k}": v for k, v in head.state_dict().items()}}
    bad = next((k for k, v in weights.items() if v.is_floating_point() and not torch.isfinite(v).all()), None)
    if bad is not None:
        raise ValueError(f"{model}: the weights hold NaN or inf (first in {bad})")
    policy = Policy(net, tokenizer, processor, head.to(device), device)
    try:  # the chat template renders: a broken one would fail at the first prompt, mid-run
        policy.chat_text([{"role": "user", "content": [{"type": "text", "text": "Hi"}]}])
    except Exception as e:  # whatever jinja or the template raises
        raise ValueError(f"{model}: its chat template does not render ({one_line(e)})") from e
    return policy


# ---- torchrun: a sum over the ranks (sft.py's "FSDP by hand" joins the process group) -------

def all_sum(values: list[float]) -> list[float]:
    """Sum a list of floats over all ranks (identity without torch.distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return list(values)
    device = "cuda" if dist.get_backend() == "nccl" else "cpu"
    t = torch.tensor(values, dtype=torch.float64, device=device)  # [len(values)]
    dist.all_reduce(t)
    return t.tolist()


def main():
    import generalpoints
    from cli import SEED, ArgumentParser
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="'tiny', 'tiny-large', 'tiny-vl' or a checkpoint dir")
    parser.add_argument("--vision", action="store_true", help="show the cards as an image")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of the tiny model's weights")
    args = parser.parse_args()
    try:
        policy = load_policy(args.model, vision=args.vision, seed=args.seed)
    except ValueError as e:
        sys.exit(f"error: {e}")
    obs, _ = generalpoints.make_env(vision=args.vision, seed=args.seed).reset()
    prompt = policy.prompt_inputs([obs])["input_ids"].shape[1]
    gen = policy.generate([obs], temperature=0.0, max_new_tokens=40)[0]
    print(f"{args.model}: {policy.num_params:,} parameters, prompt of {prompt} tokens")
    print(f"greedy answer ({len(gen.token_ids)} tokens, cut off: {gen.cut_off}): {gen.text!r}")


if __name__ == "__main__":
    main()
