"""The KV cache Policy.generate passes to Hugging Face's generate (cache=): its DynamicCache with each
plain layer a GrowingLayer, which writes every new token's keys and values in place.

DynamicLayer appends with torch.cat, which copies the whole cache at every generated token;
GrowingLayer keeps a buffer that doubles when full and returns views of it: the same tensors,
so the same tokens (a short PPO run logs identical metrics): 1.04x on benchmarks/rollout_speed.py's
batch of 64, and with Policy.chat_text's memo a short PPO run is 7% faster (experiments/LOG.md).
"""
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer


class GrowingLayer(DynamicLayer):
    """A KV-cache layer that writes each new token's keys and values in place, into a buffer that
    doubles when full, where DynamicLayer's torch.cat copies the whole cache at every token: the
    same tensors, with less copying."""

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, new = self.get_seq_length(), key_states.shape[-2]
        keys, values = getattr(self, "buffers", (None, None))
        if (keys is None or keys.shape[:-2] != key_states.shape[:-2] or keys.shape[-2] < n + new
                or (n and self.keys.data_ptr() != keys.data_ptr())):  # too small, or not what the cache holds
            keys = key_states.new_empty(*key_states.shape[:-2], 2 * (n + new), key_states.shape[-1])
            values = value_states.new_empty(*value_states.shape[:-2], 2 * (n + new), value_states.shape[-1])
            if n:  # what the cache holds (as generate may have reordered it)
                keys[..., :n, :], values[..., :n, :] = self.keys, self.values
            self.buffers = keys, values
        keys[..., n:n + new, :], values[..., n:n + new, :] = key_states, value_states
        self.keys, self.values = keys[..., :n + new, :], values[..., :n + new, :]
        return self.keys, self.values


def growing_cache(model):
    """generate()'s DynamicCache for `model`, its plain layers GrowingLayer (sliding ones kept)."""
    cache = DynamicCache(config=model.config)
    cache.layers = [GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache
