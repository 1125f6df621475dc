"""A learned localiser for the Disentangled VAE's ``architecture="keypoints"``: K positions per frame.

The ``"slots"`` architecture finds its objects with a parameter-free tracker (:mod:`models.objects.slots`). This
module replaces that tracker with a network trained end to end by the model's loss: nothing reads labels or
ground-truth positions, and no rule says what an object is. It follows the keypoint bottleneck of
Transporter (Kulkarni et al. 2019) and Minderer et al. (2019), made recurrent so that slot k follows one
object through the video, as DDPAE's pose (Hsieh et al. 2018) does:

- a CoordConv trunk (Liu et al. 2018: the frame plus two coordinate channels) turns every frame, at half
  resolution, into a feature map;
- slot k's position in frame t is the soft-argmax (the expected pixel centre under a spatial softmax) of a
  heatmap ``logit = head(features_t, expected map, taken map) + prior``. The learned head decides what an
  object looks like. The *prior* is a Gaussian log-density around where slot k is expected (frame 0: a
  learned start point per slot, spread evenly at initialisation; later frames: the previous position
  moved by the last step, the constant-velocity guess of a tracker's motion model). The *taken map* marks
  where slots ``j < k`` sit in the same frame: the head reads it, and it is subtracted from the logits with a
  learned weight (``exclusion``, started at 4), so a slot prefers an object no other slot has (the
  public systems' "keep two slots off one object" in its simplest form);
- the head's last layer starts near zero, so a fresh model's slots sit at their start points and move
  only as far as the reconstruction gradient teaches the head to look;
- optionally, once the causal pass is done, the slots are reordered frame by frame so that each keeps
  looking like itself over the whole video (``reassociate``, or the model's ``localiser_reassociate``): a
  slot handed to the other object where two cross is handed back.

Positions are ``(x, y)`` in [-1, 1] in ``grid_sample`` coordinates (:mod:`models.objects.slots`): a convex
combination of pixel centres, so always on the canvas. They carry gradient, which is what lets the sprite
decoder and the glimpse encoder teach the localiser where the objects are.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.objects.slots import glimpses, pixel_centres
from utils.orders import consistent_orders, reorder

REFINE_WINDOW = 32  # pixels of the frame around a position that the refinement reads (a whole 28-px digit)
REFINE_SHIFT = 0.125  # largest move of one refinement round, in normalised units (4 px of a 64-px frame)
APPEARANCE_DIM = 16  # channels of the appearance embedding a slot's query is read from
# The trunk's dilations and the kernel of the head's feature layer: "full" sees 19 half-resolution pixels
# around a pixel; "lean" (the default since benchmarks/NOTES.md row 92) drops the last 3x3 layer and reads the
# features through a 1x1, seeing 15 (30 pixels of the frame, still a whole digit) at two thirds of the cost.
TRUNKS = {"full": ((1, 2, 4, 1), 3), "lean": ((1, 2, 4), 1)}
# The hand-set parts of the localiser that ``without`` can remove, for the ablation (benchmarks/NOTES.md).
HAND_SET_PARTS = ("start_prior", "track_prior", "velocity", "taken", "coords")
# ... and the decoder's: a position names where the sprite's ink centre goes (``DisentangledVAE``).
MODEL_HAND_SET_PARTS = HAND_SET_PARTS + ("ink_centre",)


def start_points(slots: int) -> Tensor:
    """``(K, 2)`` initial start points: the centre for one slot, else K points evenly on a circle of radius 0.5."""
    if slots == 1:
        return torch.zeros(1, 2)
    angles = torch.arange(slots, dtype=torch.float32) * (2 * math.pi / slots) + math.pi
    return 0.5 * torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)


def gaussian_factors(centres: Tensor, axis: Tensor, sigma: float) -> Tensor:
    """The 1-D Gaussian log-densities ``-(axis - c)^2 / (2 sigma^2)`` along x (row 0) and y (row 1) of each centre.

    A Gaussian map over a square grid is separable: its log is the broadcast sum of these two rows
    (:func:`gaussian_log_map`), the map itself their outer product (:func:`gaussian_map`), S + S numbers per
    centre, not S * S, and its convolutions are sums of row-by-column products (:func:`_separable_convolution`).

    Args:
        centres: ``(N, 2)`` as ``(x, y)``.
        axis: ``(S,)`` the grid's pixel centres along one side (the grid is ``axis x axis``).
        sigma: Width in normalised units ([-1, 1] spans the frame).

    Returns:
        ``(N, 2, S)``.
    """
    return (axis[None, None] - centres[..., None]).pow(2) * (-1.0 / (2 * sigma**2))


def gaussian_log_map(factors: Tensor) -> Tensor:
    """``-|u - centre|^2 / (2 sigma^2)`` at every pixel centre u of the grid, from :func:`gaussian_factors`:
    ``(N, S * S)``, row-major, in the order of :func:`models.objects.slots.pixel_centres`."""
    return (factors[:, 1, :, None] + factors[:, 0, None, :]).flatten(1)


def gaussian_map(factors: Tensor) -> Tensor:
    """The Gaussian map itself from the exponentiated :func:`gaussian_factors`: their outer product,
    ``(N, S * S)`` in the order of :func:`gaussian_log_map`."""
    return (factors[:, 1, :, None] * factors[:, 0, None, :]).flatten(1)


def sprite_centres(sprite_logits: Tensor, image_size: int) -> Tensor:
    """Where each sprite's ink centre sits relative to its window's centre, in the frame's normalised units.

    Args:
        sprite_logits: ``(B, K, C, w, w)`` sprite logits (channels summed into one ink mass).
        image_size: Side of the frame the sprites are pasted into.

    Returns:
        ``(B, K, 2)`` offsets ``(x, y)``: the intensity-weighted mean pixel centre of the window, scaled by
        ``w / image_size`` (a window of side w spans ``2 w / image_size`` of the frame's [-1, 1]). An empty
        sprite has offset 0.
    """
    batch, slots, channels, window, _ = sprite_logits.shape
    ink = torch.sigmoid(sprite_logits).sum(dim=2).flatten(2)  # (B, K, w * w)
    coords = pixel_centres(window, sprite_logits.device, ink.dtype)  # (w * w, 2) in the window's [-1, 1]
    centre = ink @ coords / ink.sum(-1, keepdim=True).clamp_min(1e-3)  # (B, K, 2)
    return centre * (window / image_size)


def _shifted(factors: Tensor) -> Tensor:
    """``(N, S)`` to ``(N, 3, S)``: row i is the factor read ``i - 1`` pixels on, 0 past either end (the zero
    padding of a 3-tap convolution)."""
    padded = F.pad(factors, (1, 1))
    size = factors.shape[-1]
    return torch.stack([padded[:, i : i + size] for i in range(3)], dim=1)


def _separable_convolution(along: Tensor, weight: Tensor) -> tuple[Tensor, Tensor]:
    """A 3x3, zero-padded convolution of the separable maps ``M[y, x] = along[:, 1, y] * along[:, 0, x]``.

    ``out[c, y, x] = sum_ij w[c, i, j] M[y + i - 1, x + j - 1] = sum_i Y_i[y] A_i[x, c]`` with
    ``Y_i[y] = along_y[y + i - 1]`` and ``A_i[x, c] = sum_j w[c, i, j] along_x[x + j - 1]``: three products of
    a column and a row instead of nine shifted maps.

    Args:
        along: ``(N, 2, S)``: each map's factor along x (row 0) and along y (row 1).
        weight: ``(C, 3, 3)``: the convolution's weights for this map (one input channel).

    Returns:
        ``rows`` ``(N, S, 3)`` and ``columns`` ``(N, 3, S * C)``; ``rows @ columns`` is the output ``(N, S, S * C)``,
        pixels first and channels last.
    """
    rows = _shifted(along[:, 1]).transpose(1, 2)
    columns = torch.einsum("njx,cij->nixc", _shifted(along[:, 0]), weight.to(along.dtype)).flatten(2)
    return rows, columns


class KeypointLocaliser(nn.Module):
    """K positions per frame from a CoordConv trunk and a recurrent soft-argmax head (module docstring).

    Args:
        slots: K.
        channels: Channels of a frame.
        width: Channels of the trunk and the head.
        start_sigma: Width of the prior around each slot's start point in frame 0 (normalised units).
        track_sigma: Width of the prior around the expected position in later frames.
        taken_sigma: Width of the marks of the slots already placed in the same frame.
        refinement: Rounds of learned refinement (0: none). A round crops the full-resolution window around
            each position (detached) and a small CNN moves the position by at most ``REFINE_SHIFT``: the
            learned counterpart of the hand tracker's template alignment, fixing the half-resolution
            heatmaps' sub-pixel error from what the object looks like around it.
        appearance: Starting weight of the appearance query (0: none). A 1x1 convolution of the trunk's
            features gives every pixel a unit-length appearance embedding; slot k's query in frame t is the
            mean of the embeddings it read in frames ``< t`` (the embedding averaged under its softmax
            attention, detached), and ``weight * (query .
            embedding)`` is added to its logits: a slot looks for what it has been following, as a slot's
            state does in SAVi (Kipf et al. 2022). The weight is learned.
        reassociate: After the causal pass, reorder the slots frame by frame by what each read (the
            embedding under its attention), with :func:`utils.orders.consistent_orders`: a slot handed to the
            other object where two cross is handed back, as the hand tracker's re-association does with pixels.
            Needs ``appearance``.
        without: Hand-set parts to remove, for the ablation (names from :data:`HAND_SET_PARTS`):
            ``"start_prior"`` (no Gaussian around the start points in frame 0), ``"track_prior"`` (no
            Gaussian around the expected position in later frames; the head still reads the expected map),
            ``"velocity"`` (the expected position is the previous one, not moved by the last step),
            ``"taken"`` (no taken map and no exclusion), ``"coords"`` (no coordinate channels).
        trunk: ``"lean"`` (default) or ``"full"`` (:data:`TRUNKS`).
    """

    def __init__(
        self,
        slots: int,
        channels: int,
        width: int,
        start_sigma: float = 0.5,
        track_sigma: float = 0.3,
        taken_sigma: float = 0.2,
        refinement: int = 0,
        appearance: float = 0.0,
        reassociate: bool = False,
        without: tuple[str, ...] = (),
        trunk: str = "lean",
    ) -> None:
        super().__init__()
        unknown = sorted(set(without) - set(HAND_SET_PARTS))
        if unknown:
            raise ValueError(f"unknown localiser parts {unknown}: choose from {', '.join(HAND_SET_PARTS)}")
        if trunk not in TRUNKS:
            raise ValueError(f"unknown localiser trunk {trunk!r}: choose from {', '.join(TRUNKS)}")
        if reassociate and not appearance:
            raise ValueError("reassociate reads the appearance embedding: it needs appearance > 0")
        self.without = frozenset(without)
        self.reassociate = reassociate
        self.refinement = refinement
        self.slots = slots
        self.start_sigma, self.track_sigma, self.taken_sigma = start_sigma, track_sigma, taken_sigma
        layers: list[nn.Module] = []
        inputs = channels + 2
        dilations, head_kernel = TRUNKS[trunk]
        for dilation in dilations:  # the trunk sees 17 ("full") or 15 ("lean") half-resolution pixels: a digit
            layers += [nn.Conv2d(inputs, width, 3, padding=dilation, dilation=dilation), nn.LeakyReLU(0.2)]
            inputs = width
        self.trunk = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        # The head's first layer is a 3x3 convolution of (features, expected map, taken map), split in two so
        # that the features' part runs once for all frames and only the maps' part runs per slot and frame.
        self.head_features = nn.Conv2d(width, width, head_kernel, padding=head_kernel // 2)
        self.head_maps = nn.Conv2d(2, width, 3, padding=1, bias=False)
        self.head_features.to(memory_format=torch.channels_last)
        self.head_out = nn.Conv2d(width, 1, 1)
        nn.init.normal_(self.head_out.weight, std=1e-3)  # near zero: slots start at their start points,
        nn.init.zeros_(self.head_out.bias)  # but not zero, so the trunk learns from the first step
        self.start = nn.Parameter(start_points(slots))  # (K, 2)
        # How strongly a slot avoids the slots already placed in its frame (learned; starts at a clear
        # preference for a free object: a weight of e^-4 where another slot sits).
        self.exclusion = nn.Parameter(torch.tensor(4.0))
        if appearance:
            self.appearance_embed = nn.Conv2d(width, APPEARANCE_DIM, 1)
            self.appearance = nn.Parameter(torch.tensor(float(appearance)))
        if refinement:
            side = REFINE_WINDOW // 2 // 4  # the window read at half resolution, then two stride-2 stages
            self.refiner = nn.Sequential(
                nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(width, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(width, width, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
                nn.Flatten(), nn.Linear(width * side * side, 2),
            )
            nn.init.normal_(self.refiner[-1].weight, std=1e-3)  # starts as (almost) no move
            nn.init.zeros_(self.refiner[-1].bias)

    def forward(self, video: Tensor) -> Tensor:
        """Positions of the K slots in every frame.

        Args:
            video: ``(B, T, C, H, W)`` in [0, 1], H = W even.

        Returns:
            ``(B, T, K, 2)`` in [-1, 1], differentiable with respect to the localiser's parameters.
        """
        batch, frames, channels, size, _ = video.shape
        half = size // 2
        frames_half = F.avg_pool2d(video.reshape(batch * frames, channels, size, size), 2)  # (B*T, C, S, S)
        coords = pixel_centres(half, video.device, torch.float32)  # (P, 2)
        axis = coords[:half, 0]  # (S,): the pixel centres along one side
        coord_maps = coords.t().reshape(1, 2, half, half).to(frames_half.dtype)
        if "coords" in self.without:
            coord_maps = torch.zeros_like(coord_maps)
        trunk_input = torch.cat([frames_half, coord_maps.expand(batch * frames, -1, -1, -1)], dim=1)
        trunk_input = trunk_input.contiguous(memory_format=torch.channels_last)  # oneDNN's faster layout
        trunk = self.trunk(trunk_input)  # (B * T, W, S, S), channels-last in memory
        pixels = trunk.permute(0, 2, 3, 1)  # (B * T, S, S, W): the same memory, pixels first
        # The head's features stay pixels first (channels last) through the loop below. The lean trunk's 1x1
        # and the appearance embedding's 1x1 are products over the channels, taken as one matrix product: no
        # convolution's fixed costs, and one pass over the trunk's output (forward and backward) for both.
        querying = hasattr(self, "appearance_embed")  # the appearance query is on
        lean = self.head_features.kernel_size == (1, 1)
        pointwise = [self.head_features] * lean + ([self.appearance_embed] if querying else [])
        if pointwise:
            products = F.linear(pixels, torch.cat([layer.weight.flatten(1) for layer in pointwise]),
                                torch.cat([layer.bias for layer in pointwise]))
            products = products.split([layer.out_channels for layer in pointwise], dim=-1)  # views
        features = products[0] if lean else self.head_features(trunk).permute(0, 2, 3, 1)
        # One (B, S, S, W) per frame by unbind, not by indexing in the loop: the backward of each index would
        # build a zero gradient of the whole (B, T, ...) tensor, quadratic in the number of frames.
        features = features.reshape(batch, frames, half, half, -1).unbind(1)
        if querying:
            # The unit embedding e = x / |x| is never formed: its backward over the whole video cost as much as
            # the rest of the loop. Dot products with it are dot products with x times 1 / |x| per pixel, and
            # 1 / |x| is a reciprocal square root of the sum of squares (F.normalize's floor of 1e-12 on |x|).
            # Both are taken frame by frame in the loop, in fp32: a frame's embedding (2 MB at the demo's shape)
            # stays in the cache, where passes over the whole video's (21 MB) each cost a trip to memory.
            raw = products[-1].reshape(batch, frames, half * half, -1).unbind(1)  # (B, P, D) per frame
            read = video.new_zeros(batch, self.slots, APPEARANCE_DIM, dtype=torch.float32)  # what each slot read
            reads: list[Tensor] = []  # (B, K, D) per frame: what each slot read in that frame
        # The head's 3x3 convolution of (expected map, taken map): both maps are sums of Gaussians, and a
        # Gaussian is a product of a function of y and one of x, so its convolution is a sum of 3 such
        # products (:func:`_separable_convolution`). Each slot's map term is then one batched matrix product
        # added to the features, where a convolution of the two full maps cost as much again.
        map_weight = self.head_maps.weight  # (W, 2, 3, 3): the expected map's weights, then the taken map's
        positions: list[Tensor] = []  # one (B, K, 2) per frame
        for frame in range(frames):
            if frame == 0:
                expected = self.start.float()[None].expand(batch, -1, -1)  # (B, K, 2)
                sigma = self.start_sigma
                use_prior = "start_prior" not in self.without
            else:  # the guess is an input, not a path for gradients back through time (which destabilises)
                previous = positions[-1].detach()
                moving = frame > 1 and "velocity" not in self.without
                step = previous - positions[-2].detach() if moving else torch.zeros_like(previous)
                expected = (previous + step).clamp(-1.0, 1.0)
                sigma = self.track_sigma
                use_prior = "track_prior" not in self.without
            if querying:
                with torch.autocast(video.device.type, enabled=False):  # fp32: no casts of the embedding
                    embedding = raw[frame].float()  # (B, P, D)
                    inverse_norm = embedding.square().sum(2).clamp_min(1e-24).rsqrt()  # (B, P)
                    if frame > 0:  # every slot's query . unit embedding at every pixel, (B, K, P)
                        query = F.normalize(read, dim=-1)  # (B, K, D)
                        looks = torch.bmm(query, embedding.transpose(1, 2)) * inverse_norm[:, None]
            placed: list[Tensor] = []
            attended: list[Tensor] = []  # (B, P) per slot, detached
            taken = features[0].new_zeros(batch, half * half, dtype=torch.float32)  # (B, P)
            taken_rows: list[Tensor] = []  # the taken map's convolution as factors, one pair per placed slot
            taken_columns: list[Tensor] = []
            frame_features = features[frame].reshape(batch, half, -1)  # (B, S, S * W), a view
            for slot in range(self.slots):
                along = gaussian_factors(expected[:, slot], axis, sigma)  # (B, 2, S): the prior's x and y
                prior = gaussian_log_map(along)  # (B, P)
                rows, columns = _separable_convolution(along.exp(), map_weight[:, 0])
                rows, columns = torch.cat([rows, *taken_rows], dim=2), torch.cat([columns, *taken_columns], dim=1)
                hidden = F.leaky_relu(torch.baddbmm(frame_features, rows, columns), 0.2)  # (B, S, S * W)
                # the 1x1 convolution to one channel as a product with its weights over the pixels
                out = F.linear(hidden.view(batch, half * half, -1), self.head_out.weight.flatten(1), self.head_out.bias)
                logits = out.flatten(1).float() - self.exclusion * taken  # (B, P)
                if use_prior:
                    logits = logits + prior
                if frame > 0 and querying:
                    logits = logits + self.appearance * looks[:, slot]
                attention = torch.softmax(logits, dim=-1)  # (B, P)
                position = attention @ coords  # (B, 2)
                placed.append(position)
                attended.append(attention.detach())
                if "taken" not in self.without and slot + 1 < self.slots:
                    mark = gaussian_factors(position.detach(), axis, self.taken_sigma).exp()  # (B, 2, S)
                    taken = taken + gaussian_map(mark)  # (B, P)
                    mark_rows, mark_columns = _separable_convolution(mark, map_weight[:, 1])
                    taken_rows.append(mark_rows)
                    taken_columns.append(mark_columns)
            if querying:  # what each slot attended to, added to what it has read: (B, K, D)
                with torch.autocast(video.device.type, enabled=False):
                    weights = torch.stack(attended, dim=1) * inverse_norm[:, None]  # (B, K, P)
                    reads.append(torch.bmm(weights, embedding))
                    read = read + reads[-1]
            positions.append(torch.stack(placed, dim=1))
        located = torch.stack(positions, dim=1)  # (B, T, K, 2)
        if self.reassociate:  # the whole video, read after the fact: slots reordered to keep their looks
            located = reorder(located, consistent_orders(torch.stack(reads, dim=1).detach()))
        for _ in range(self.refinement):
            crops = glimpses(video, located.detach(), REFINE_WINDOW)  # (B, T, K, C, w, w)
            crops = F.avg_pool2d(crops.reshape(-1, channels, REFINE_WINDOW, REFINE_WINDOW), 2)
            move = torch.tanh(self.refiner(crops).float()).view_as(located) * REFINE_SHIFT
            located = (located + move).clamp(-1.0, 1.0)
        return located
