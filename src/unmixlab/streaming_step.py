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

Per block the step reads every weight once (two or three hops per block: the arithmetic is
matrix-vector products), so its cost is bounded by memory bandwidth: :attr:`weight_bytes`.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unmixlab.model import OpenUnmix

STATE_NAMES = ("history", "tail", "h", "c")


class StreamingStep(nn.Module):
    """Every target model folded into stacked float32 weights, run one block at a time.

    Folding (done once, in float64): the input normalisation and ``bn1`` into ``fc1``, the
    targets' ``fc1`` concatenated into one matrix (their shared input is the mixture), ``bn2``
    into ``fc2``, ``bn3`` and the output scale/mean into ``fc3``, the LSTM gates reordered to
    (input, forget, output, cell) so that one sigmoid covers three of them. Different bandwidth
    crops per target are zero-padded to the widest.

    Args:
        models: unidirectional target models (same nfft, channels, hidden size and layers).
        nfft: STFT size.
        nhop: hop size.
        block_hops: hops per block.
    """

    def __init__(self, models: list[OpenUnmix], nfft: int, nhop: int, block_hops: int):
        super().__init__()
        first = models[0].config
        self.nfft, self.nhop, self.block_hops = nfft, nhop, block_hops
        self.nb_targets = len(models)
        self.nb_channels = first.nb_channels
        self.hidden_size = hidden = first.hidden_size
        self.nb_layers = first.nb_layers
        self.max_bin = max(model.nb_bins for model in models)
        window = torch.hann_window(nfft, dtype=torch.float64)
        self.register_buffer("window", window.float())
        # a frame's sample n lands where the squared windows sum to overlap[n % nhop]
        overlap = window_overlap(window, nhop).repeat(math.ceil(nfft / nhop))[:nfft]
        self.register_buffer("synthesis_window", (window / overlap).float())
        with torch.no_grad():
            fc1 = [self._fold_fc1(model) for model in models]
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
            fc2 = [self._fold_bn(m.fc2.weight, m.bn2) for m in models]
            w2 = torch.stack([w.T for w, _ in fc2]).float()  # (nb_targets, 2 * hidden, hidden)
            self.register_buffer("w2_skip", w2[:, :hidden].contiguous())
            self.register_buffer("w2_lstm", w2[:, hidden:].contiguous())
            self.register_buffer("b2", torch.stack([b for _, b in fc2]).float()[:, None])
            fc3 = [self._fold_fc3(m) for m in models]
            # (nb_targets, hidden, nb_channels * nb_bins), bias (nb_targets, 1, ...)
            self.register_buffer("w3", torch.stack([w.T for w, _ in fc3]).float().contiguous())
            self.register_buffer("b3", torch.stack([b for _, b in fc3]).float()[:, None])

    @staticmethod
    def _fold_bn(weight: Tensor, bn: nn.BatchNorm1d) -> tuple[Tensor, Tensor]:
        """``bn(x @ weight.T)`` in eval mode as ``x @ w.T + b`` (float64)."""
        scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
        return weight.double() * scale[:, None], bn.bias.double() - bn.running_mean * scale

    def _fold_fc1(self, model: OpenUnmix) -> tuple[Tensor, Tensor]:
        nb_channels, nb_bins = self.nb_channels, model.nb_bins
        weight, bias = self._fold_bn(model.fc1.weight, model.bn1)
        scale = model.input_scale.double().repeat(nb_channels)  # index c * nb_bins + k
        shift = (model.input_mean.double() * model.input_scale.double()).repeat(nb_channels)
        bias = bias + weight @ shift
        weight = (weight * scale).reshape(-1, nb_channels, nb_bins)
        padded = weight.new_zeros(weight.shape[0], nb_channels, self.max_bin)
        padded[..., :nb_bins] = weight
        return padded.reshape(weight.shape[0], -1), bias

    def _fold_fc3(self, model: OpenUnmix) -> tuple[Tensor, Tensor]:
        weight, bias = self._fold_bn(model.fc3.weight, model.bn3)
        scale = model.output_scale.double().repeat(self.nb_channels)
        mean = model.output_mean.double().repeat(self.nb_channels)
        return weight * scale[:, None], bias * scale + mean

    @property
    def block_size(self) -> int:
        """Input samples per block: ``block_hops * nhop``."""
        return self.block_hops * self.nhop

    @property
    def weight_bytes(self) -> int:
        """Bytes of weights one block reads (each at least once)."""
        return sum(buffer.numel() * buffer.element_size() for buffer in self.buffers())

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

    def masks(self, mag: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
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
        starts = range(0, size, nhop)
        frames = torch.stack([signal[:, start : start + nfft] for start in starts])
        spec = torch.fft.rfft(frames * self.window)  # (nb_frames, nb_channels, nb_bins)
        mag = spec[..., : self.max_bin].abs()
        masks, h, c = self.masks(mag.reshape(self.block_hops, -1), h, c)
        masks = masks.view(masks.shape[:2] + spec.shape[1:])  # (targets, frames, ch, bins)
        # mask * mixture spectrogram = target magnitude with the mixture phase
        estimate = torch.view_as_complex(masks[..., None] * torch.view_as_real(spec))
        frames_out = torch.fft.irfft(estimate, n=nfft) * self.synthesis_window
        # frames_out: (nb_targets, nb_frames, nb_channels, nfft), overlap-added onto the tail
        total = signal.shape[-1]
        out = F.pad(tail, (0, size))
        for f in range(self.block_hops):
            out = out + F.pad(frames_out[:, f], (f * nhop, total - f * nhop - nfft))
        return out[..., :size], signal[:, size:], out[..., size:], h, c


def window_overlap(window: Tensor, nhop: int) -> Tensor:
    """Steady-state sum of squared windows at each of the ``nhop`` positions of a hop."""
    squared = F.pad(window**2, (0, -len(window) % nhop))
    return squared.view(-1, nhop).sum(0)
