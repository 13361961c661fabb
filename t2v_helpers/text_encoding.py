"""Encode the prompt once, then free the text encoder: how a big text encoder fits a small machine. Notebook 10.

The text encoder of Wan 2.1 1.3B (UMT5-XXL, 5.7 billion parameters) has four times the
parameters of its transformer, and CogVideoX-2B's (T5-XXL) nearly three times. The encoder runs once per prompt, before the first denoising step, yet a
loaded pipeline holds it to the end: on the GPU without offload, in RAM with model
offload. `encode_then_free` encodes the prompt and the negative prompt with the
pipeline's own `encode_prompt` (so the embeddings are exactly those `pipe(prompt)` would
make), deletes the encoder, and returns the embeddings to pass as `pipe(**embeddings, ...)`.

Measured on the CPU with random weights of the real shapes (benchmarks/results/cpu-text-encoder-memory.json):
UMT5-XXL in bfloat16 held 10.95 GiB of RAM once loaded and peaked at 11.19 GiB encoding one
512-token prompt; after `free_text_encoder` the process held 0.48 GiB. T5-XXL held 9.24 GiB and
peaked at 9.31 GiB. Loading real weights adds what the file reader holds, so these are the
floor. These are bfloat16 figures: in float16 transformers keeps each encoder's feed-forward
output layers (`wo`, 1.0 billion parameters) in float32, so the float16 route needs about 2 GB
more (UMT5-XXL 12.46 GiB of weights, T5-XXL 10.75 GiB: `t2v_helpers.memory.weight_bytes`). A machine with little more RAM than that (Colab's free tier) cannot hold UMT5-XXL beside
the rest of the pipeline, and barely on its own: load the encoder straight onto the GPU instead,
e.g. `UMT5EncoderModel.from_pretrained(id, subfolder="text_encoder", dtype=torch.float16, device_map="cuda")`,
pass it to the pipeline's `from_pretrained(id, text_encoder=encoder, ...)`, call
`encode_then_free` first, and only then switch on model offload, which would otherwise move
the encoder into RAM (this recipe has not been run on a GPU here; the freeing has, on the CPU).
"""

import gc
import inspect

import torch

from .families import family_of
from .validate import check_negative_prompt, check_prompt


def encode_then_free(pipe, prompt, negative_prompt=None):
    """Encode `prompt` and `negative_prompt` once, free the text encoder, return the embeddings for `pipe(...)`. Notebook 10.

    Returns {'prompt_embeds': ..., 'negative_prompt_embeds': ...}; the pipeline then makes
    videos of this prompt without its text encoder (pass the embeddings instead of a
    prompt). The prompt is padded to the length the family's pipeline reads
    (`family.max_tokens`), so the video is the one `pipe(prompt, negative_prompt=...)` makes.
    With model offload the offload hooks are rebuilt without the encoder, as the hooks
    would otherwise keep it alive.
    """
    if getattr(pipe, "text_encoder", None) is None:
        raise ValueError("this pipeline has no text encoder (already freed?): pass the embeddings you kept instead of a prompt")
    # generate's checks, before anything is freed: a prompt refused after freeing could never be encoded again.
    tokenizer, limit = getattr(pipe, "tokenizer", None), family_of(pipe).max_tokens
    prompt = check_prompt(prompt, "prompt", tokenizer, limit)
    negative_prompt = check_negative_prompt(negative_prompt, tokenizer, limit)
    wanted = dict(
        prompt=prompt,
        negative_prompt=negative_prompt,
        do_classifier_free_guidance=True,
        device=pipe._execution_device,
        num_images_per_prompt=1,
        num_videos_per_prompt=1,
        max_sequence_length=limit,
    )
    accepted = inspect.signature(pipe.encode_prompt).parameters
    with torch.no_grad():
        prompt_embeds, negative_prompt_embeds = pipe.encode_prompt(**{k: v for k, v in wanted.items() if k in accepted})[:2]
    free_text_encoder(pipe)
    return {"prompt_embeds": prompt_embeds, "negative_prompt_embeds": negative_prompt_embeds}


def free_text_encoder(pipe):
    """Delete the pipeline's text encoder and give its memory back (RAM and GPU). Notebook 10."""
    offload_device = getattr(pipe, "_offload_device", None) if getattr(pipe, "_all_hooks", None) else None
    pipe.text_encoder = None
    if offload_device is not None:
        # Each model-offload hook holds the previous model of the chain: rebuild the chain without the encoder.
        pipe.remove_all_hooks()
        pipe.enable_model_cpu_offload(device=offload_device)
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
