"""Each prompt encoded once. PPO samples an attempt, scores it twice (its old and its reference
log-probs) and trains on it every epoch, so `Policy.prompt_inputs` meets every prompt four to five
times an update: tokenizing text prompts each time was about a tenth of a CPU update, and running
the image processor on VL prompts about a quarter. Both methods give exactly what the tokenizer or
the processor gives for the whole batch, left-padded (tests/test_policy.py checks it).
"""
import torch


class PromptCache:
    def __init__(self, tokenizer, processor, max_bytes=2**30):
        self.tokenizer, self.processor, self.max_bytes = tokenizer, processor, max_bytes
        self.ids, self.rows, self.row_bytes = {}, {}, 0  # text -> token ids; (text, id(image)) -> encoding

    def texts(self, texts):
        """input_ids / attention_mask of text-only prompts, each text tokenized once."""
        if len(self.ids) > 8192:
            self.ids.clear()
        for text in texts:
            if text not in self.ids:
                self.ids[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        ids = [self.ids[text] for text in texts]
        width, pad = max(len(x) for x in ids), self.tokenizer.pad_token_id
        return {"input_ids": torch.tensor([[pad] * (width - len(x)) + x for x in ids]),
                "attention_mask": torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])}

    def images(self, texts, images):
        """The processor's encoding of prompts with one image each, from each (text, image object)
        pair's own encoding, collated as the processor collates; None when their shapes differ
        (e.g. images with different tile counts), and the caller asks the processor."""
        rows = []
        for text, image in zip(texts, images):
            entry = text, id(image)
            if entry not in self.rows:
                if self.row_bytes > self.max_bytes:  # a tiny model's 224-pixel tile: 0.6 MB
                    self.rows.clear()
                    self.row_bytes = 0
                enc = dict(self.processor(text=[text], images=[[image]], return_tensors="pt",
                                          add_special_tokens=False))
                self.rows[entry] = image, enc  # the entry keeps its image alive: no other image takes its id
                self.row_bytes += sum(v.nbytes for v in enc.values())
            rows.append(self.rows[entry][1])
        width, out = max(r["input_ids"].shape[1] for r in rows), {}
        for key in rows[0]:
            parts = []
            for r in rows:
                v, n = r[key], r["input_ids"].shape[1]
                if v.dim() >= 2 and v.shape[:2] == (1, n):  # one entry per token (ids, masks): pad on the left
                    fill = self.tokenizer.pad_token_id if key == "input_ids" else 0
                    v = torch.cat([v.new_full((1, width - n, *v.shape[2:]), fill), v], 1)
                parts.append(v)  # per image (pixels, grid sizes): stacked as they are
            if len({v.shape[1:] for v in parts}) > 1:
                return None
            out[key] = torch.cat(parts, 0)
        return out
