"""Predicted GPU memory of notebook 11's two passes on a T4 (t2v_helpers.memory.T4_FREE), from t2v_helpers.memory.

    .venv/bin/python benchmarks/upscale_memory.py

No GPU measured these: they are the memory model's predictions (notebook 07) for the
full-size ModelScope architecture, which zeroscope's fine-tunes share, in float16 with VAE
slicing: 24 frames of 576 x 320 (zeroscope_v2_576w) and of 1024 x 576 (zeroscope_v2_XL).
The model leaves out forward chunking, which the XL card turns on to save memory, and the
VAE encoding of the input frames. Writes benchmarks/results/upscale-memory.json (never overwriting).
"""

from datetime import date

from t2v_helpers.families import find_model
from t2v_helpers.memory import GIB, MARGIN_BYTES, MARGIN_FRACTION, MODES_FASTEST_FIRST, T4_FREE, choose_offload, fits, predict

from bench import save_results

FREE_GIB = T4_FREE / GIB  # the lessons' one figure for what a T4 has free


def main():
    passes = {}
    for name in ("zeroscope", "zeroscope-xl"):
        model = find_model(name)
        mode, reason, predictions = choose_offload(FREE_GIB * GIB, frames=model.frames, height=model.height, width=model.width)
        passes[name] = dict(
            model=model.id, frames=model.frames, height=model.height, width=model.width, chosen=mode, reason=reason,
            peak_gib={p.mode: round(p.peak / GIB, 2) for p in predictions},
            weights_gib={p.mode: round(p.weights / GIB, 2) for p in predictions},
            activations_gib={p.mode: round(p.activations / GIB, 2) for p in predictions},
            fits={p.mode: p.fits for p in predictions},
            # The most frames (up to the model's own) predicted to fit at this size, per mode; 0 if none.
            most_frames_that_fit={
                m: max([f for f in range(1, model.frames + 1)
                        if fits(predict(m, frames=f, height=model.height, width=model.width), FREE_GIB * GIB)], default=0)
                for m in MODES_FASTEST_FIRST
            },
        )
        print(f"{name}: {reason} Most frames predicted to fit: {passes[name]['most_frames_that_fit']}")
    results = dict(
        title="Predicted peak GPU memory of the two passes of notebook 11 (t2v_helpers.memory), float16, VAE slicing",
        date=date.today().isoformat(),
        free_gib=FREE_GIB,
        margin=dict(fraction_of_activations=MARGIN_FRACTION, gib=MARGIN_BYTES / GIB),
        measured=False,
        passes=passes,
    )
    print("wrote", save_results(results, "upscale-memory"))


if __name__ == "__main__":
    main()
