"""Where an int8 streaming block's time goes: the quantized LSTM's cost per call, and the
``torch.ao`` module wrappers against the kernels called directly (``Int8Masks``).

One thread, four random unidirectional targets at hidden 256, stereo, 44.1 kHz, 16 kHz crop;
each figure is the fastest of 7 rounds (interleaved) of 200 calls.

    python benchmarks/int8_kernels.py              # nfft 4096, 2-hop blocks
    python benchmarks/int8_kernels.py --nfft 1024 --block-hops 1
"""

import argparse
import time
from collections.abc import Callable

import torch

from unmixlab.realtime import untrained_models
from unmixlab.streaming_step import Int8Masks


def fastest_ms(functions: dict[str, Callable[[], object]], rounds: int = 7, calls: int = 200):
    """Name -> the fastest round's milliseconds per call, rounds interleaved."""
    times = {name: [] for name in functions}
    for function in functions.values():
        function()  # first-call costs
    for _ in range(rounds):
        for name, function in functions.items():
            start = time.perf_counter()
            for _ in range(calls):
                function()
            times[name].append(1000 * (time.perf_counter() - start) / calls)
    return {name: min(values) for name, values in times.items()}


def through_modules(masks: Int8Masks, mag: torch.Tensor, h: torch.Tensor, c: torch.Tensor):
    """The masks through the quantized modules' ``forward`` (the wrappers Int8Masks skips)."""
    layers, hidden = masks.layers, masks.hidden_size
    x = torch.tanh(layers.fc1(mag)).view(mag.shape[0], masks.nb_targets, hidden)
    out = []
    for target in range(masks.nb_targets):
        skip = x[:, target]
        lstm_out, _ = layers.lstm[target](skip[:, None], (h[:, target], c[:, target]))
        y = torch.relu(layers.fc2[target](torch.cat([skip, lstm_out[:, 0]], -1)))
        out.append(torch.relu(layers.fc3[target](y)))
    return torch.stack(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nfft", type=int, default=4096)
    parser.add_argument("--block-hops", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    models = list(untrained_models(256, args.nfft).values())
    masks = Int8Masks(models, max(model.nb_bins for model in models))
    mag = torch.rand(args.block_hops, masks.layers.fc1.in_features)
    state = torch.randn(masks.nb_layers, masks.nb_targets, 1, masks.hidden_size)
    with torch.inference_mode():
        same = torch.equal(masks(mag, state, state)[0], through_modules(masks, mag, state, state))
        figures = fastest_ms(
            {
                "modules": lambda: through_modules(masks, mag, state, state),
                "kernels": lambda: masks(mag, state, state),
            }
        )
        lstm = masks.layers.lstm[0]
        hidden = (state[:, 0], state[:, 0])
        steps = {n: torch.rand(n, 1, masks.hidden_size) for n in (1, 2, 20)}
        per_call = fastest_ms({n: lambda x=x: lstm(x, hidden) for n, x in steps.items()})
    print(
        f"nfft {args.nfft}, {args.block_hops} frame(s) a block, four targets, hidden 256, "
        f"one thread:\n  masks of one block: {figures['modules']:.3f} ms through the torch.ao "
        f"modules, {figures['kernels']:.3f} ms calling the kernels (Int8Masks); "
        f"same result: {same}"
    )
    slope = (per_call[20] - per_call[1]) / 19
    print(
        "  one target's quantized 3-layer LSTM: "
        + ", ".join(f"{n} step(s) {ms:.3f} ms" for n, ms in per_call.items())
        + f"; per step {slope:.3f} ms, per call {per_call[1] - slope:.3f} ms"
    )


if __name__ == "__main__":
    main()
