"""The slot machinery of the Disentangled VAE's hand tracker (``architecture="slots"``): tracker, glimpses, sprites,
invariances."""

from __future__ import annotations

import pytest
import torch

from models import build_model
from models.objects.slots import (
    _translation_grid,
    align_to_template,
    glimpses,
    place_sprites,
    reassociate,
    track_centroids,
    track_objects,
)

SIZE = 32
FRAMES = 6


def pixel_to_unit(pixel: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """Continuous pixel coordinate (centre of pixel i is i) to grid_sample's [-1, 1]."""
    return (2 * pixel + 1) / size - 1


def two_shapes(shape: str = "square", frames: int = FRAMES, offset: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two symmetric 5x5 shapes moving apart in a 32x32 video, and their centres ``(1, T, 2, 2)`` in pixels.

    ``shape`` is ``"square"`` or ``"cross"`` (the same centres, other pixels); ``offset`` shifts everything.
    """
    video = torch.zeros(1, frames, 1, SIZE, SIZE)
    centres = torch.zeros(1, frames, 2, 2)
    mask = torch.ones(5, 5) if shape == "square" else torch.zeros(5, 5).index_fill_(0, torch.tensor([2]), 1)
    if shape == "cross":
        mask[:, 2] = 1
    for t in range(frames):
        for k, (x, y) in enumerate([(6 + t + offset, 8 + offset), (20 - t + offset, 20 - t // 2 + offset)]):
            video[0, t, 0, y - 2 : y + 3, x - 2 : x + 3] = torch.maximum(video[0, t, 0, y - 2 : y + 3, x - 2 : x + 3], mask)
            centres[0, t, k] = torch.tensor([x, y], dtype=torch.float32)
    return video, centres


def matched_error(found: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Largest error in pixels of ``found`` against ``truth`` (both ``(B, T, 2, 2)``), slot order fixed per video."""
    direct = (found - truth).norm(dim=-1).amax(dim=(1, 2))
    swapped = (found.flip(2) - truth).norm(dim=-1).amax(dim=(1, 2))
    return torch.minimum(direct, swapped).max() * SIZE / 2


def test_tracker_finds_both_objects_and_keeps_each_in_its_slot():
    video, centres = two_shapes()
    found = track_centroids(video, slots=2)
    assert found.shape == (1, FRAMES, 2, 2)
    assert matched_error(found, pixel_to_unit(centres)) < 0.05


def test_reassociate_undoes_a_hand_over_between_slots():
    video, centres = two_shapes("square")
    crosses, _ = two_shapes("cross")
    video[:, :, :, :, 14:] = crosses[:, :, :, :, 14:]  # the right-hand object is a cross: the two look different
    truth = pixel_to_unit(centres)
    handed_over = truth.clone()
    handed_over[:, 3:] = truth[:, 3:].flip(2)  # slots exchanged from frame 3 on
    fixed = reassociate(video, handed_over, window=16)
    torch.testing.assert_close(fixed, truth)
    torch.testing.assert_close(track_objects(video, 2, 16), track_objects(video, 2, 16))


def test_alignment_removes_the_jitter_of_the_tracked_positions():
    size, frames = 48, 8
    generator = torch.Generator().manual_seed(0)
    blob = (torch.rand(9, 9, generator=generator) > 0.5).float()  # an asymmetric object: one best match only
    video = torch.zeros(1, frames, 1, size, size)
    truth = torch.zeros(1, frames, 1, 2)
    for t in range(frames):
        x, y = 10 + 3 * t, 14 + 2 * t  # the blob's top-left corner, whole pixels
        video[0, t, 0, y : y + 9, x : x + 9] = blob
        truth[0, t, 0] = torch.tensor([x + 4.0, y + 4.0])  # its centre pixel
    jitter = 1.5 * (2 * torch.rand(1, frames, 1, 2, generator=generator) - 1)  # up to 1.5 px, as K-means wanders
    start = pixel_to_unit(truth + jitter, size)
    aligned = align_to_template(video, start, window=16)
    offset = (aligned - pixel_to_unit(truth, size)) * size / 2  # pixels; one constant offset is allowed
    spread = (offset - offset.mean(dim=1, keepdim=True)).norm(dim=-1)
    before = (jitter - jitter.mean(dim=1, keepdim=True)).norm(dim=-1)
    assert before.max() > 1.0 and spread.max() < 0.15  # every frame's glimpse now shows the blob in one place
    assert offset.norm(dim=-1).max() < 1.5
    assert torch.equal(align_to_template(video, start, window=16, rounds=0), start)
    one_round = align_to_template(video, start, window=16, rounds=1, radius=1)
    assert ((one_round - start) * size / 2).abs().max() <= 1.5 + 1e-5  # radius + a half-pixel vertex


def test_glimpse_then_place_reproduces_the_frame():
    video, centres = two_shapes()
    positions = pixel_to_unit(centres + 0.5)  # an even window centred on a pixel corner: no resampling
    crops = glimpses(video, positions, 16)  # (1, T, 2, 1, 16, 16)
    assert crops.shape == (1, FRAMES, 2, 1, 16, 16)
    # Each object's window, pasted back where it was taken, rebuilds the video (the shapes never overlap).
    sprite = torch.logit(crops[:, 0].clamp(1e-4, 1 - 1e-4))  # frame 0's windows as sprites
    rebuilt = torch.sigmoid(place_sprites(sprite, positions[:, :1], SIZE))
    torch.testing.assert_close(rebuilt[:, 0], video[:, 0], atol=2e-3, rtol=0)


@pytest.mark.parametrize(("scale", "size"), [(0.5, 16), (2.0, 32)])
def test_the_translation_grid_is_the_affine_grid_of_the_translation_with_its_gradient(scale, size):
    """The grids under ``glimpses`` and ``place_sprites`` against ``F.affine_grid`` of the translation matrix."""
    positions = (torch.rand(5, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_()
    theta = torch.zeros(5, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = positions
    reference = torch.nn.functional.affine_grid(theta, [5, 1, size, size], align_corners=False)
    grid = _translation_grid(positions, scale, size)
    torch.testing.assert_close(grid, reference)
    upstream = torch.randn(grid.shape, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(torch.autograd.grad(grid, positions, upstream)[0],
                               torch.autograd.grad(reference, positions, upstream)[0])


def slot_model(**overrides):
    torch.manual_seed(0)
    fields = dict(image_size=SIZE, width=8, feature_dim=16, content_dim=8, motion_dim=4, lstm_hidden=8,
                  prior_hidden=8, glimpse_size=16, architecture="slots")
    return build_model("disentangled", fields, **overrides).eval()


def test_slot_content_ignores_where_the_objects_are():
    model = slot_model()
    video, _ = two_shapes()
    shifted, _ = two_shapes(offset=2)  # the same objects, 2 pixels further right and down
    content, motion = model.split(video)
    moved_content, moved_motion = model.split(shifted)
    torch.testing.assert_close(moved_content, content, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(moved_motion, motion)


def test_slot_motion_sees_only_where_the_objects_are():
    model = slot_model()
    squares, _ = two_shapes("square")
    crosses, _ = two_shapes("cross")  # other objects on the same paths
    # Equal up to how the tracker places other shapes (soft K-means at half resolution, then the template
    # alignment, which the other object's pixels in the window pull by up to 0.4 pixel on this small frame),
    # where moving the objects one pixel changes the code by 2 / 32.
    torch.testing.assert_close(model.split(crosses)[1], model.split(squares)[1], atol=0.4 * 2 / SIZE, rtol=0)
    unaligned = slot_model(track_alignment=0)
    torch.testing.assert_close(unaligned.split(crosses)[1], unaligned.split(squares)[1], atol=0.2 * 2 / SIZE, rtol=0)
    assert not torch.allclose(model.split(crosses)[0], model.split(squares)[0])


def test_slot_swap_draws_the_content_video_objects_on_the_motion_video_paths():
    model = slot_model()
    squares, _ = two_shapes("square")
    shifted, _ = two_shapes("square", offset=2)
    swapped = model.swap(squares, shifted)
    # Only the positions come from the motion video, so the swap equals the content video's own
    # reconstruction moved by the motion video's 2-pixel offset.
    expected = model.reconstruct(squares).roll(shifts=(2, 2), dims=(-2, -1))
    torch.testing.assert_close(swapped[..., 4:-4, 4:-4], expected[..., 4:-4, 4:-4], atol=2e-3, rtol=0)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"content_dim": 9}, "content_dim"),
        ({"motion_dim": 3}, "motion_dim"),
        ({"glimpse_size": 24}, "glimpse_size"),
        ({"glimpse_size": 48}, "glimpse_size"),
        ({"slots": 5}, "slots"),
        ({"architecture": "sprites"}, "architecture"),
    ],
)
def test_slot_options_are_checked(fields, message):
    with pytest.raises(ValueError, match=message):
        slot_model(**fields)
