"""Tests of the three video VAEs, parametrized over the registry (tiny sizes, CPU, a few seconds)."""

from __future__ import annotations

import dataclasses
import io
import re

import pytest
import torch

from models import MODELS, DiagonalGaussian, DisentangledVAE, VAEOutput, VideoVAE, build_model
from models.disentangled_vae import ARCHITECTURES, OBJECT_ARCHITECTURES, DisentangledVAEConfig
from models.encoders import ChannelsFirstGroupNorm

IMAGE_SIZE = 32
FRAMES = 6
BATCH = 2


def tiny_fields(model_class: type[VideoVAE]) -> dict:
    """Tiny sizes for any model, read off its config fields (no per-model copy)."""
    fields = {"image_size": IMAGE_SIZE, "width": 8}
    for field in dataclasses.fields(model_class.config_class):
        if field.name.endswith("_dim"):
            fields[field.name] = 8
        elif field.name.endswith("_hidden"):
            fields[field.name] = 16
    return fields


def registry_name(name: str) -> str:
    """``"disentangled"`` of ``"disentangled:pooled"``."""
    return name.partition(":")[0]


def tiny_model(name: str, **overrides) -> VideoVAE:
    """A tiny registered model; ``"disentangled:pooled"`` names one of the Disentangled VAE's architectures."""
    torch.manual_seed(0)
    name, _, architecture = name.partition(":")
    if architecture:
        overrides = {"architecture": architecture, **overrides}
    return build_model(name, tiny_fields(MODELS[name]), **overrides)


def moving_squares(
    batch: int = BATCH, frames: int = FRAMES, size: int = IMAGE_SIZE, seed: int = 0
) -> torch.Tensor:
    """Videos ``(B, T, 1, H, W)`` of one bright 8x8 square moving in a straight line."""
    generator = torch.Generator().manual_seed(seed)
    video = torch.zeros(batch, frames, 1, size, size)
    side = 8
    for index in range(batch):
        start = torch.randint(0, size - side, (2,), generator=generator)
        velocity = torch.randint(-2, 3, (2,), generator=generator)
        for frame in range(frames):
            row, col = (start + velocity * frame).clamp(0, size - side).tolist()
            video[index, frame, 0, row : row + side, col : col + side] = 1.0
    return video


# The Disentangled VAE's architectures other than its default (which "disentangled" builds).
OTHER_ARCHITECTURES = [f"disentangled:{architecture}" for architecture in ARCHITECTURES
                       if architecture != DisentangledVAEConfig.architecture]
CONV_ARCHITECTURES = [architecture for architecture in ARCHITECTURES if architecture not in OBJECT_ARCHITECTURES]


@pytest.fixture(params=list(MODELS) + OTHER_ARCHITECTURES)
def name(request) -> str:
    return request.param


@pytest.fixture
def video() -> torch.Tensor:
    return moving_squares()


def test_registry_names_and_config_round_trip(name):
    model = tiny_model(name)
    assert MODELS[registry_name(name)].name == registry_name(name)
    assert isinstance(model.config, MODELS[registry_name(name)].config_class)
    assert MODELS[registry_name(name)].from_config(model.config).config == model.config
    assert MODELS[registry_name(name)].from_config(dataclasses.asdict(model.config)).config == model.config


def test_forward_shapes_and_finite_loss(name, video):
    model = tiny_model(name)
    out = model(video, generator=torch.Generator().manual_seed(0))
    assert isinstance(out, VAEOutput)
    assert out.recon.shape == video.shape
    assert 0.0 <= out.recon.min() and out.recon.max() <= 1.0
    for value in (out.loss, out.recon_loss, out.kl, *out.kl_terms.values()):
        assert value.ndim == 0 and torch.isfinite(value)
    assert set(out.kl_terms) == {f"kl_{key}" for key in model.latent_layout}
    torch.testing.assert_close(out.kl, sum(out.kl_terms.values()))
    torch.testing.assert_close(out.loss, out.recon_loss + model.config.beta * out.kl)
    half = model(video, kl_scale=0.5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(half.loss, out.recon_loss + 0.5 * model.config.beta * out.kl)
    posteriors = model.encode(video)
    assert set(posteriors) == set(out.latents) == set(model.latent_layout)
    for key, posterior in posteriors.items():
        assert posterior.shape == out.latents[key].shape
        assert posterior.shape[0] == BATCH and posterior.shape[-1] == model.latent_layout[key][-1]
        if len(model.latent_layout[key]) == 3:
            assert posterior.shape[1] == FRAMES


def test_every_parameter_gets_a_gradient(name, video):
    model = tiny_model(name)
    model(video, generator=torch.Generator().manual_seed(0)).loss.backward()
    for parameter_name, parameter in model.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name
        assert parameter.grad.abs().sum() > 0, parameter_name


def test_a_few_adam_steps_lower_the_loss(name, video):
    model = tiny_model(name)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)

    def loss() -> torch.Tensor:
        return model(video, generator=torch.Generator().manual_seed(0)).loss

    initial = loss().item()
    for _ in range(30):
        optimizer.zero_grad()
        loss().backward()
        optimizer.step()
    assert loss().item() < 0.7 * initial


def test_reconstruct_is_deterministic_in_eval_mode(name, video):
    model = tiny_model(name).eval()
    first = model.reconstruct(video)
    assert first.shape == video.shape
    torch.testing.assert_close(first, model.reconstruct(video), rtol=0, atol=0)


def test_sample_shapes_and_seeded_reproducibility(name):
    model = tiny_model(name).eval()
    frames = FRAMES + 3  # a count different from training
    first = model.sample(3, frames, generator=torch.Generator().manual_seed(1))
    assert first.shape == (3, frames, 1, IMAGE_SIZE, IMAGE_SIZE)
    assert 0.0 <= first.min() and first.max() <= 1.0
    torch.testing.assert_close(first, model.sample(3, frames, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(first, model.sample(3, frames, generator=torch.Generator().manual_seed(2)))
    assert model.sample(1, 2).shape == (1, 2, 1, IMAGE_SIZE, IMAGE_SIZE)


def test_sample_factors_are_the_prior_draws_of_sample(name):
    model = tiny_model(name).eval()
    content, motion = model.sample_factors(3, FRAMES + 1, generator=torch.Generator().manual_seed(4))
    assert content.shape == (3, model.content_dim)
    assert motion.shape == (3, FRAMES + 1, model.motion_dim)
    expected = model.sample(3, FRAMES + 1, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(model.combine(content, motion), expected)


def test_state_dict_round_trips_through_torch_save(name, video):
    model = tiny_model(name)
    with torch.no_grad():  # move off the seed-0 init so the fresh model must really load the weights
        for parameter in model.parameters():
            parameter.add_(0.01 * torch.randn_like(parameter))
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = MODELS[registry_name(name)].from_config(model.config)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    model.eval()
    fresh.eval()
    torch.testing.assert_close(fresh.reconstruct(video), model.reconstruct(video), rtol=0, atol=0)
    first = model(video, generator=torch.Generator().manual_seed(3))
    second = fresh(video, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(second.loss, first.loss, rtol=0, atol=0)


def test_combine_of_split_equals_reconstruct(name, video):
    model = tiny_model(name).eval()
    content, motion = model.split(video)
    assert content.shape == (BATCH, model.content_dim)
    assert motion.shape == (BATCH, FRAMES, model.motion_dim)
    torch.testing.assert_close(model.combine(content, motion), model.reconstruct(video))


def test_swap_and_interpolate_shapes_and_endpoints(name):
    model = tiny_model(name).eval()
    video_a = moving_squares(seed=1)
    video_b = moving_squares(seed=2)
    swapped = model.swap(video_a, video_b)
    assert swapped.shape == video_a.shape
    reconstruction_a = model.reconstruct(video_a)
    for factor in ("content", "motion"):
        path = model.interpolate(video_a, video_b, steps=4, factor=factor)
        assert path.shape == (4, *video_a.shape)
        torch.testing.assert_close(path[0], reconstruction_a)
    content_path = model.interpolate(video_a, video_b, steps=3, factor="content")
    torch.testing.assert_close(content_path[-1], model.swap(video_b, video_a))
    # Content from a shorter video is fine; motion must then match in length.
    shorter = video_b[:, :4]
    assert model.swap(shorter, video_a).shape == video_a.shape
    assert model.interpolate(video_a, shorter, steps=2, factor="content").shape == (2, *video_a.shape)
    with pytest.raises(ValueError, match="cannot interpolate motion"):
        model.interpolate(video_a, shorter, steps=2, factor="motion")
    with pytest.raises(ValueError, match="factor must be one of"):
        model.interpolate(video_a, video_b, steps=2, factor="colour")


def test_decode_and_combine_check_latent_shapes(name, video):
    model = tiny_model(name).eval()
    latents = {key: posterior.mean for key, posterior in model.encode(video).items()}
    single_frame = {key: value[:, :1] if value.ndim == 3 else value for key, value in latents.items()}
    assert model.decode(single_frame).shape == (BATCH, 1, 1, IMAGE_SIZE, IMAGE_SIZE)
    key = next(key for key, value in latents.items() if value.ndim == 3)
    with pytest.raises(ValueError, match=re.escape(f"expected latents[{key!r}] of shape (B, T, ")):
        model.decode({**latents, key: latents[key][..., :-1]})
    with pytest.raises(ValueError, match="expected latents with keys"):
        model.decode({"wrong": latents[key]})
    content, motion = model.split(video)
    with pytest.raises(ValueError, match=re.escape("expected factors['motion'] of shape (B, T, ")):
        model.combine(content, motion[:1])


@pytest.mark.parametrize(
    "shape",
    [
        (BATCH, 1, IMAGE_SIZE, IMAGE_SIZE),
        (BATCH, FRAMES, 3, IMAGE_SIZE, IMAGE_SIZE),
        (BATCH, FRAMES, 1, 64, 64),
        (BATCH, 1, 1, IMAGE_SIZE, IMAGE_SIZE),
    ],
    ids=["4d", "channels", "image-size", "one-frame"],
)
def test_wrong_video_shape_raises_a_clear_error(name, shape):
    model = tiny_model(name)
    message = re.escape(
        f"expected video of shape (B, T, 1, H, W) = (*, *, 1, {IMAGE_SIZE}, {IMAGE_SIZE}), got {shape}"
    )
    for verb in (model, model.encode, model.reconstruct, model.split):
        with pytest.raises(ValueError, match=message):
            verb(torch.rand(shape))


def test_invalid_constructor_arguments_raise(name):
    model_class = MODELS[registry_name(name)]
    invalid = {
        "image_size": [8, 40, 0],
        "width": [0, -1, 2.5],
        "channels": [0],
        "beta": [-1.0, "x"],
        "recon_loss": ["l1"],
        "norm": ["batch"],
    }
    for field in dataclasses.fields(model_class.config_class):
        if field.name.endswith(("_dim", "_hidden")):
            invalid[field.name] = [0, True]
    for field_name, values in invalid.items():
        for value in values:
            with pytest.raises(ValueError, match=field_name):
                model_class(**{field_name: value})
    with pytest.raises(ValueError, match="valid keys"):
        model_class(not_a_field=1)


def test_build_model_validates_names_and_keys(name):
    with pytest.raises(ValueError, match=re.escape(str(list(MODELS)))):
        build_model("transformer")
    with pytest.raises(ValueError, match="unknown .* keys \\['depth'\\]; valid keys"):
        build_model(registry_name(name), {"depth": 3})
    config = tiny_model(name).config
    model = build_model(registry_name(name), config, beta=1.0)
    assert isinstance(model, MODELS[registry_name(name)])
    assert model.config == dataclasses.replace(config, beta=1.0)


def test_default_models_have_comparable_parameter_counts():
    counts = {
        name: sum(parameter.numel() for parameter in model_class().parameters() if parameter.requires_grad)
        for name, model_class in MODELS.items()
    }
    for architecture in CONV_ARCHITECTURES:  # within 30% of the other two models
        counts[architecture] = sum(parameter.numel() for parameter in DisentangledVAE(architecture=architecture).parameters())
    objects = counts.pop("disentangled")  # the default, an object architecture (the learned localiser)
    assert max(counts.values()) <= 1.3 * min(counts.values()), counts
    # The object architectures draw one sprite per object instead of every frame: fewer parameters, never more.
    for architecture in OBJECT_ARCHITECTURES:
        objects = max(objects, sum(parameter.numel() for parameter in DisentangledVAE(architecture=architecture).parameters()))
    assert objects < min(counts.values()), (objects, counts)


def test_design_document_constructor_calls():
    from models import LSTMVAE, BaselineVAE

    assert BaselineVAE(latent_dim=256).config.latent_dim == 256
    assert LSTMVAE(latent_dim=256, lstm_hidden=256).config.lstm_hidden == 256
    model = DisentangledVAE(content_dim=128, motion_dim=128)
    assert (model.content_dim, model.motion_dim) == (128, 128)


@pytest.mark.parametrize("architecture", CONV_ARCHITECTURES)
def test_disentangled_content_ignores_frame_order_and_motion_ignores_a_constant_image(architecture, video):
    model = tiny_model("disentangled", architecture=architecture).eval()
    content, motion = model.split(video)
    shuffled = video[:, torch.randperm(FRAMES, generator=torch.Generator().manual_seed(0))]
    torch.testing.assert_close(model.split(shuffled)[0], content)
    background = torch.rand(1, 1, 1, IMAGE_SIZE, IMAGE_SIZE, generator=torch.Generator().manual_seed(1))
    half = 0.5 * video  # room for the background below 1: videos are in [0, 1]
    torch.testing.assert_close(model.split(half + 0.5 * background)[1], model.split(half)[1])
    assert not torch.allclose(model.split(half + 0.5 * background)[0], model.split(half)[0])


@pytest.mark.parametrize("options", [{"content_pooling": "global"}, {"motion_blur": 5}])
def test_disentangled_leakage_options(options, video):
    model = tiny_model("disentangled:average", **options)
    out = model(video)
    assert out.recon.shape == video.shape and torch.isfinite(out.loss)
    with pytest.raises(ValueError, match=next(iter(options))):
        tiny_model("disentangled", **{key: 2 if key == "motion_blur" else "max" for key in options})


def test_without_normalisation_layers(name, video):
    model = tiny_model(name, norm="none")
    assert not any(isinstance(module, torch.nn.GroupNorm) for module in model.modules())
    out = model(video)
    assert out.recon.shape == video.shape and torch.isfinite(out.loss)


@pytest.mark.parametrize("autocast", [False, True])
def test_the_group_norm_of_channels_last_features_is_torchs_with_its_gradients_and_weight_names(autocast):
    """The encoders' GroupNorm normalises a channels-first copy (a faster CPU path): the same numbers, gradients
    and state-dict names as ``nn.GroupNorm`` on the channels-last features."""
    generator = torch.Generator().manual_seed(0)
    reference = torch.nn.GroupNorm(4, 8)
    with torch.no_grad():
        reference.weight.uniform_(0.5, 1.5, generator=generator)
        reference.bias.uniform_(-0.5, 0.5, generator=generator)
    ours = ChannelsFirstGroupNorm(4, 8)
    ours.load_state_dict(reference.state_dict())
    assert list(ours.state_dict()) == list(reference.state_dict())
    features = torch.randn(6, 8, 5, 5, generator=generator).contiguous(memory_format=torch.channels_last)
    upstream = torch.randn(6, 8, 5, 5, generator=generator)
    results = []
    for module in (ours, reference):
        module.zero_grad()
        given = features.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = module(given)
        out.backward(upstream)
        results.append((out, given.grad, module.weight.grad, module.bias.grad))
    for mine, theirs in zip(*results, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


def test_image_sizes_other_than_powers_of_two(name):
    model = build_model(registry_name(name), tiny_fields(MODELS[registry_name(name)]), image_size=48)
    video = torch.rand(1, 3, 1, 48, 48)
    assert model.reconstruct(video).shape == video.shape


def test_diagonal_gaussian():
    mean, logvar = torch.randn(3, 4), torch.randn(3, 4)
    gaussian = DiagonalGaussian(mean, logvar)
    standard = DiagonalGaussian(torch.zeros(3, 4), torch.zeros(3, 4))
    torch.testing.assert_close(gaussian.kl(), gaussian.kl(standard))
    torch.testing.assert_close(gaussian.kl(gaussian), torch.zeros(3, 4))
    assert (gaussian.kl() >= 0).all()
    torch.testing.assert_close(gaussian.std, torch.exp(0.5 * logvar))
    assert gaussian.mode() is mean
    first = gaussian.sample(torch.Generator().manual_seed(0))
    torch.testing.assert_close(first, gaussian.sample(torch.Generator().manual_seed(0)))
    # KL(q || p) from the closed form agrees with torch.distributions.
    other = DiagonalGaussian(torch.randn(3, 4), torch.randn(3, 4))
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, gaussian.std), torch.distributions.Normal(other.mean, other.std)
    )
    torch.testing.assert_close(gaussian.kl(other), reference)


@pytest.mark.parametrize("skip", [True, False])
def test_lstm_posterior_skip_gives_each_frame_its_own_features(skip, video):
    """With ``posterior_skip`` the posterior head reads frame t's features directly, so a frame's code still
    depends on the frame when the LSTM's output is silenced; without it everything passes through the LSTM."""
    model = tiny_model("lstm", posterior_skip=skip).eval()
    with torch.no_grad():
        for parameter in model.posterior_lstm.parameters():
            parameter.zero_()  # the LSTM's output is now 0 whatever it reads
        mean = model.encode(video)["z"].mean  # (B, T, D)
    varies = not torch.allclose(mean, mean[:1, :1].expand_as(mean))
    assert varies == skip


def test_lstm_posterior_skip_takes_a_boolean():
    with pytest.raises(ValueError, match="posterior_skip"):
        tiny_model("lstm", posterior_skip="yes")


def test_output_bias_shifts_a_fresh_decoders_logits_and_nothing_else(name):
    """``output_bias`` only sets the conv decoder's last bias: the same seed gives the same weights, and every
    logit the decoder draws (frames, or the slot model's sprites) moves by exactly the change of that bias."""
    plain, dark = tiny_model(name, output_bias=0.0), tiny_model(name, output_bias=-3.0)
    changed = [(key, before, after) for (key, before), (_, after)
               in zip(plain.state_dict().items(), dark.state_dict().items(), strict=True) if not torch.equal(before, after)]
    assert [key for key, _, _ in changed] == [key for key in plain.state_dict() if key.startswith("decoder.")][-1:]
    (_, before, after), = changed
    assert torch.all(after == -3.0)
    codes = torch.randn(4, plain.decoder.project[0].in_features, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        shift = dark.eval().decoder(codes) - plain.eval().decoder(codes)
    torch.testing.assert_close(shift, torch.full_like(shift, float(after - before)))
    with pytest.raises(ValueError, match="output_bias"):
        tiny_model(name, output_bias=float("nan"))


# ----------------------------------------------------------------------------------------------------
# The public verbs check their inputs (issue 22, item 8): one ValueError, never a silent NaN or a raw
# torch error


BAD_VIDEOS = {
    "nan": (lambda video: video.index_put((torch.tensor(0),), torch.tensor(float("nan"))), "non-finite"),
    "inf": (lambda video: video.index_put((torch.tensor(0),), torch.tensor(float("inf"))), "non-finite"),
    "0-255": (lambda video: video * 255.0, "divide by 255"),
    "negative": (lambda video: video - 0.5, r"in \[0, 1\]"),
    "uint8": (lambda video: (video * 255).to(torch.uint8), r"video.float\(\) / 255"),
    "float64": (lambda video: video.double(), r"video.to\(torch.float32\)"),
    "empty": (lambda video: video[:0], "empty batch"),
    "list": (lambda video: video.tolist(), "torch.Tensor"),
}
VERBS = {
    "forward": lambda model, video: model(video),
    "encode": lambda model, video: model.encode(video),
    "reconstruct": lambda model, video: model.reconstruct(video),
    "split": lambda model, video: model.split(video),
    "swap": lambda model, video: model.swap(video, video),
    "interpolate": lambda model, video: model.interpolate(video, video, steps=2),
}


@pytest.mark.parametrize("verb", list(VERBS))
@pytest.mark.parametrize("bad", list(BAD_VIDEOS))
def test_public_verbs_refuse_bad_videos_in_one_value_error(verb, bad, video):
    model = tiny_model("baseline" if verb != "swap" else "disentangled")
    corrupt, message = BAD_VIDEOS[bad]
    with pytest.raises(ValueError, match=message):
        VERBS[verb](model, corrupt(video))


def test_the_edges_of_the_range_and_bf16_autocast_pass_the_check(name, video):
    model = tiny_model(name)
    video = video.clone()
    video[0, 0, 0, 0, 0], video[0, 0, 0, 0, 1] = 0.0, 1.0
    assert torch.isfinite(model(video).loss)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(video)
        assert torch.isfinite(out.loss)
        model.split(out.recon)  # the model's own bf16 output goes back in under autocast


def test_decode_and_combine_refuse_non_finite_or_integer_codes(video):
    model = tiny_model("disentangled")
    content, motion = model.split(video)
    with pytest.raises(ValueError, match="factors: content holds non-finite"):
        model.combine(content.index_fill(1, torch.tensor([0]), float("nan")), motion)
    with pytest.raises(ValueError, match="motion must be a floating tensor"):
        model.combine(content, motion.long())
    latents = {key: posterior.mean for key, posterior in model.encode(video).items()}
    broken = {key: value.clone().fill_(float("inf")) for key, value in latents.items()}
    with pytest.raises(ValueError, match="latents: .* non-finite"):
        model.decode(broken)


@pytest.mark.parametrize("name", list(MODELS))
def test_no_verb_returns_a_non_finite_video(name):
    """Issue 33, item 4: a decoder that overflows (here: NaN weights) makes every verb that returns videos
    raise one ValueError instead of returning NaN frames."""
    model = tiny_model(name).eval()
    video = moving_squares()
    with torch.no_grad():
        content, motion = model.split(video)
        for parameter_name, parameter in model.named_parameters():
            if parameter_name.startswith("decoder."):
                parameter.fill_(float("nan"))
        verbs = {"reconstruct": lambda: model.reconstruct(video),
                 "sample": lambda: model.sample(2, FRAMES, torch.Generator().manual_seed(0)),
                 "combine": lambda: model.combine(content, motion), "swap": lambda: model.swap(video, video),
                 "interpolate": lambda: model.interpolate(video, video, 2)}
        for verb, call in verbs.items():
            with pytest.raises(ValueError, match="decoded video holds NaN or infinite values"):
                call()
                pytest.fail(f"{verb} returned a non-finite video")
