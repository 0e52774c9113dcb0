"""The Open-Unmix spectrogram-masking network.

Parameter names and shapes are those of ``openunmix`` 1.3.0 (``openunmix.model.OpenUnmix``),
so a state_dict saved here loads there with ``strict=True`` and computes the same output.

Shapes: ``nb_samples`` is the batch; a magnitude spectrogram is
``(nb_samples, nb_channels, nb_bins, nb_frames)``.
"""

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, model_validator
from torch import Tensor, nn


class ModelConfig(BaseModel):
    """Everything needed to rebuild a model before loading its weights."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    nb_bins: int = 2049  # nfft // 2 + 1
    nb_channels: int = 2
    hidden_size: int = 512
    nb_layers: int = 3
    unidirectional: bool = False
    max_bin: int = 1487  # bins kept at the input: bandwidth 16 kHz at 44.1 kHz, nfft 4096

    @model_validator(mode="after")
    def _check(self) -> "ModelConfig":
        if not self.unidirectional and self.hidden_size % 2:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be even for a bidirectional LSTM "
                "(each direction gets half)"
            )
        return self


class OpenUnmix(nn.Module):
    """Open-Unmix for one target: predicts a non-negative mask times the mixture magnitude."""

    def __init__(
        self,
        config: ModelConfig,
        input_mean: Tensor | None = None,
        input_scale: Tensor | None = None,
    ):
        super().__init__()
        self.config = config
        self.nb_output_bins = config.nb_bins
        self.nb_bins = config.max_bin or config.nb_bins
        self.hidden_size = config.hidden_size
        nb_channels = config.nb_channels

        self.fc1 = nn.Linear(self.nb_bins * nb_channels, config.hidden_size, bias=False)
        self.bn1 = nn.BatchNorm1d(config.hidden_size)
        # a bidirectional LSTM splits the hidden size over its two directions
        lstm_hidden = config.hidden_size if config.unidirectional else config.hidden_size // 2
        self.lstm = nn.LSTM(
            input_size=config.hidden_size,
            hidden_size=lstm_hidden,
            num_layers=config.nb_layers,
            bidirectional=not config.unidirectional,
            batch_first=False,
            dropout=0.4 if config.nb_layers > 1 else 0.0,
        )
        self.fc2 = nn.Linear(config.hidden_size * 2, config.hidden_size, bias=False)
        self.bn2 = nn.BatchNorm1d(config.hidden_size)
        self.fc3 = nn.Linear(config.hidden_size, self.nb_output_bins * nb_channels, bias=False)
        self.bn3 = nn.BatchNorm1d(self.nb_output_bins * nb_channels)

        mean = torch.zeros(self.nb_bins) if input_mean is None else -input_mean[: self.nb_bins]
        scale = (
            torch.ones(self.nb_bins) if input_scale is None else 1.0 / input_scale[: self.nb_bins]
        )
        self.input_mean = nn.Parameter(mean.float())
        self.input_scale = nn.Parameter(scale.float())
        self.output_scale = nn.Parameter(torch.ones(self.nb_output_bins))
        self.output_mean = nn.Parameter(torch.ones(self.nb_output_bins))

    def freeze(self) -> None:
        """Switch to inference: no gradients, batch norm and dropout in eval mode."""
        for parameter in self.parameters():
            parameter.requires_grad = False
        self.eval()

    def forward(self, x: Tensor, state: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """Estimate the target magnitude.

        Args:
            x: mixture magnitude ``(nb_samples, nb_channels, nb_bins, nb_frames)``.
            state: optional LSTM ``(h, c)`` state to start from (streaming).

        Returns:
            target magnitude, same shape as ``x``.
        """
        return self.forward_with_state(x, state)[0]

    def forward_with_state(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """As :meth:`forward`, also returning the LSTM state after the last frame."""
        x = x.permute(3, 0, 1, 2)  # (nb_frames, nb_samples, nb_channels, nb_bins)
        nb_frames, nb_samples, nb_channels, _ = x.shape
        mix = x.detach().clone()

        x = x[..., : self.nb_bins]  # crop to the bandwidth
        x = (x + self.input_mean) * self.input_scale
        x = self.fc1(x.reshape(-1, nb_channels * self.nb_bins))
        x = self.bn1(x)
        x = torch.tanh(x.reshape(nb_frames, nb_samples, self.hidden_size))

        lstm_out, new_state = self.lstm(x, state)  # (nb_frames, nb_samples, hidden_size)
        x = torch.cat([x, lstm_out], -1)  # skip connection: (nb_frames, nb_samples, 2 * hidden)

        x = F.relu(self.bn2(self.fc2(x.reshape(-1, x.shape[-1]))))
        x = self.bn3(self.fc3(x))
        x = x.reshape(nb_frames, nb_samples, nb_channels, self.nb_output_bins)
        x = x * self.output_scale + self.output_mean
        x = F.relu(x) * mix  # a non-negative mask applied to the mixture
        return x.permute(1, 2, 3, 0), new_state  # (nb_samples, nb_channels, nb_bins, nb_frames)


def parameter_count(config: ModelConfig) -> int:
    """Closed-form number of parameters of :class:`OpenUnmix` for ``config``."""
    h, c, layers = config.hidden_size, config.nb_channels, config.nb_layers
    bins, max_bin = config.nb_bins, config.max_bin or config.nb_bins
    directions = 1 if config.unidirectional else 2
    lstm_h = h // directions
    lstm = 0
    for layer in range(layers):
        layer_in = h if layer == 0 else lstm_h * directions
        lstm += directions * (4 * lstm_h * (layer_in + lstm_h) + 8 * lstm_h)
    fc = max_bin * c * h + 2 * h * h + h * bins * c
    batch_norm = 2 * h + 2 * h + 2 * bins * c
    scales = 2 * max_bin + 2 * bins
    return fc + batch_norm + lstm + scales
