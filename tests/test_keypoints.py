"""The learned localiser (``architecture="keypoints"``) and the localisation scores of evaluation."""

from __future__ import annotations

import itertools

import pytest
import torch

from data.render import render_digits
from evaluation.localisation import digit_centres, localisation_scores
from models import build_model
from models.objects.keypoints import KeypointLocaliser, sprite_centres, start_points
from models.objects.slots import glimpses, place_sprites
from training.config import TrainConfig
from training.optimizer import make_optimizer
from utils.orders import consistent_orders

SIZE = 32
FRAMES = 5


def tiny_keypoint_model(**overrides):
    torch.manual_seed(0)
    fields = dict(image_size=SIZE, width=4, feature_dim=8, content_dim=8, motion_dim=8, lstm_hidden=8,
                  prior_hidden=8, glimpse_size=16, architecture="keypoints")
    return build_model("disentangled", {**fields, **overrides})


def moving_square(frames: int = FRAMES, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """One 6x6 square per video moving in a straight line; its centres ``(B, T, 1, 2)`` in [-1, 1]."""
    generator = torch.Generator().manual_seed(seed)
    video = torch.zeros(batch, frames, 1, SIZE, SIZE)
    centres = torch.zeros(batch, frames, 1, 2)
    for index in range(batch):
        start = torch.randint(4, 16, (2,), generator=generator)
        velocity = torch.randint(-2, 3, (2,), generator=generator)
        for frame in range(frames):
            x, y = (start + velocity * frame).clamp(0, SIZE - 6).tolist()
            video[index, frame, 0, y : y + 6, x : x + 6] = 1.0
            centres[index, frame, 0] = torch.tensor([2 * (x + 3) / SIZE - 1, 2 * (y + 3) / SIZE - 1])
    return video, centres


# -- localisation scores -------------------------------------------------------------------------------


def reference_scores(positions, centres, image_size, apart_px):
    """A loop over videos, orders and frames: the independent reference of ``localisation_scores``."""
    batch, frames, slots, _ = positions.shape
    errors, consistent = [], []
    for b in range(batch):
        best, best_cost = None, float("inf")
        for order in itertools.permutations(range(slots)):
            cost = sum(float((positions[b, t, k] - centres[b, t, order[k]]).norm()) for t in range(frames)
                       for k in range(slots))
            if cost < best_cost:
                best, best_cost = order, cost
        keeps = True
        for t in range(frames):
            gaps = [float((centres[b, t, i] - centres[b, t, j]).norm()) * image_size / 2
                    for i in range(slots) for j in range(slots) if i != j]
            for k in range(slots):
                errors.append(float((positions[b, t, k] - centres[b, t, best[k]]).norm()) * image_size / 2)
                nearest = min(range(slots), key=lambda d, b=b, t=t, k=k: float((positions[b, t, k] - centres[b, t, d]).norm()))
                if (not gaps or min(gaps) > apart_px) and nearest != best[k]:
                    keeps = False
        consistent.append(keeps)
    errors = torch.tensor(errors)
    return float(errors.median()), sum(consistent) / batch


def test_localisation_scores_agree_with_a_loop_and_with_oracles():
    generator = torch.Generator().manual_seed(0)
    centres = torch.rand(6, 7, 2, 2, generator=generator) * 2 - 1
    positions = centres + 0.05 * torch.randn(6, 7, 2, 2, generator=generator)
    positions[1] = positions[1].flip(1)  # a video whose slots are in the other order: still matched
    positions[2, 4:] = positions[2, 4:].flip(1)  # a hand-over in the middle of video 2
    scores = localisation_scores(positions, centres, image_size=64, apart_px=5.0)
    median, consistency = reference_scores(positions, centres, 64, 5.0)
    assert scores["median_error_px"] == pytest.approx(median, rel=1e-5)
    assert scores["slot_consistency"] == pytest.approx(consistency)
    assert consistency < 1.0  # the hand-over is seen

    exact = localisation_scores(centres.flip(2), centres, image_size=64)
    assert exact["median_error_px"] == pytest.approx(0.0, abs=1e-5) and exact["slot_consistency"] == 1.0
    shifted = localisation_scores(centres + torch.tensor([2 / 32, 0.0]), centres, image_size=64)
    assert shifted["median_error_px"] == pytest.approx(2.0, rel=1e-4)  # 2/32 normalised = 2 px of 64
    with pytest.raises(ValueError, match="as many slots as digits"):
        localisation_scores(positions[:, :, :1], centres, image_size=64)


def test_digit_centres_are_the_ink_centres_of_rendered_digits():
    square = torch.full((1, 2, 6, 6), 255, dtype=torch.uint8)
    trajectory = torch.tensor([[[[3.2, 10.0], [20.0, 5.6]]]])  # (B, T=1, D=2, 2) top-left corners
    frame = render_digits(square, trajectory, SIZE)[0, 0, 0]  # (H, W)
    centres = digit_centres(trajectory, digit_size=6, image_size=SIZE)[0, 0]
    for digit, (left, right) in enumerate([(0, 16), (16, SIZE)]):
        ink = frame[:, left:right]
        ys, xs = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(left, right) + 0.5, indexing="ij")
        mass_centre = torch.stack([(xs * ink).sum() / ink.sum(), (ys * ink).sum() / ink.sum()])
        torch.testing.assert_close(centres[digit], 2 * mass_centre / SIZE - 1)


def test_digit_centres_with_images_are_the_ink_centres_of_lopsided_digits():
    """With the images, the reference is each digit's own ink centre, also where it is not the box's (an L of
    uneven ink, and a blob in one corner): the rendered frame's mass centre, to float precision; the box
    centre (no images) is off by as much as the ink is lopsided."""
    shapes = torch.zeros(1, 2, 6, 6, dtype=torch.uint8)
    shapes[0, 0, :, 0] = 255  # an L: a full left column ...
    shapes[0, 0, 5, :] = 100  # ... and a fainter bottom row
    shapes[0, 1, :2, 4:] = torch.tensor([[30, 200], [90, 255]], dtype=torch.uint8)  # top-right corner
    trajectory = torch.tensor([[[[3.2, 10.0], [20.0, 5.6]], [[4.0, 11.0], [19.0, 6.4]]]])  # (B, T=2, D=2, 2)
    frames = render_digits(shapes, trajectory, SIZE)[0, :, 0]  # (T, H, W)
    centres = digit_centres(trajectory, digit_size=6, image_size=SIZE, images=shapes)[0]  # (T, D, 2)
    boxes = digit_centres(trajectory, digit_size=6, image_size=SIZE)[0]
    for frame, (digit, (left, right)) in itertools.product(range(2), enumerate([(0, 16), (16, SIZE)])):
        ink = frames[frame, :, left:right].double()
        ys, xs = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(left, right) + 0.5, indexing="ij")
        mass_centre = torch.stack([(xs * ink).sum() / ink.sum(), (ys * ink).sum() / ink.sum()]).float()
        torch.testing.assert_close(centres[frame, digit], 2 * mass_centre / SIZE - 1)
        assert (boxes[frame, digit] - centres[frame, digit]).abs().max() * SIZE / 2 > 0.5


def test_ink_offsets_of_an_empty_image_are_its_box_centre_and_wrong_images_are_refused():
    empty = torch.zeros(1, 2, 6, 6)
    trajectory = torch.tensor([[[[3.0, 10.0], [20.0, 5.0]]]])
    torch.testing.assert_close(digit_centres(trajectory, 6, SIZE, images=empty), digit_centres(trajectory, 6, SIZE))
    with pytest.raises(ValueError, match="digit images"):
        digit_centres(trajectory, 6, SIZE, images=torch.zeros(1, 2, 5, 5))


# -- the localiser -------------------------------------------------------------------------------------


def test_start_points_are_spread_and_a_fresh_localiser_sits_near_them():
    points = start_points(3)
    assert points.shape == (3, 2)
    assert torch.cdist(points, points).add(torch.eye(3)).min() > 0.5
    localiser = KeypointLocaliser(slots=2, channels=1, width=4)
    video, _ = moving_square()
    positions = localiser(video)
    assert positions.shape == (2, FRAMES, 2, 2)
    assert torch.isfinite(positions).all() and positions.abs().max() <= 1.0
    assert positions[:, 0, 0, 0].max() < 0 < positions[:, 0, 1, 0].min()  # slot 0 starts left, slot 1 right


@pytest.mark.parametrize("options", [{}, {"localiser_refinement": 2}, {"localiser_appearance": 0.0},
                                     {"localiser_trunk": "full"}])
def test_reconstruction_loss_trains_the_localiser_and_nothing_reads_ground_truth(options):
    model = tiny_keypoint_model(**options)
    video, _ = moving_square()
    before = {name: value.clone() for name, value in model.localiser.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(2):
        optimizer.zero_grad()
        out = model(video, generator=torch.Generator().manual_seed(0))
        out.recon_loss.backward()
        optimizer.step()
    for name, value in model.localiser.named_parameters():
        assert not torch.equal(value, before[name]), f"{name} got no gradient from the reconstruction loss"


def test_the_lean_trunk_drops_the_last_layer_and_reads_the_head_features_through_a_1x1():
    full, lean = tiny_keypoint_model(localiser_trunk="full").localiser, tiny_keypoint_model().localiser  # lean: default
    convolutions = [[layer for layer in each.trunk if isinstance(layer, torch.nn.Conv2d)] for each in (full, lean)]
    assert [layer.dilation[0] for layer in convolutions[0]] == [1, 2, 4, 1]
    assert [layer.dilation[0] for layer in convolutions[1]] == [1, 2, 4]
    assert full.head_features.kernel_size == (3, 3) and lean.head_features.kernel_size == (1, 1)
    video, _ = moving_square()
    assert lean(video).shape == full(video).shape
    with pytest.raises(ValueError, match="localiser_trunk"):
        tiny_keypoint_model(localiser_trunk="wide")
    assert "localiser_trunk" in build_model("disentangled", architecture="slots").config.idle_fields()


def test_the_localiser_width_sets_its_channels_apart_from_the_model_width():
    narrow, model_wide = tiny_keypoint_model(localiser_width=3).localiser, tiny_keypoint_model(localiser_width=0)
    assert {layer.out_channels for layer in narrow.trunk if isinstance(layer, torch.nn.Conv2d)} == {3}
    assert narrow.head_features.out_channels == 3 and narrow.head_maps.out_channels == 3
    assert model_wide.localiser.trunk[0].out_channels == model_wide.config.width == 4  # 0: the model's width
    video, _ = moving_square()
    assert narrow(video).shape == model_wide.localiser(video).shape
    with pytest.raises(ValueError, match="localiser_width"):
        tiny_keypoint_model(localiser_width=-1)
    assert "localiser_width" in build_model("disentangled", architecture="slots").config.idle_fields()


def test_keypoint_content_pools_over_frames_and_positions_stay_on_the_canvas():
    model = tiny_keypoint_model().eval()
    video, _ = moving_square()
    with torch.no_grad():
        positions = model.track(video)
        content, _ = model.split(video)
        order = torch.randperm(FRAMES, generator=torch.Generator().manual_seed(1))
        model.localiser.forward = lambda shuffled: positions[:, order]  # the same positions, in the shuffled order
        shuffled_content, _ = model.split(video[:, order])
    torch.testing.assert_close(shuffled_content, content)
    assert positions.abs().max() <= 1.0


def test_the_localiser_trains_at_its_own_learning_rate_scale():
    model = tiny_keypoint_model(localiser_lr_scale=4.0)
    optimizer = make_optimizer(model, TrainConfig(experiment_name="t", model="disentangled", lr=1e-3))
    rates = {id(parameter): group["lr"] for group in optimizer.param_groups for parameter in group["params"]}
    assert len(rates) == sum(1 for _ in model.parameters())  # every parameter in exactly one group
    for name, parameter in model.named_parameters():
        assert rates[id(parameter)] == pytest.approx(4e-3 if name.startswith("localiser.") else 1e-3), name
    one_rate = tiny_keypoint_model(localiser_lr_scale=1.0)
    assert len(make_optimizer(one_rate, TrainConfig(experiment_name="t", model="disentangled", lr=1e-3)).param_groups) == 1
    assert tiny_keypoint_model().config.localiser_lr_scale == 10.0  # the default (NOTES rows 61-63)
    assert tiny_keypoint_model().config.localiser_reassociate == "content"  # the default (NOTES row 78)
    slots = build_model("disentangled", architecture="slots", localiser_lr_scale=4.0)
    assert "localiser_lr_scale" in slots.config.idle_fields()  # no localiser: the option says it is idle
    with pytest.raises(ValueError, match="localiser_lr_scale"):
        tiny_keypoint_model(localiser_lr_scale=-1.0)


@pytest.mark.parametrize(("overrides", "field"), [({"slots": 0}, "slots"), ({"glimpse_size": 20}, "glimpse_size"),
                                                  ({"content_dim": 9}, "content_dim"), ({"motion_dim": 3}, "motion_dim")])
def test_keypoint_options_are_checked_in_one_line(overrides, field):
    with pytest.raises(ValueError, match=field):
        tiny_keypoint_model(**overrides)


@pytest.mark.slow
def test_a_tiny_keypoint_model_learns_to_follow_one_moving_square():
    """Trained by its loss alone on one moving square, the learned position follows the square."""
    model = tiny_keypoint_model(slots=1, beta=0.1)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    untrained = None
    for step in range(150):
        video, centres = moving_square(batch=8, seed=step)
        if step == 0:
            with torch.no_grad():
                untrained = (model.track(video) - centres).norm(dim=-1).mean()
        optimizer.zero_grad()
        model(video, generator=torch.Generator().manual_seed(step)).loss.backward()
        optimizer.step()
    video, centres = moving_square(batch=16, seed=10_000)
    with torch.no_grad():
        error = (model.track(video) - centres).norm(dim=-1).mean()
    assert error * SIZE / 2 < 1.5, f"mean error {error * SIZE / 2:.2f} px (untrained {untrained * SIZE / 2:.2f})"


def test_a_sprite_is_placed_by_its_ink_centre():
    sprite = torch.full((1, 1, 1, 16, 16), -10.0)
    sprite[0, 0, 0, 2:6, 10:14] = 10.0  # ink in the window's upper right
    offset = sprite_centres(sprite, image_size=SIZE)
    torch.testing.assert_close(offset, torch.tensor([[[0.25, -0.25]]]), atol=1e-3, rtol=0)
    frame = torch.sigmoid(place_sprites(sprite, -offset[:, None], SIZE))[0, 0, 0]
    ys, xs = torch.meshgrid(torch.arange(SIZE) + 0.5, torch.arange(SIZE) + 0.5, indexing="ij")
    ink_centre = torch.stack([(xs * frame).sum(), (ys * frame).sum()]) / frame.sum()
    torch.testing.assert_close(ink_centre, torch.tensor([SIZE / 2, SIZE / 2]), atol=1e-3, rtol=0)


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_one_to_three_slots_give_finite_positions_on_the_canvas(slots):
    model = tiny_keypoint_model(slots=slots, content_dim=6)
    video, _ = moving_square()
    out = model(video)
    assert torch.isfinite(out.loss)
    positions = model.track(video)
    assert positions.shape == (2, FRAMES, slots, 2) and positions.abs().max() <= 1.0
    assert model.split(video)[1][..., : 2 * slots].reshape(2, FRAMES, slots, 2).allclose(positions)


def test_the_appearance_query_reads_what_each_slot_followed():
    """A slot's query in frame t is the mean unit embedding at its own positions in frames < t: with the
    weight set huge, a slot goes where the embedding matches its query, whatever the priors say."""
    model = tiny_keypoint_model().eval()
    localiser = model.localiser
    assert localiser.appearance.requires_grad and float(localiser.appearance.detach()) == 4.0  # the default
    video, _ = moving_square()
    with torch.no_grad():
        plain = tiny_keypoint_model(localiser_appearance=0.0).eval().localiser(video)
        localiser.appearance.fill_(0.0)  # weight 0: exactly the localiser without the query
        torch.testing.assert_close(localiser(video), plain)
        localiser.appearance.fill_(4.0)
        assert not torch.allclose(localiser(video), plain)  # the query moves the later frames ...
        torch.testing.assert_close(localiser(video)[:, 0], plain[:, 0])  # ... and never frame 0 (no query yet)


@pytest.mark.parametrize("part", ["start_prior", "track_prior", "velocity", "taken", "coords", "ink_centre"])
def test_each_hand_set_part_can_be_removed_and_removing_it_changes_the_model(part):
    video, _ = moving_square(frames=6)
    whole = tiny_keypoint_model()
    ablated = tiny_keypoint_model(localiser_without=part)
    ablated.load_state_dict(whole.state_dict())  # the same weights: only the removed part differs
    with torch.no_grad():
        whole.localiser.head_out.weight.normal_(std=1.0)  # a head that answers, so the priors do not decide alone
        ablated.localiser.head_out.weight.copy_(whole.localiser.head_out.weight)
        torch.manual_seed(0)
        reconstruction = whole.reconstruct(video) if part == "ink_centre" else whole.track(video)
        torch.manual_seed(0)
        without = ablated.reconstruct(video) if part == "ink_centre" else ablated.track(video)
    assert not torch.allclose(reconstruction, without), f"removing {part} changed nothing"
    assert ablated.config.removed_parts == (part,)


def test_an_unknown_part_to_remove_is_one_line_naming_the_parts():
    with pytest.raises(ValueError, match="localiser_without.*velocity"):
        tiny_keypoint_model(localiser_without="velocity+wings")
    with pytest.raises(ValueError, match="localiser_appearance"):
        tiny_keypoint_model(localiser_appearance=-1.0)


# -- re-association ------------------------------------------------------------------------------------


def reference_orders(looks, rounds):
    """A loop over videos, rounds, frames and every order: the reference of ``consistent_orders``."""
    batch, frames, slots, _ = looks.shape
    result = []
    for b in range(batch):
        index = [list(range(slots)) for _ in range(frames)]
        for _ in range(rounds):
            current = [[looks[b, t, index[t][k]] for k in range(slots)] for t in range(frames)]
            means = [sum(current[t][k] for t in range(frames)) / frames for k in range(slots)]
            chosen = []
            for t in range(frames):
                costs = [sum(float((current[t][order[k]] - means[k]).pow(2).sum()) for k in range(slots))
                         for order in itertools.permutations(range(slots))]
                costs[0] -= 1e-3 * costs[0] + 1e-6
                chosen.append(list(itertools.permutations(range(slots)))[min(range(len(costs)), key=costs.__getitem__)])
            first = chosen[0]
            relabel = [first.index(k) for k in range(slots)]  # frame 0 keeps its order
            index = [[index[t][chosen[t][relabel[k]]] for k in range(slots)] for t in range(frames)]
        result.append(index)
    return torch.tensor(result)


@pytest.mark.parametrize("slots", [1, 2, 3])
def test_consistent_orders_agree_with_a_loop_and_undo_hand_overs(slots):
    generator = torch.Generator().manual_seed(slots)
    looks = torch.randn(4, 7, slots, 5, generator=generator)
    torch.testing.assert_close(consistent_orders(looks, rounds=2), reference_orders(looks, rounds=2))
    # Each slot has its own look, plus noise; from frame 3 on the slots are handed over to each other.
    objects = torch.randn(4, 1, slots, 5, generator=generator) * 3
    truth = objects + 0.1 * torch.randn(4, 7, slots, 5, generator=generator)
    handed = truth.clone()
    handed[:, 3:] = truth[:, 3:].roll(1, dims=2)
    index = consistent_orders(handed)
    torch.testing.assert_close(torch.gather(handed, 2, index[..., None].expand_as(handed)), truth)


@pytest.mark.parametrize("reassociate", ["embedding", "content"])
def test_reassociation_reorders_slots_per_frame_and_keeps_gradients(reassociate):
    """The positions with re-association are those without it, reordered within each frame; the learned
    weights still get their gradients through them."""
    video, _ = moving_square(frames=6, batch=3)
    video = video + video.roll(7, dims=-1).roll(5, dims=-2)  # two squares per video
    plain = tiny_keypoint_model(localiser_reassociate="none")
    model = tiny_keypoint_model(localiser_reassociate=reassociate)
    model.load_state_dict(plain.state_dict())
    with torch.no_grad():
        for each in (plain, model):  # a head that answers, so the priors do not decide alone
            each.localiser.head_out.weight.copy_(torch.randn_like(each.localiser.head_out.weight,
                                                                  generator=torch.Generator().manual_seed(3)))
        before, after = plain.track(video), model.track(video)
    matched = (before[:, :, :, None] - after[:, :, None]).norm(dim=-1).min(dim=-1).values  # (B, T, K)
    assert matched.max() < 1e-5  # every position is still one of the frame's positions
    torch.testing.assert_close(after[:, 0], before[:, 0])  # frame 0 keeps the localiser's order
    if reassociate == "content":  # the order that makes each slot's content features its own
        with torch.no_grad():
            crops = glimpses(video, before, 16).flatten(0, 2)
            looks = model.content_encoder(crops).view(*before.shape[:3], -1)
        index = consistent_orders(looks)
        torch.testing.assert_close(after, torch.gather(before, 2, index[..., None].expand_as(before)))
    model(video).loss.backward()
    assert all(parameter.grad is not None and parameter.grad.abs().sum() > 0
               for name, parameter in model.named_parameters() if name.startswith("localiser.head"))


def test_reassociation_by_embedding_applies_the_order_of_what_each_slot_read(monkeypatch):
    video, _ = moving_square(frames=6, batch=3)
    plain = tiny_keypoint_model(localiser_reassociate="none")
    model = tiny_keypoint_model(localiser_reassociate="embedding")
    model.load_state_dict(plain.state_dict())
    seen = []

    def swap_from_frame_3(looks):  # stands in for consistent_orders: records what it is given
        seen.append(looks)
        index = torch.arange(2).expand(*looks.shape[:2], 2).clone()
        index[:, 3:] = index[:, 3:].flip(-1)
        return index

    monkeypatch.setattr("models.objects.keypoints.consistent_orders", swap_from_frame_3)
    with torch.no_grad():
        before, after = plain.track(video), model.track(video)
    assert seen[0].shape == (3, 6, 2, 16) and not seen[0].requires_grad  # each frame's read, per slot
    torch.testing.assert_close(after[:, :3], before[:, :3])
    torch.testing.assert_close(after[:, 3:], before[:, 3:].flip(2))


def test_reassociation_by_embedding_needs_the_appearance_query():
    with pytest.raises(ValueError, match="localiser_appearance"):
        tiny_keypoint_model(localiser_reassociate="embedding", localiser_appearance=0.0)
    with pytest.raises(ValueError, match="localiser_reassociate"):
        tiny_keypoint_model(localiser_reassociate="pixels")
    assert "localiser_reassociate" in build_model("disentangled", architecture="slots").config.idle_fields()


def test_attention_over_frames_starts_as_the_mean_and_stays_order_free_in_time():
    video, _ = moving_square(frames=6, batch=2)
    plain = tiny_keypoint_model().eval()
    attending = tiny_keypoint_model(content_time_pooling="attention").eval()
    missing, unexpected = attending.load_state_dict(plain.state_dict(), strict=False)
    assert not missing or set(missing) == {"frame_scores.weight", "frame_scores.bias"}
    with torch.no_grad():
        torch.testing.assert_close(attending.split(video)[0], plain.split(video)[0])  # zero scores: the mean
        attending.frame_scores.weight.normal_(generator=torch.Generator().manual_seed(0))
        content = attending.split(video)[0]
        assert not torch.allclose(content, plain.split(video)[0])
        order = torch.randperm(6, generator=torch.Generator().manual_seed(1))
        positions = attending.localiser(video)
        attending.localiser.forward = lambda shuffled: positions[:, order]
        torch.testing.assert_close(attending.split(video[:, order])[0], content)
    with pytest.raises(ValueError, match="content_time_pooling"):
        tiny_keypoint_model(content_time_pooling="max")


# -- the localiser against a plain reference -----------------------------------------------------------


def reference_localiser(localiser, video):
    """The localiser's function written plainly, channels first, from its docstring: the reference its
    faster forward is checked against (positions and every gradient)."""
    import torch.nn.functional as F

    from models.objects.slots import pixel_centres

    batch, frames, channels, size, _ = video.shape
    half = size // 2
    coords = pixel_centres(half, video.device, torch.float32)  # (P, 2)
    frames_half = F.avg_pool2d(video.reshape(batch * frames, channels, size, size), 2)
    coord_maps = coords.t().reshape(1, 2, half, half)
    if "coords" in localiser.without:
        coord_maps = torch.zeros_like(coord_maps)
    trunk = localiser.trunk(torch.cat([frames_half, coord_maps.expand(batch * frames, -1, -1, -1)], dim=1))
    features = localiser.head_features(trunk).reshape(batch, frames, -1, half, half)
    querying = hasattr(localiser, "appearance_embed")
    if querying:
        embedding = F.normalize(localiser.appearance_embed(trunk), dim=1).reshape(batch, frames, -1, half * half)
        read = torch.zeros(batch, localiser.slots, embedding.shape[2])

    def log_gaussian(centre, sigma):  # (B, 2) -> (B, P)
        return -(coords[None] - centre[:, None]).pow(2).sum(-1) / (2 * sigma**2)

    positions = []
    for frame in range(frames):
        if frame == 0:
            expected, sigma, use_prior = localiser.start[None].expand(batch, -1, -1), localiser.start_sigma, \
                "start_prior" not in localiser.without
        else:
            previous = positions[-1].detach()
            moving = frame > 1 and "velocity" not in localiser.without
            expected = (2 * previous - positions[-2].detach() if moving else previous).clamp(-1, 1)
            sigma, use_prior = localiser.track_sigma, "track_prior" not in localiser.without
        taken = torch.zeros(batch, half * half)
        placed, attended = [], []
        for slot in range(localiser.slots):
            prior = log_gaussian(expected[:, slot], sigma)
            maps = torch.stack([prior.exp(), taken], dim=1).reshape(batch, 2, half, half)
            hidden = F.leaky_relu(features[:, frame] + localiser.head_maps(maps), 0.2)
            logits = localiser.head_out(hidden).flatten(1) - localiser.exclusion * taken
            if use_prior:
                logits = logits + prior
            if frame > 0 and querying:
                query = F.normalize(read[:, slot], dim=-1)  # (B, D)
                logits = logits + localiser.appearance * torch.einsum("bd,bdp->bp", query, embedding[:, frame])
            attention = torch.softmax(logits, dim=-1)
            placed.append(attention @ coords)
            attended.append(attention.detach())
            if "taken" not in localiser.without:
                taken = taken + log_gaussian(placed[-1].detach(), localiser.taken_sigma).exp()
        if querying:
            read = read + torch.einsum("bkp,bdp->bkd", torch.stack(attended, dim=1), embedding[:, frame])
        positions.append(torch.stack(placed, dim=1))
    return torch.stack(positions, dim=1)


@pytest.mark.parametrize("options", [dict(slots=2), dict(slots=3), dict(slots=2, trunk="full"),
                                     dict(slots=2, appearance=0.0), dict(slots=1),
                                     dict(slots=2, without=("taken", "velocity", "coords")),
                                     dict(slots=2, without=("start_prior", "track_prior"))])
def test_the_localiser_computes_its_documented_function_with_its_gradients(options):
    """Positions and every parameter's gradient equal a plain channels-first loop's (fp32)."""
    torch.manual_seed(1)
    localiser = KeypointLocaliser(channels=1, width=6, **{"appearance": 4.0, **options})
    with torch.no_grad():  # a head that answers, so the priors do not decide alone
        localiser.head_out.weight.normal_(std=1.0)
        localiser.head_maps.weight.normal_(std=1.0)
    video = torch.rand(2, 4, 1, SIZE, SIZE)
    weights = torch.randn(2, 4, localiser.slots, 2)
    gradients = []
    for forward in (localiser, lambda v: reference_localiser(localiser, v)):
        localiser.zero_grad()
        positions = forward(video)
        (positions * weights).sum().backward()
        gradients.append((positions.detach(), {name: p.grad.clone() for name, p in localiser.named_parameters()
                                               if p.grad is not None}))
    (fast, fast_grads), (plain, plain_grads) = gradients
    torch.testing.assert_close(fast, plain, rtol=1e-5, atol=1e-5)
    assert fast_grads.keys() == plain_grads.keys() and len(fast_grads) >= 8
    for name in plain_grads:
        torch.testing.assert_close(fast_grads[name], plain_grads[name], rtol=1e-4, atol=1e-5, msg=name)
