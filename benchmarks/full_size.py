"""Random weights for a full-size model built on the meta device, for the memory benchmarks.

Memory depends on the shapes of the layers, not on the values of the weights: each family's
memory profile builds its real parts from the configs in its family file
(`t2v_helpers.memory.profile_of(name).parts()`), on the meta device (shapes only), and
`materialize` gives them random weights, so text_encoder_memory.py and transformer_memory.py
(beside this file) measure real sizes without downloading anything.
"""

import torch

from t2v_helpers.notices import quiet_empty_float32_notice


def materialize(module, dtype, seed=0):
    """Give a module built on the meta device random weights in `dtype`, on the CPU.

    It casts on the meta device and allocates each tensor once in `dtype`, so a
    5.7-billion-parameter encoder never needs a float32 copy; weights shared between layers
    (T5's input embedding) stay shared, as loading a checkpoint keeps them.
    """
    with quiet_empty_float32_notice():
        module = module.to(dtype)
    made = {}
    for layer in module.modules():
        for kind in (layer._parameters, layer._buffers):
            for name, tensor in kind.items():
                if tensor is None:
                    continue
                if id(tensor) not in made:
                    empty = torch.empty_like(tensor, device="cpu")
                    made[id(tensor)] = torch.nn.Parameter(empty, requires_grad=False) if kind is layer._parameters else empty
                kind[name] = made[id(tensor)]
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in made.values():
            if tensor.is_floating_point():
                tensor.normal_(0.0, 0.02, generator=generator)
    return module.eval()
