"""One block of a stream as a pure function: audio and state in, estimates and state out.

:class:`StreamingStep` is what :class:`unmixlab.streaming.StreamingSeparator` runs for every
block and what ``unmixlab export onnx`` exports: everything carried from block to block (the
input samples the next frames overlap, the output tail still being overlap-added, every
target's LSTM state) is an explicit input and output, so the same graph runs in PyTorch and
in onnxruntime. See :mod:`unmixlab.streaming` for the stream conventions and the latency.

Shapes (``T`` targets, ``C`` channels, ``F = block_hops`` frames per block, ``N`` the block
size, ``P = nfft - nhop``, ``L`` LSTM layers, ``H`` the hidden size):

- ``block`` ``(C, N)`` -> ``estimates`` ``(T, C, N)``
- ``history`` ``(C, P)``: the last input samples; ``tail`` ``(T, C, P)``: output being summed
- ``h``, ``c``: ``(L, T, 1, H)``, every target's LSTM state

Per block the step reads every weight once (one to three hops per block: the arithmetic is
matrix-vector products), so its cost is bounded by memory bandwidth: :attr:`weight_bytes`.
``precision="int8"`` stores the matrices in a quarter of the bytes (:mod:`unmixlab.quantize`);
four targets at nfft 4096 then fit in a 32 MB CPU cache (56 MB in float32).
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unmixlab.model import OpenUnmix
from unmixlab.quantize import Precision, quantize, stored_bytes

STATE_NAMES = ("history", "tail", "h", "c")


class StreamingStep(nn.Module):
    """STFT of a block, every target's masks, overlap-added estimates.

    Args:
        models: unidirectional target models (same nfft, channels, hidden size and layers).
        nfft: STFT size.
        nhop: hop size.
        block_hops: hops per block.
        precision: ``float32`` (:class:`StackedMasks`, what ``unmixlab export onnx`` exports)
            or ``int8`` (:class:`Int8Masks`, :mod:`unmixlab.quantize`).

    Attributes:
        weight_bytes: bytes of the weights each block reads, in ``precision``.
    """

    def __init__(
        self,
        models: list[OpenUnmix],
        nfft: int,
        nhop: int,
        block_hops: int,
        precision: Precision = "float32",
    ):
        super().__init__()
        first = models[0].config
        self.nfft, self.nhop, self.block_hops = nfft, nhop, block_hops
        self.precision = precision
        self.nb_targets = len(models)
        self.nb_channels = first.nb_channels
        self.hidden_size = first.hidden_size
        self.nb_layers = first.nb_layers
        self.max_bin = max(model.nb_bins for model in models)
        window = torch.hann_window(nfft, dtype=torch.float64)
        self.register_buffer("window", window.float())
        # a frame's sample n lands where the squared windows sum to overlap[n % nhop]
        overlap = window_overlap(window, nhop).repeat(math.ceil(nfft / nhop))[:nfft]
        self.register_buffer("synthesis_window", (window / overlap).float())
        if precision == "int8":
            self.masks = Int8Masks(models, self.max_bin)
            self.weight_bytes = self.masks.weight_bytes
        else:
            self.masks = StackedMasks(models, self.max_bin)
            self.weight_bytes = stored_bytes(self.masks, "float32")

    @property
    def block_size(self) -> int:
        """Input samples per block: ``block_hops * nhop``."""
        return self.block_hops * self.nhop

    def initial_state(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Silence before the stream and zero LSTM state: ``(history, tail, h, c)``."""
        overlap = self.nfft - self.nhop
        lstm = (self.nb_layers, self.nb_targets, 1, self.hidden_size)
        return (
            torch.zeros(self.nb_channels, overlap),
            torch.zeros(self.nb_targets, self.nb_channels, overlap),
            torch.zeros(lstm),
            torch.zeros(lstm),
        )

    def forward(
        self, block: Tensor, history: Tensor, tail: Tensor, h: Tensor, c: Tensor
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """Separate the next block of the stream (module docstring for the shapes).

        Returns:
            ``(estimates, history, tail, h, c)``: the next ``block_size`` output-stream samples
            of every target (they estimate the input ``nfft - nhop`` samples earlier) and the
            state to pass with the next block.
        """
        nfft, nhop, size = self.nfft, self.nhop, self.block_size
        signal = torch.cat([history, block], -1)  # (nb_channels, nfft + (F - 1) * nhop)
        frames = signal.unfold(-1, nfft, nhop).transpose(0, 1)  # (F, nb_channels, nfft)
        spec = torch.fft.rfft(frames * self.window)  # (nb_frames, nb_channels, nb_bins)
        # crop after abs(): a slice of the complex spectrum that keeps every bin is an alias,
        # which the ONNX exporter cannot translate (uncropped models, bandwidth = Nyquist)
        mag = spec.abs()[..., : self.max_bin]
        masks, h, c = self.masks(mag.reshape(self.block_hops, -1), h, c)
        masks = masks.view(masks.shape[:2] + spec.shape[1:])  # (targets, frames, ch, bins)
        # mask * mixture spectrogram = target magnitude with the mixture phase
        frames_out = torch.fft.irfft(spec * masks, n=nfft) * self.synthesis_window
        # frames_out: (nb_targets, nb_frames, nb_channels, nfft), overlap-added onto the tail
        out = F.pad(tail, (0, size))
        for f in range(self.block_hops):
            out[..., f * nhop : f * nhop + nfft] += frames_out[:, f]
        return out[..., :size], signal[:, size:], out[..., size:], h, c


class StackedMasks(nn.Module):
    """Every target model folded into stacked float32 weights: the masks of a block of frames.

    Folding (done once, in float64): the input normalisation and ``bn1`` into ``fc1``, the
    targets' ``fc1`` concatenated into one matrix (their shared input is the mixture), ``bn2``
    into ``fc2``, ``bn3`` and the output scale/mean into ``fc3``, the LSTM gates reordered to
    (input, forget, output, cell) so that one sigmoid covers three of them. Different bandwidth
    crops per target are zero-padded to the widest, ``max_bin``.
    """

    def __init__(self, models: list[OpenUnmix], max_bin: int):
        super().__init__()
        first = models[0].config
        self.nb_targets, self.nb_layers = len(models), first.nb_layers
        self.hidden_size = hidden = first.hidden_size
        with torch.no_grad():
            fc1 = [fold_fc1(model, max_bin) for model in models]
            # (nb_channels * max_bin, nb_targets * hidden): target t owns columns t*h..(t+1)*h
            self.register_buffer("w1", torch.cat([w.T for w, _ in fc1], 1).float().contiguous())
            self.register_buffer("b1", torch.cat([b for _, b in fc1]).float())
            i_f = torch.arange(2 * hidden)
            g, o = torch.arange(2 * hidden, 3 * hidden), torch.arange(3 * hidden, 4 * hidden)
            gates = torch.cat([i_f, o, g])  # torch's gate order (i, f, g, o) -> (i, f, o, g)
            for layer in range(self.nb_layers):

                def stacked(name: str, layer: int = layer) -> Tensor:
                    return torch.stack([getattr(m.lstm, f"{name}_l{layer}")[gates] for m in models])

                # (nb_targets, hidden, 4 * hidden) each; bias (nb_targets, 1, 4 * hidden)
                self.register_buffer(f"w_ih{layer}", stacked("weight_ih").mT.contiguous())
                self.register_buffer(f"w_hh{layer}", stacked("weight_hh").mT.contiguous())
                bias = stacked("bias_ih") + stacked("bias_hh")
                self.register_buffer(f"b_lstm{layer}", bias[:, None].contiguous())
            fc2 = [fold_bn(m.fc2.weight, m.bn2) for m in models]
            w2 = torch.stack([w.T for w, _ in fc2]).float()  # (nb_targets, 2 * hidden, hidden)
            self.register_buffer("w2_skip", w2[:, :hidden].contiguous())
            self.register_buffer("w2_lstm", w2[:, hidden:].contiguous())
            self.register_buffer("b2", torch.stack([b for _, b in fc2]).float()[:, None])
            fc3 = [fold_fc3(m) for m in models]
            # (nb_targets, hidden, nb_channels * nb_bins), bias (nb_targets, 1, ...)
            self.register_buffer("w3", torch.stack([w.T for w, _ in fc3]).float().contiguous())
            self.register_buffer("b3", torch.stack([b for _, b in fc3]).float()[:, None])

    def forward(self, mag: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Masks of every target for a block of frames.

        Args:
            mag: mixture magnitude ``(nb_frames, nb_channels * max_bin)``, cropped.
            h: LSTM hidden state ``(nb_layers, nb_targets, 1, hidden_size)``.
            c: LSTM cell state, same shape.

        Returns:
            non-negative masks ``(nb_targets, nb_frames, nb_channels * nb_bins)``, and the
            new ``h`` and ``c``.
        """
        nb_frames, hidden = mag.shape[0], self.hidden_size
        x = torch.addmm(self.b1, mag, self.w1)  # (nb_frames, nb_targets * hidden)
        x = torch.tanh(x.view(nb_frames, self.nb_targets, hidden).transpose(0, 1))
        skip = x  # (nb_targets, nb_frames, hidden)
        new_h, new_c = [], []
        for layer in range(self.nb_layers):
            w_hh = getattr(self, f"w_hh{layer}")
            pre = torch.baddbmm(getattr(self, f"b_lstm{layer}"), x, getattr(self, f"w_ih{layer}"))
            h_t, c_t, outputs = h[layer], c[layer], []  # h_t, c_t: (nb_targets, 1, hidden)
            for frame in range(nb_frames):
                gates = torch.baddbmm(pre[:, frame : frame + 1], h_t, w_hh)
                ifo = torch.sigmoid(gates[..., : 3 * hidden])
                cell = torch.tanh(gates[..., 3 * hidden :])
                c_t = torch.addcmul(ifo[..., hidden : 2 * hidden] * c_t, ifo[..., :hidden], cell)
                h_t = ifo[..., 2 * hidden :] * torch.tanh(c_t)
                outputs.append(h_t)
            new_h.append(h_t)
            new_c.append(c_t)
            x = torch.cat(outputs, 1)  # (nb_targets, nb_frames, hidden)
        y = torch.baddbmm(torch.baddbmm(self.b2, skip, self.w2_skip), x, self.w2_lstm).relu_()
        return torch.baddbmm(self.b3, y, self.w3).relu_(), torch.stack(new_h), torch.stack(new_c)


class TargetMasks(nn.Module):
    """Every target model folded as :class:`StackedMasks`, in ``nn.Linear`` / ``nn.LSTM`` layers.

    The form :func:`unmixlab.quantize.quantize` turns into int8 (:class:`Int8Masks` runs it):
    ``fc1`` stacked over targets, batch norms and scales folded in, one LSTM per target.
    """

    def __init__(self, models: list[OpenUnmix], max_bin: int):
        super().__init__()
        first = models[0].config
        with torch.no_grad():
            fc1 = [fold_fc1(model, max_bin) for model in models]
            self.fc1 = linear(torch.cat([w for w, _ in fc1]), torch.cat([b for _, b in fc1]))
            self.lstm = nn.ModuleList()
            for model in models:
                lstm = nn.LSTM(first.hidden_size, first.hidden_size, first.nb_layers)
                lstm.load_state_dict(model.lstm.state_dict())
                self.lstm.append(lstm)
            self.fc2 = nn.ModuleList(linear(*fold_bn(m.fc2.weight, m.bn2)) for m in models)
            self.fc3 = nn.ModuleList(linear(*fold_fc3(m)) for m in models)


class Int8Masks(nn.Module):
    """The masks of :class:`StackedMasks` from :class:`TargetMasks` dynamically quantized.

    ``forward`` calls the kernels of the quantized layers itself (fbgemm's dynamic linear,
    with the ReLU fused, and quantized LSTM): the ``torch.ao`` module wrappers around them
    cost a seventh of the masks' time per block (1.44 against 1.24 ms at nfft 4096, 2 frames,
    four targets, hidden 256, one thread: ``benchmarks/int8_kernels.py``). The results are the
    same to the bit.

    Attributes:
        weight_bytes: bytes of the weights, stored in int8.
    """

    def __init__(self, models: list[OpenUnmix], max_bin: int):
        super().__init__()
        first = models[0].config
        self.nb_targets, self.nb_layers = len(models), first.nb_layers
        self.hidden_size = first.hidden_size
        folded = TargetMasks(models, max_bin).eval()
        self.weight_bytes = stored_bytes(folded, "int8")
        self.layers = quantize(folded)
        self._fc1 = self.layers.fc1._packed_params._packed_params
        self._fc2 = [layer._packed_params._packed_params for layer in self.layers.fc2]
        self._fc3 = [layer._packed_params._packed_params for layer in self.layers.fc3]
        self._lstm = [[w.param for w in lstm._all_weight_values] for lstm in self.layers.lstm]

    def forward(self, mag: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """As :meth:`StackedMasks.forward`."""
        nb_frames, linear_relu = mag.shape[0], torch.ops.quantized.linear_relu_dynamic
        x = torch.ops.quantized.linear_dynamic(mag, self._fc1, reduce_range=True)
        x = torch.tanh(x).view(nb_frames, self.nb_targets, self.hidden_size)
        masks, new_h, new_c = [], [], []
        for target in range(self.nb_targets):
            skip = x[:, target]  # (nb_frames, hidden)
            out, h_t, c_t = torch.quantized_lstm(
                skip[:, None],  # (nb_frames, batch 1, hidden)
                (h[:, target], c[:, target]),  # (nb_layers, 1, hidden) each
                self._lstm[target],
                True,  # biases
                self.nb_layers,
                0.0,  # dropout
                False,  # training
                False,  # bidirectional
                False,  # batch first
                dtype=torch.qint8,
                use_dynamic=True,
            )
            y = torch.cat([skip, out[:, 0]], -1)
            y = linear_relu(y, self._fc2[target], reduce_range=True)
            masks.append(linear_relu(y, self._fc3[target], reduce_range=True))
            new_h.append(h_t)
            new_c.append(c_t)
        return torch.stack(masks), torch.stack(new_h, 1), torch.stack(new_c, 1)


def linear(weight: Tensor, bias: Tensor) -> nn.Linear:
    """An ``nn.Linear`` computing ``x @ weight.T + bias`` in float32."""
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    layer.weight.copy_(weight.float())
    layer.bias.copy_(bias.float())
    return layer


def fold_bn(weight: Tensor, bn: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
    """``bn(x @ weight.T)`` in eval mode as ``x @ w.T + b`` (float64)."""
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    return weight.double() * scale[:, None], bn.bias.double() - bn.running_mean * scale


def fold_fc1(model: OpenUnmix, max_bin: int) -> tuple[Tensor, Tensor]:
    """``bn1(fc1((x + mean) * scale))`` as one affine map (float64).

    The weight ``(hidden, nb_channels * max_bin)`` takes the magnitude cropped to ``max_bin``
    (zero weights beyond the model's own bandwidth).
    """
    nb_channels, nb_bins = model.config.nb_channels, model.nb_bins
    weight, bias = fold_bn(model.fc1.weight, model.bn1)
    scale = model.input_scale.double().repeat(nb_channels)  # index c * nb_bins + k
    shift = (model.input_mean.double() * model.input_scale.double()).repeat(nb_channels)
    bias = bias + weight @ shift
    weight = (weight * scale).reshape(-1, nb_channels, nb_bins)
    padded = weight.new_zeros(weight.shape[0], nb_channels, max_bin)
    padded[..., :nb_bins] = weight
    return padded.reshape(weight.shape[0], -1), bias


def fold_fc3(model: OpenUnmix) -> tuple[Tensor, Tensor]:
    """``bn3(fc3(x)) * output_scale + output_mean`` as one affine map (float64)."""
    nb_channels = model.config.nb_channels
    weight, bias = fold_bn(model.fc3.weight, model.bn3)
    scale = model.output_scale.double().repeat(nb_channels)
    mean = model.output_mean.double().repeat(nb_channels)
    return weight * scale[:, None], bias * scale + mean


def window_overlap(window: Tensor, nhop: int) -> Tensor:
    """Steady-state sum of squared windows at each of the ``nhop`` positions of a hop."""
    squared = F.pad(window**2, (0, -len(window) % nhop))
    return squared.view(-1, nhop).sum(0)
