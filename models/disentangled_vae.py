"""Model 3, the Disentangled VAE: a content code per video and a motion code per frame, one decoder.

Four architectures (``architecture=``), measured side by side in benchmarks/NOTES.md:

- ``"slots"`` (the hand tracker): the video is K objects on K paths. A parameter-free tracker
  (:func:`models.objects.slots.track_objects`: soft K-means over the pixels, frame to frame, then a
  re-association by appearance, then ``track_alignment`` rounds of moving each position to where the slot's
  glimpse matches its mean glimpse) finds each object's position in every frame. **Motion** is a code per
  frame computed from those positions alone (their values and steps, an MLP and a bidirectional LSTM, plus a
  fixed embedding of the positions), so it cannot see what the objects look like. **Content** is one code per
  slot from glimpses: a window of ``glimpse_size`` pixels around the slot's position in every frame, a conv
  encoder, averaged over time, so it does not see where the object is. The **decoder** draws each slot's
  sprite from its content code once per video and pastes it, in every frame, at the position read from
  the motion code (``pose_readout``), combining slots by ``max`` as the generator does (a spatial
  transformer with translation only; DDPAE, Hsieh et al. 2018, has the same structure with a learned
  tracker). The content code is ``(B, K * Dc/K)``: slot k's share is its k-th block.
- ``"keypoints"`` (default): ``"slots"`` with the tracker replaced by a learned localiser
  (:class:`models.objects.keypoints.KeypointLocaliser`, trained by the model's loss alone). Its positions are the
  motion code's first 2K numbers exactly (no ``pose_readout``), and each sprite is placed by its ink centre
  (:func:`models.objects.keypoints.sprite_centres`) rather than its window's centre. The default since the
  learned localiser came within a few points of the hand tracker (docs/results.md); checkpoints written before
  store ``architecture="slots"`` and load as such.
- ``"pooled"``: content from every frame's conv features averaged over time (DSVAE and C-DSVAE pool
  per-frame features too): invariant to frame order; motion and decoder as ``"average"``.
- ``"average"``: the design document's sketch. Content from a conv encoder over the frame average
  ``(B, C, H, W)`` (invariant to frame order); motion from per-frame conv features of the frame
  differences ``x[t+1] - x[t]`` (a zero feature for frame 0) and a bidirectional LSTM (invariant to adding
  one image to every frame); one conv decoder generates frame t from ``concat(c, m_t)``.

In every architecture motion is one code PER FRAME with the learned recurrent prior ``p(m_t | m_<t)``
(DSVAE's dynamic prior, Li & Mandt 2018), and the content prior is N(0, I). After training, the ex-post
prior (:mod:`models.fitted_prior`) replaces both for sampling: per object and per object path in the object
architectures (``content_slots``, ``object_slots``, ``object_positions``).

Leakage paths of the conv-decoder architectures, and their options (off by default): the frame average
still shows where the digits went, so the content code can encode positions (``content_pooling="global"``
averages the content features over space); frame differences show digit shapes, so the motion code can
encode identity (``motion_blur=k`` box-blurs the differences; a small ``motion_dim`` narrows the path). The
object architectures (``"slots"``, ``"keypoints"``) close both by construction: motion sees positions only,
content sees windows that follow the objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from models.base import VideoVAE
from models.config import (
    VideoVAEConfig,
    check_choice,
    check_finite_number,
    check_non_negative_int,
    check_positive_int,
)
from models.decoders import FrameDecoder
from models.distributions import DiagonalGaussian
from models.encoders import POOLINGS, FrameEncoder
from models.objects.keypoints import MODEL_HAND_SET_PARTS, TRUNKS, KeypointLocaliser, sprite_centres
from models.objects.slots import glimpses, place_sprites, track_objects
from models.priors import RecurrentGaussianPrior
from utils.orders import consistent_orders, reorder

ARCHITECTURES = ("slots", "keypoints", "pooled", "average")
# Architectures built on objects (one sprite per object, placed by a position per frame): ``slots`` is their
# number of objects, which training links to the data's number of digits (:func:`training.linking.link_configs`).
OBJECT_ARCHITECTURES = ("slots", "keypoints")
OBJECT_ONLY_FIELDS = ("slots", "glimpse_size", "content_time_pooling")  # no effect under the conv-decoder architectures
CONV_ONLY_FIELDS = ("content_pooling", "motion_blur")  # no effect under the object architectures
SLOTS_ONLY_FIELDS = ("track_alignment",)  # the hand tracker's: no effect under any other architecture
KEYPOINTS_ONLY_FIELDS = ("localiser_lr_scale", "localiser_refinement", "localiser_appearance", "localiser_without",
                         "localiser_reassociate", "localiser_trunk", "localiser_width")  # the learned localiser's: no effect under any other
REASSOCIATIONS = ("none", "embedding", "content")  # ``localiser_reassociate``
# Prediction starts from the observed positions refined on the observed frames (``refine_positions``): Adam steps
# of REFINE_STEP_PIXELS on the decoder's reconstruction loss (benchmarks/NOTES.md row 126: 10 -> 10 MSE 96.0 with
# none, 80.7 / 77.7 / 75.2 with 10 / 20 / 40 steps; a 1-px step and the squared error both did no better).
REFINE_STEPS = 20
REFINE_STEP_PIXELS = 0.5
TIME_POOLINGS = ("mean", "attention")  # ``content_time_pooling``


@dataclass(frozen=True)
class DisentangledVAEConfig(VideoVAEConfig):
    """Config of :class:`DisentangledVAE` (fields of :class:`~models.config.VideoVAEConfig` plus these).

    ``feature_dim`` defaults to 128 (not 256): this model has two encoders, and the smaller features keep
    its parameter count comparable to the other two models.

    Attributes:
        architecture: ``"keypoints"`` (default: objects found by a learned localiser, glimpse content,
            sprite decoder), ``"slots"`` (the same with a parameter-free hand tracker), ``"pooled"`` (content
            from every frame's conv features averaged over time) or ``"average"`` (the design document's:
            content from the pixel average of the frames). See the module docstring. A stored config without
            the field was written before it existed, by the design document's model: ``"average"``.
        content_dim: Size Dc of the content code (object architectures: split evenly among the slots).
        motion_dim: Size Dm of each frame's motion code.
        lstm_hidden: Hidden size of each direction of the motion LSTM.
        prior_hidden: Hidden size of the motion prior LSTM.
        slots: Objects K of the object architectures; training sets it to the data's number of digits.
        glimpse_size: Side in pixels of the window around each object (object architectures); a multiple of
            16.
        content_time_pooling: How a slot's per-frame glimpse features become one (object architectures):
            ``"mean"`` over the frames (default), or ``"attention"``: weights ``softmax_t(w . f_t + b)`` learned
            from each frame's features (started at 0, the mean), so frames where another object crowds the
            glimpse can count less. Both are order-free in time.
        content_pooling: ``"flatten"`` (default) or ``"global"`` (translation-invariant content features;
            ``"pooled"`` and ``"average"``).
        motion_blur: Odd box-blur kernel size applied to the frame differences; 1 (default) is no blur
            (``"pooled"`` and ``"average"``).
        track_alignment: Rounds of :func:`models.objects.slots.align_to_template` after the hand tracker
            (``"slots"`` only): each slot's position moved, frame by frame, to where its glimpse matches
            its mean glimpse. 0 keeps the soft K-means centres, which jitter by about a pixel, so the
            sprites blur (benchmarks/NOTES.md row 47). Checkpoints written before the field have 0.
        localiser_lr_scale: The learned localiser's learning rate as a multiple of the run's ``--lr``
            (``"keypoints"`` only; :meth:`DisentangledVAE.learning_rate_scales`). The default 10 (1: at
            ``--lr``, as checkpoints written before the field were trained) lets its heatmap head outgrow the
            Gaussian start prior within the demo's budget: over three seeds at 512 steps, content kept 0.88
            against 0.82-0.85 at 1 (benchmarks/NOTES.md rows 61-63).
        localiser_refinement: Rounds of the learned localiser's refinement from the full-resolution window
            around each position (``"keypoints"`` only; :class:`~models.objects.keypoints.KeypointLocaliser`).
        localiser_appearance: Starting weight of the learned localiser's appearance query (0: none; see
            :class:`~models.objects.keypoints.KeypointLocaliser`): each slot looks for what it has followed.
            The default 4 (0 in checkpoints written before the field): over three seeds at 512 steps, digits
            read in the reconstruction 0.904 against 0.887 without, a slot keeps its digit 0.969 against 0.954
            (benchmarks/NOTES.md row 70).
        localiser_without: Hand-set parts of the learned localiser removed, joined by ``+`` (for the
            ablation; ``""``: none): ``start_prior``, ``track_prior``, ``velocity``, ``taken``, ``coords``
            (:class:`~models.objects.keypoints.KeypointLocaliser`) and ``ink_centre`` (a position names
            the sprite window's centre, not its ink centre).
        localiser_reassociate: ``"content"`` (default), ``"embedding"`` or ``"none"`` (``"keypoints"``
            only; checkpoints written before the field read ``"none"``): after the learned localiser's causal
            pass, reorder the slots frame by frame so that each keeps looking like itself over the whole
            video (:func:`utils.orders.consistent_orders`), by its glimpse's content features (the content
            encoder's, before they are averaged over time) or by what it read through the appearance query's
            embedding. The hand tracker's re-association does the same with pixels. Over three seeds at 512
            steps, ``"content"`` raised digits read in the reconstruction from 0.904 to 0.922 and a slot
            keeping its digit from 0.969 to 0.985; ``"embedding"`` changed nothing measurable on seed 42
            (benchmarks/NOTES.md row 78).
        localiser_trunk: The learned localiser's convolutions (``"keypoints"`` only; checkpoints written before
            the field read ``"full"``): ``"lean"`` (default: three 3x3 layers dilated 1, 2, 4, and the head's
            features through a 1x1; a view of 15 half-resolution pixels, 30 of the frame) or ``"full"`` (a fourth
            3x3 layer and a 3x3 head-feature layer; a view of 19). Over three seeds at 512 steps, ``"lean"`` read
            digits in the reconstruction 0.928 against 0.922 and kept content 0.922 against 0.912, up on every
            seed, with the localiser's forward and backward about a sixth cheaper (benchmarks/NOTES.md row 92); at
            1,024 steps its slot error stayed at 1.18 px where the full trunk's reached 0.99 (one seed, row 102).
        localiser_width: Channels of the learned localiser's trunk and head (``"keypoints"`` only); 0 (default,
            and checkpoints written before the field): the model's ``width``.
    """

    # Every checkpoint since the field stores ``architecture`` (``run_metadata`` stores every field), so the
    # change of default to "keypoints" leaves those written with the old default ("slots") as they were; a
    # config without it predates the field, when the model was the design document's (today's "average").
    legacy_values: ClassVar[dict[str, Any]] = {"architecture": "average", "track_alignment": 0,
                                               "localiser_lr_scale": 1.0, "localiser_appearance": 0.0,
                                               "localiser_reassociate": "none", "content_time_pooling": "mean",
                                               "localiser_trunk": "full", "localiser_width": 0}

    feature_dim: int = 128
    architecture: str = "keypoints"
    content_dim: int = 128
    motion_dim: int = 128
    lstm_hidden: int = 256
    prior_hidden: int = 256
    slots: int = 2
    glimpse_size: int = 32
    content_time_pooling: str = "mean"
    content_pooling: str = "flatten"
    motion_blur: int = 1
    track_alignment: int = 2
    localiser_lr_scale: float = 10.0
    localiser_refinement: int = 0
    localiser_appearance: float = 4.0
    localiser_without: str = ""
    localiser_reassociate: str = "content"
    localiser_trunk: str = "lean"
    localiser_width: int = 0

    @property
    def removed_parts(self) -> tuple[str, ...]:
        """``localiser_without`` as a tuple of part names."""
        return tuple(part for part in self.localiser_without.split("+") if part)

    def idle_fields(self) -> tuple[str, ...]:
        """The options of the other architectures (the module's ``*_ONLY_FIELDS``)."""
        if self.architecture not in OBJECT_ARCHITECTURES:
            return OBJECT_ONLY_FIELDS + SLOTS_ONLY_FIELDS + KEYPOINTS_ONLY_FIELDS
        other = SLOTS_ONLY_FIELDS if self.architecture == "keypoints" else KEYPOINTS_ONLY_FIELDS
        return CONV_ONLY_FIELDS + other

    def validate(self) -> None:
        super().validate()
        check_choice("architecture", self.architecture, ARCHITECTURES)
        for name in ("content_dim", "motion_dim", "lstm_hidden", "prior_hidden", "slots", "glimpse_size"):
            check_positive_int(name, getattr(self, name))
        check_choice("content_pooling", self.content_pooling, POOLINGS)
        check_positive_int("motion_blur", self.motion_blur)
        check_non_negative_int("track_alignment", self.track_alignment)
        check_finite_number("localiser_lr_scale", self.localiser_lr_scale, minimum=0)
        check_non_negative_int("localiser_refinement", self.localiser_refinement)
        check_finite_number("localiser_appearance", self.localiser_appearance, minimum=0)
        check_choice("localiser_reassociate", self.localiser_reassociate, REASSOCIATIONS)
        check_choice("content_time_pooling", self.content_time_pooling, TIME_POOLINGS)
        check_choice("localiser_trunk", self.localiser_trunk, tuple(TRUNKS))
        check_non_negative_int("localiser_width", self.localiser_width)
        if self.localiser_reassociate == "embedding" and not self.localiser_appearance:
            raise ValueError("localiser_reassociate='embedding' reads the appearance query's embedding: set "
                             "localiser_appearance > 0, or choose 'content' or 'none'")
        if not isinstance(self.localiser_without, str):
            raise ValueError(f"localiser_without must be part names joined by '+', got {self.localiser_without!r}")
        unknown = sorted(set(self.removed_parts) - set(MODEL_HAND_SET_PARTS))
        if unknown:
            raise ValueError(f"localiser_without names unknown parts {unknown}: choose from "
                             f"{'+'.join(MODEL_HAND_SET_PARTS)}")
        if self.motion_blur % 2 == 0 or self.motion_blur >= self.image_size:
            raise ValueError(
                f"motion_blur must be an odd kernel size below image_size, got {self.motion_blur!r}"
            )
        if self.architecture in OBJECT_ARCHITECTURES:
            if self.glimpse_size % 16 or self.glimpse_size > self.image_size:
                raise ValueError(
                    f"glimpse_size must be a multiple of 16 no larger than image_size ({self.image_size}), "
                    f"got {self.glimpse_size!r}"
                )
            if self.slots > 4:
                raise ValueError(f"slots must be at most 4 (the tracker tries every order of them), got {self.slots}")
            if self.content_dim % self.slots:
                raise ValueError(
                    f"content_dim ({self.content_dim}) must be a multiple of slots ({self.slots}) with "
                    "architecture='slots': each slot gets an equal share of the content code"
                )
            if self.motion_dim < 2 * self.slots:
                raise ValueError(
                    f"motion_dim must be at least 2 * slots = {2 * self.slots} with architecture='slots' "
                    f"(each slot's x and y), got {self.motion_dim}"
                )


class DisentangledVAE(VideoVAE):
    """A content code per video, a motion code per frame, one decoder; three architectures (module docstring).

    The loss has two KL terms: ``kl_content`` to N(0, I) and ``kl_motion``, frame t's
    ``KL(q(m_t | x) || p(m_t | m_<t))`` with m_<t the posterior samples. ``split`` returns the two codes'
    posterior means.

    Args:
        **config_fields: Fields of :class:`DisentangledVAEConfig`, e.g.
            ``DisentangledVAE(content_dim=128, motion_dim=128)``.
    """

    name = "disentangled"
    display_name = "Disentangled VAE"
    config_class = DisentangledVAEConfig

    def __init__(self, **config_fields) -> None:
        super().__init__(**config_fields)
        # Steps of refine_positions before a prediction (object architectures; 0: the encoder's positions).
        # Not a config field: it changes no weight, and evaluate.py --prediction-refine-steps sets it.
        self.prediction_refine_steps = REFINE_STEPS
        cfg = self.config
        slots = cfg.architecture in OBJECT_ARCHITECTURES
        # "slots": content per slot from glimpses; otherwise one content code from whole frames.
        content_size = cfg.glimpse_size if slots else cfg.image_size
        content_pooling = "flatten" if slots else cfg.content_pooling
        self.content_encoder = FrameEncoder(
            content_size, cfg.channels, cfg.width, cfg.feature_dim, pooling=content_pooling, norm=cfg.norm
        )
        slot_content = cfg.content_dim // cfg.slots if slots else cfg.content_dim
        self.content_head = nn.Linear(cfg.feature_dim, 2 * slot_content)
        if slots:
            # Motion from the tracked positions and their steps: nothing of the pixels but where objects are.
            track_dim = 2 * cfg.slots
            if cfg.architecture == "keypoints":
                self.localiser = KeypointLocaliser(
                    cfg.slots, cfg.channels, cfg.localiser_width or cfg.width, refinement=cfg.localiser_refinement,
                    appearance=cfg.localiser_appearance, reassociate=cfg.localiser_reassociate == "embedding",
                    without=tuple(part for part in cfg.removed_parts if part != "ink_centre"),
                    trunk=cfg.localiser_trunk)
            if cfg.content_time_pooling == "attention":  # a score per frame's glimpse features; starts as the mean
                self.frame_scores = nn.Linear(cfg.feature_dim, 1)
                nn.init.zeros_(self.frame_scores.weight)
                nn.init.zeros_(self.frame_scores.bias)
            self.motion_encoder = nn.Sequential(
                nn.Linear(2 * track_dim, cfg.feature_dim), nn.LeakyReLU(0.2, inplace=True)
            )
            # Fixed embedding of the positions into the first 2K motion dimensions, and the decoder's
            # readout of them: a model that learns nothing else already places its sprites where the
            # objects are; the learned parts refine both.
            self.motion_skip = nn.Linear(track_dim, cfg.motion_dim, bias=False)
            with torch.no_grad():
                self.motion_skip.weight.copy_(torch.eye(cfg.motion_dim, track_dim))
            if cfg.architecture == "slots":
                self.pose_readout = nn.Linear(cfg.motion_dim, track_dim)
                with torch.no_grad():
                    self.pose_readout.weight.copy_(torch.eye(track_dim, cfg.motion_dim))
                    self.pose_readout.bias.zero_()
            self.decoder = FrameDecoder(slot_content, cfg.glimpse_size, cfg.channels, cfg.width, norm=cfg.norm,
                                        output_bias=cfg.output_bias)
        else:
            self.motion_encoder = FrameEncoder(
                cfg.image_size, cfg.channels, cfg.width, cfg.feature_dim, norm=cfg.norm
            )
            self.decoder = FrameDecoder(
                cfg.content_dim + cfg.motion_dim, cfg.image_size, cfg.channels, cfg.width, norm=cfg.norm,
                output_bias=cfg.output_bias,
            )
        self.motion_lstm = nn.LSTM(cfg.feature_dim, cfg.lstm_hidden, batch_first=True, bidirectional=True)
        self.motion_head = nn.Linear(2 * cfg.lstm_hidden, 2 * cfg.motion_dim)
        self.motion_prior = RecurrentGaussianPrior(cfg.motion_dim, cfg.prior_hidden)
        if slots:
            with torch.no_grad():  # start the posterior mean at the skip alone
                self.motion_head.weight[: cfg.motion_dim].mul_(0.01)
                self.motion_head.bias[: cfg.motion_dim].zero_()

    @property
    def latent_layout(self) -> dict[str, tuple]:
        return {"content": ("B", self.config.content_dim), "motion": ("B", "T", self.config.motion_dim)}

    @property
    def content_dim(self) -> int:
        return self.config.content_dim

    @property
    def motion_dim(self) -> int:
        return self.config.motion_dim

    @property
    def content_slots(self) -> int:
        """The object architectures' content is one code per slot (each ``content_dim / slots`` long)."""
        return self.config.slots if self.config.architecture in OBJECT_ARCHITECTURES else 1

    @property
    def object_slots(self) -> int:
        """The object architectures' motion code places ``slots`` objects (the decoder reads nothing else of it)."""
        return self.config.slots if self.config.architecture in OBJECT_ARCHITECTURES else 0

    def object_positions(self, motion: Tensor) -> Tensor:
        """Where the decoder places each slot, ``(B, T, K, 2)`` in [-1, 1], from motion codes ``(B, T, Dm)``:
        ``pose_readout(m)`` (``"slots"``: the sprite window's centre) or the first 2K numbers (``"keypoints"``:
        the sprite's ink centre)."""
        if not self.object_slots:
            return super().object_positions(motion)
        batch, frames, _ = motion.shape
        with torch.autocast(motion.device.type, enabled=False):  # sub-pixel placement needs fp32
            if self.config.architecture == "slots":
                positions = self.pose_readout(motion.float())
            else:
                positions = motion[..., : 2 * self.object_slots].float()
        return positions.reshape(batch, frames, self.object_slots, 2)

    def with_object_positions(self, motion: Tensor, positions: Tensor) -> Tensor:
        """Motion codes whose :meth:`object_positions` are ``positions (B, T, K, 2)``: the first 2K numbers
        replaced (``"keypoints"``), or the smallest change of the code that makes the linear ``pose_readout``
        read them, ``m + W^+ (p - W m - b)`` (``"slots"``; exact, W being 2K x Dm of full rank)."""
        if not self.object_slots:
            return super().with_object_positions(motion, positions)
        target = positions.reshape(*motion.shape[:2], 2 * self.object_slots).to(motion.device, torch.float32)
        if self.config.architecture == "slots":
            with torch.autocast(motion.device.type, enabled=False):
                residual = target - self.pose_readout(motion.float())  # (B, T, 2K)
                inverse = torch.linalg.pinv(self.pose_readout.weight.double()).float()  # (Dm, 2K)
                return (motion.float() + residual @ inverse.T).to(motion.dtype)
        return torch.cat([target.to(motion.dtype), motion[..., 2 * self.object_slots:]], dim=-1)

    def refine_positions(self, video: Tensor, content: Tensor, motion: Tensor, steps: int | None = None) -> Tensor:
        """Motion codes ``(B, T, Dm)`` whose object positions explain the observed ``video`` better: the
        positions of ``motion`` moved by ``steps`` Adam steps (:data:`REFINE_STEPS` by default, each about
        :data:`REFINE_STEP_PIXELS` pixels, Adam's rate) down the model's own reconstruction loss of ``video``
        decoded from ``content`` and them, the decoder and the content held fixed; the rest of the code as given.

        The encoder's positions are amortised guesses: the learned localiser's are 0.53 px from the truth at
        the median and 1.6 px at the 90th percentile, and a continuation inherits their jitter. Decoding
        explains the frames pixel by pixel, and a few steps of it bring the 90th percentile to 1.0 px
        (benchmarks/NOTES.md row 126). Each video's positions move on their own loss only (Adam's steps are
        per number), so a video's refinement does not depend on the batch. The model's parameters get no
        gradient, under ``torch.no_grad()`` too. Object architectures only."""
        if not self.object_slots:
            raise ValueError(f"refine_positions needs an object architecture {OBJECT_ARCHITECTURES}, "
                             f"not {self.config.architecture!r}")
        steps = REFINE_STEPS if steps is None else int(steps)
        check_non_negative_int("steps", steps)
        if steps == 0:
            return motion
        content, held = content.detach(), motion.detach()
        target = video.to(held.device, torch.float32)
        with torch.enable_grad():
            moved = self.object_positions(held).detach().clone().requires_grad_(True)  # a copy: Adam steps it in place
            optimizer = torch.optim.Adam([moved], lr=2.0 * REFINE_STEP_PIXELS / self.config.image_size)
            for _ in range(steps):
                codes = self._latents_from_factors(content, self.with_object_positions(held, moved))
                loss = self.reconstruction_loss(self._decode_logits(codes).float(), target)
                (gradient,) = torch.autograd.grad(loss, [moved])
                moved.grad = gradient
                optimizer.step()
        return self.with_object_positions(motion, moved.detach())

    def _prediction_start(self, video: Tensor, observed: dict[str, Tensor]) -> dict[str, Tensor]:
        """The object architectures continue from :meth:`refine_positions` of the observed motion."""
        if not self.object_slots:
            return observed
        return {**observed, "motion": self.refine_positions(video, observed["content"], observed["motion"],
                                                            self.prediction_refine_steps)}

    def learning_rate_scales(self) -> dict[str, float]:
        """The learned localiser trains at ``localiser_lr_scale`` times the run's rate (``"keypoints"``)."""
        return {"localiser.": self.config.localiser_lr_scale} if self.config.architecture == "keypoints" else {}

    def track(self, video: Tensor) -> Tensor:
        """Where each slot's object is in every frame, ``(B, T, K, 2)`` in [-1, 1] (object architectures only:
        the hand tracker's positions for ``"slots"``, the learned localiser's, with gradient, for ``"keypoints"``)."""
        if self._reassociates_by_content:  # the order comes from the content features: compute them
            return self._located(video)[0]
        return self._found(video)

    @property
    def _reassociates_by_content(self) -> bool:
        return self.config.architecture == "keypoints" and self.config.localiser_reassociate == "content"

    def _found(self, video: Tensor) -> Tensor:
        """The positions the localiser (``"keypoints"``) or the hand tracker (``"slots"``) finds, ``(B, T, K, 2)``."""
        cfg = self.config
        if cfg.architecture == "keypoints":
            return self.localiser(video)
        return track_objects(video, cfg.slots, cfg.glimpse_size, cfg.track_alignment)

    def _located(self, video: Tensor) -> tuple[Tensor, Tensor]:
        """The objects' positions ``(B, T, K, 2)`` and their glimpses' content features ``(B, T, K, F)``.

        ``localiser_reassociate="content"`` reorders both, frame by frame, so that each slot's features stay
        close to its own mean (:func:`utils.orders.consistent_orders`): the learned localiser's hand-overs
        where two objects cross are undone by what the content encoder sees."""
        cfg = self.config
        positions = self._found(video)
        batch, frames, channels = video.shape[:3]
        window = cfg.glimpse_size
        crops = glimpses(video, positions, window)  # (B, T, K, C, w, w)
        features = self.content_encoder(crops.reshape(-1, channels, window, window))  # (B * T * K, F)
        features = features.view(batch, frames, cfg.slots, -1)
        if self._reassociates_by_content:
            index = consistent_orders(features.detach())  # (B, T, K)
            positions, features = reorder(positions, index), reorder(features, index)
        return positions, features

    def _posteriors(self, video: Tensor) -> dict[str, DiagonalGaussian]:
        architecture = self.config.architecture
        if architecture in OBJECT_ARCHITECTURES:
            return self._slot_posteriors(video)
        batch, frames, channels, height, width = video.shape
        if architecture == "average":
            content_features = self.content_encoder(video.mean(dim=1))  # (B, F)
        else:  # "pooled": every frame's features, averaged over time
            frame_features = self.content_encoder(video.reshape(batch * frames, channels, height, width))
            content_features = frame_features.view(batch, frames, -1).mean(dim=1)  # (B, F)
        content = DiagonalGaussian.from_parameters(self.content_head(content_features))  # (B, Dc)

        frame_differences = video[:, 1:] - video[:, :-1]  # (B, T-1, C, H, W)
        differences = frame_differences.reshape(batch * (frames - 1), channels, height, width)
        blur = self.config.motion_blur
        if blur > 1:
            differences = F.avg_pool2d(
                differences, blur, stride=1, padding=blur // 2, count_include_pad=False
            )  # same size
        features = self.motion_encoder(differences).view(batch, frames - 1, -1)  # (B, T-1, F)
        features = torch.cat([features.new_zeros(batch, 1, features.shape[-1]), features], dim=1)  # (B, T, F)
        hidden, _ = self.motion_lstm(features)  # (B, T, 2H)
        motion = DiagonalGaussian.from_parameters(self.motion_head(hidden))  # (B, T, Dm)
        return {"content": content, "motion": motion}

    def _slot_posteriors(self, video: Tensor) -> dict[str, DiagonalGaussian]:
        cfg = self.config
        positions, features = self._located(video)  # (B, T, K, 2), (B, T, K, F)
        if cfg.content_time_pooling == "attention":  # frames weighted by a learned score: order-free in time
            weights = torch.softmax(self.frame_scores(features).float(), dim=1)  # (B, T, K, 1)
            features = (weights * features.float()).sum(dim=1).to(features.dtype)  # (B, K, F)
        else:
            features = features.mean(dim=1)  # (B, K, F): order-free in time
        content = DiagonalGaussian.from_parameters(self.content_head(features))  # (B, K, Dc / K)
        content = DiagonalGaussian(content.mean.flatten(1), content.logvar.flatten(1))  # (B, Dc)

        track = positions.flatten(2)  # (B, T, 2K)
        steps = torch.cat([torch.zeros_like(track[:, :1]), track[:, 1:] - track[:, :-1]], dim=1)  # (B, T, 2K)
        with torch.autocast(video.device.type, enabled=False):  # positions need fp32, not bf16
            hidden, _ = self.motion_lstm(self.motion_encoder(torch.cat([track, steps], dim=-1).float()))
            mean, logvar = self.motion_head(hidden).chunk(2, dim=-1)  # (B, T, Dm) each
            if cfg.architecture == "keypoints":
                # The first 2K numbers of the motion code ARE the learned positions (the decoder reads them
                # as they are), so where the model draws an object is where its localiser looks.
                mean = torch.cat([torch.zeros_like(mean[..., : track.shape[-1]]), mean[..., track.shape[-1]:]], -1)
            motion = DiagonalGaussian(mean + self.motion_skip(track.float()), logvar)
        return {"content": content, "motion": motion}

    def _priors(self, latents: dict[str, Tensor]) -> dict[str, DiagonalGaussian | None]:
        return {"content": None, "motion": self.motion_prior(latents["motion"])}

    def _decode_logits(self, latents: dict[str, Tensor]) -> Tensor:
        content, motion = latents["content"], latents["motion"]  # (B, Dc), (B, T, Dm)
        batch, frames, _ = motion.shape
        cfg = self.config
        if cfg.architecture in OBJECT_ARCHITECTURES:
            sprites = self.decoder(content.reshape(batch * cfg.slots, -1))  # (B * K, C, w, w): once per video
            sprites = sprites.view(batch, cfg.slots, *sprites.shape[1:])  # (B, K, C, w, w)
            positions = self.object_positions(motion)  # (B, T, K, 2)
            with torch.autocast(motion.device.type, enabled=False):  # sub-pixel placement needs fp32
                if cfg.architecture == "keypoints" and "ink_centre" not in cfg.removed_parts:
                    # A position names where the sprite's ink centre goes, not its window's centre: otherwise
                    # a sprite drawn off-centre and a position off by as much draw the same frames.
                    positions = positions - sprite_centres(sprites.float(), cfg.image_size)[:, None]
                return place_sprites(sprites.float(), positions, cfg.image_size)  # (B, T, C, H, W)
        codes = torch.cat([content[:, None].expand(batch, frames, -1), motion], dim=-1)  # (B, T, Dc + Dm)
        return self.decoder.decode_sequence(codes)  # (B, T, C, H, W)

    def _sample_latents(
        self, num_samples: int, num_frames: int, generator: torch.Generator | None
    ) -> dict[str, Tensor]:
        device, dtype = self._device_dtype()
        content_shape = (num_samples, self.config.content_dim)
        content = torch.randn(content_shape, generator=generator, device=device, dtype=dtype)
        return {"content": content, "motion": self.motion_prior.sample(num_samples, num_frames, generator)}

    def _continue_latents(self, observed: dict[str, Tensor], posteriors: dict[str, DiagonalGaussian],
                          future_frames: int, generator: torch.Generator | None,
                          deterministic: bool) -> dict[str, Tensor]:
        """Content: the observed posterior mean, held fixed. Motion: with a fitted path prior (object
        architectures), each object's observed posterior path continued by
        :meth:`models.fitted_prior.PathPrior.continue_paths` (with path dynamics: their mode path, or steps of
        components drawn by weight; without: blocks from the mixture's conditional, its mean or draws) and
        written into the last observed motion code (the
        decoder reads nothing else of it); otherwise the learned motion prior, teacher-forced on the
        observed motion codes and then run on by itself.

        The path prior conditions on the last :meth:`prediction_context` observed positions, not the two its
        samples continue from: the posterior positions jitter by about a pixel, and half the fitted frames
        average it out (benchmarks/NOTES.md row 60: 10 -> 10 MSE per frame 179 with two frames, 140 with
        five)."""
        content, motion = observed["content"], observed["motion"]  # (B, Dc), (B, T, Dm)
        paths = self.fitted_prior.paths if self.fitted_prior is not None else None
        if not (self.object_slots and paths is not None):
            return {"content": content,
                    "motion": self.motion_prior.continue_codes(motion, future_frames, generator, deterministic)}
        batch, frames = motion.shape[:2]
        positions = self.object_positions(motion)  # (B, T, K, 2)
        tracks = positions.transpose(1, 2).reshape(batch * self.object_slots, frames, 2)  # (B * K, T, 2)
        continued = paths.continue_paths(tracks, future_frames, generator, mean=deterministic,
                                         context=self.prediction_context(frames), dynamics_draws=True)[:, frames:]
        future = continued.view(batch, self.object_slots, future_frames, 2).transpose(1, 2)  # (B, F, K, 2)
        held = motion[:, -1:].expand(-1, future_frames, -1)  # (B, F, Dm)
        return {"content": content, "motion": self.with_object_positions(held, future.float()).to(motion.dtype)}

    def prediction_context(self, observed: int) -> int:
        """How many of ``observed`` frames' positions a fitted path prior's continuation is conditioned on:
        half its fitted frames (at least its sampling context, at most ``observed``)."""
        paths = self.fitted_prior.paths
        return min(observed, max(paths.context, paths.frames // 2))

    def prediction_description(self) -> str:
        paths = self.fitted_prior.paths if self.fitted_prior is not None else None
        if self.object_slots and paths is not None:
            observed = (f"content: the observed posterior mean, fixed; motion: each object's observed path "
                        f"({self._refined_words()}) continued")
            if paths.dynamics is not None:
                return (f"{observed} (mode path, given at least {paths.dynamics.context} observed frames: the fitted "
                        "path dynamics' most probable next step, one frame at a time; draws: each step's component "
                        "drawn by its sharpened weight), kept in the training box")
            context = max(paths.context, paths.frames // 2)
            return (f"{observed} by the fitted path prior, {paths.frames - context} frames at a time from its "
                    f"conditional on the last {context} positions (mode path: the most probable component's "
                    "conditional mean; draws for stochastic samples), kept in the training box")
        refined = f" ({self._refined_words()})" if self.object_slots else ""
        return ("content: the observed posterior mean, fixed; motion: the learned recurrent prior p(m_t | m_<t), "
                f"teacher-forced on the observed motion codes{refined}, then run on by itself (its mean path; draws "
                "for stochastic samples)")

    def _refined_words(self) -> str:
        if self.prediction_refine_steps == 0:
            return "positions as the encoder found them"
        return (f"positions refined by {self.prediction_refine_steps} Adam steps of {REFINE_STEP_PIXELS:g} px on "
                "the observed frames' reconstruction loss")

    def _factors(self, latents: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        return latents["content"], latents["motion"]

    def _latents_from_factors(self, content: Tensor, motion: Tensor) -> dict[str, Tensor]:
        return {"content": content, "motion": motion}
