"""The Open-Unmix model: shape contracts, parameter count, compatibility with ``openunmix``."""

import pytest
import torch
from pydantic import ValidationError

from unmixlab.model import ModelConfig, OpenUnmix, parameter_count

reference = pytest.importorskip("openunmix.model")

CONFIGS = [
    ModelConfig(nb_bins=257, nb_channels=2, hidden_size=16, nb_layers=3, max_bin=129),
    ModelConfig(nb_bins=257, nb_channels=1, hidden_size=16, nb_layers=1, max_bin=257),
    ModelConfig(
        nb_bins=513, nb_channels=2, hidden_size=24, nb_layers=2, unidirectional=True, max_bin=300
    ),
    ModelConfig(
        nb_bins=129, nb_channels=1, hidden_size=7, nb_layers=2, unidirectional=True, max_bin=100
    ),
    ModelConfig(),  # the reference defaults: 2049 bins, stereo, 512 hidden, 3 layers
]


def randomize(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter and batch-norm statistic a non-trivial value."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
            elif tensor.is_floating_point():
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.5)
    return model


def reference_model(config: ModelConfig) -> torch.nn.Module:
    return reference.OpenUnmix(
        nb_bins=config.nb_bins,
        nb_channels=config.nb_channels,
        hidden_size=config.hidden_size,
        nb_layers=config.nb_layers,
        unidirectional=config.unidirectional,
        max_bin=config.max_bin,
    )


@pytest.mark.parametrize("nb_channels", [1, 2])
@pytest.mark.parametrize("unidirectional", [False, True])
def test_output_shape_equals_input_shape(nb_channels: int, unidirectional: bool) -> None:
    config = ModelConfig(
        nb_bins=257,
        nb_channels=nb_channels,
        hidden_size=16,
        nb_layers=2,
        unidirectional=unidirectional,
        max_bin=100,
    )
    model = OpenUnmix(config)
    mag = torch.rand(3, nb_channels, 257, 11)  # (nb_samples, nb_channels, nb_bins, nb_frames)
    out, (h, c) = model.forward_with_state(mag)
    assert out.shape == mag.shape
    assert (out >= 0).all()
    directions = 1 if unidirectional else 2
    lstm_hidden = 16 // directions
    assert h.shape == c.shape == (2 * directions, 3, lstm_hidden)
    model.eval()
    assert model(mag).shape == mag.shape


def test_unidirectional_model_is_causal() -> None:
    config = ModelConfig(
        nb_bins=129, nb_channels=2, hidden_size=8, nb_layers=2, unidirectional=True, max_bin=129
    )
    model = randomize(OpenUnmix(config))
    model.freeze()
    mag = torch.rand(1, 2, 129, 20)
    later_changed = mag.clone()
    later_changed[..., 10:] += 1.0
    assert torch.equal(model(mag)[..., :10], model(later_changed)[..., :10])
    bidirectional = randomize(OpenUnmix(config.model_copy(update={"unidirectional": False})))
    bidirectional.freeze()
    assert not torch.allclose(bidirectional(mag)[..., :10], bidirectional(later_changed)[..., :10])


def test_streaming_state_continues_the_sequence() -> None:
    config = ModelConfig(
        nb_bins=129, nb_channels=1, hidden_size=8, nb_layers=2, unidirectional=True, max_bin=129
    )
    model = randomize(OpenUnmix(config))
    model.freeze()
    mag = torch.rand(1, 1, 129, 12)
    first, state = model.forward_with_state(mag[..., :5])
    second, _ = model.forward_with_state(mag[..., 5:], state)
    torch.testing.assert_close(torch.cat([first, second], -1), model(mag))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"h{c.hidden_size}-l{c.nb_layers}")
def test_parameter_count_matches_the_built_model(config: ModelConfig) -> None:
    model = OpenUnmix(config)
    assert parameter_count(config) == sum(p.numel() for p in model.parameters())
    assert parameter_count(config) == sum(p.numel() for p in reference_model(config).parameters())


def test_bidirectional_model_needs_an_even_hidden_size() -> None:
    with pytest.raises(ValidationError, match="even"):
        ModelConfig(nb_bins=129, hidden_size=7, max_bin=100)


def test_input_statistics_are_stored_as_the_reference_does() -> None:
    config = ModelConfig(nb_bins=129, nb_channels=1, hidden_size=8, nb_layers=1, max_bin=50)
    mean, scale = torch.rand(129), torch.rand(129) + 0.5
    ours = OpenUnmix(config, input_mean=mean, input_scale=scale)
    theirs = reference.OpenUnmix(
        nb_bins=129,
        nb_channels=1,
        hidden_size=8,
        nb_layers=1,
        max_bin=50,
        input_mean=mean.numpy(),
        input_scale=scale.numpy(),
    )
    torch.testing.assert_close(ours.input_mean, theirs.input_mean)
    torch.testing.assert_close(ours.input_scale, theirs.input_scale)


@pytest.mark.parametrize("nb_channels", [1, 2])
@pytest.mark.parametrize("unidirectional", [False, True])
def test_state_dict_is_interchangeable_with_the_reference(
    nb_channels: int, unidirectional: bool
) -> None:
    config = ModelConfig(
        nb_bins=257,
        nb_channels=nb_channels,
        hidden_size=12,
        nb_layers=2,
        unidirectional=unidirectional,
        max_bin=200,
    )
    ours = randomize(OpenUnmix(config), seed=1)
    theirs = reference_model(config)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    ours.eval(), theirs.eval()
    mag = torch.rand(2, nb_channels, 257, 9)
    with torch.no_grad():
        torch.testing.assert_close(ours(mag), theirs(mag))

    # and back: the reference's weights load here and compute the same
    theirs = randomize(reference_model(config), seed=2).eval()
    ours = OpenUnmix(config)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    ours.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(mag), theirs(mag))


def test_freeze_stops_gradients_and_training_behaviour() -> None:
    model = OpenUnmix(ModelConfig(nb_bins=129, nb_channels=1, hidden_size=8, max_bin=129))
    model.freeze()
    assert not model.training
    assert not any(p.requires_grad for p in model.parameters())
    mag = torch.rand(1, 1, 129, 7)
    assert torch.equal(model(mag), model(mag))  # no dropout
