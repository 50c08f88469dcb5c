"""The students' settings: architecture and input (:class:`StudentConfig`) and optimisation
(:class:`TrainConfig`). Plain dataclasses without torch, so the workflow can validate and
resolve settings without importing it; their defaults are the only defaults
(:mod:`geokd.settings`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

DEVICE_RE = re.compile(r"auto|cpu|cuda(:[0-9]+)?")

FRAMES = ("none", "body_sequence", "body_frame")
STREAMS = ("joints", "bones", "velocity")
POOLINGS = ("mean", "last", "cls")
POSITIONALS = ("sinusoidal", "learned", "none")


@dataclass
class StudentConfig:
    """Architecture, input preparation and augmentation of the student.

    Attributes
    ----------
    d_model : int
        Width of the transformer (default 64).
    n_heads : int
        Attention heads; must divide ``d_model`` (default 4).
    n_layers : int
        Encoder layers (default 2).
    ff_dim : int
        Hidden width of the feed-forward blocks (default 128).
    dropout : float
        Dropout in the encoder layers and after the input embedding (the latter only with
        ``input_projection``: raw coordinates are never dropped; default 0.1).
    pooling : {"mean", "last", "cls"}
        ``"mean"``: mean over the valid frames (over all ``T`` steps when ``padding_mask`` is
        False); ``"last"``: the last valid frame (step ``T - 1`` without padding mask);
        ``"cls"``: a learned token prepended to the sequence (default ``"mean"``).
    positional : {"sinusoidal", "learned", "none"}
        Positional encoding added after the input projection (default ``"sinusoidal"``).
    normalise : bool
        Per-sequence centring and RMS scaling of the landmarks (module docstring; default True).
    max_frames : int
        Padded length; longer sequences are resampled uniformly (default 128).
    input_layernorm : bool
        LayerNorm over the K*3 input features of every frame, before the projection
        (default False).
    input_projection : bool
        Linear K*3 -> d_model; False means identity and needs ``d_model == K*3`` (default True).
    padding_mask : bool
        Mask padded frames in attention and pooling (default True).
    norm_first : bool
        Pre-LN encoder layers (default True; stabler for small data). The original was post-LN.
    activation : {"gelu", "relu"}
        Feed-forward activation (default ``"gelu"``).
    augment_rotate : float
        Training only: maximal angle in degrees of a random rotation about the vertical (y)
        axis through the sequence's centre, uniform in ``[-a, a]`` (default 0: off).
    augment_scale : float
        Training only: random uniform scale factor in ``[1 - a, 1 + a]`` about the centre
        (default 0: off).
    augment_time_warp : float
        Training only: strength ``a`` in ``[0, 0.3]`` of a smooth monotone time warp
        ``u + a c sin(pi u)`` with ``c`` uniform in ``[-1, 1]``, linear interpolation between
        frames, length kept (default 0: off).
    augment_frame_drop : float
        Training only: probability in ``[0, 1)`` that a valid frame is dropped; the rest are
        moved up and the length shrinks (at least one frame is kept; default 0: off).
    frame : {"none", "body_sequence", "body_frame"}
        Input coordinates (:func:`geokd.models.streams.body_frame`): ``"none"`` keeps the
        camera coordinates (then ``normalise`` applies); ``"body_sequence"`` rotates each
        sequence once into its body frame (hip centre origin, hips/shoulders along x, spine
        along y, torso length 1); ``"body_frame"`` does so per frame (glitch frames keep the
        previous frame's rotation). Body frames need a Kinect skeleton: 20 joints, 25
        (NTU RGB+D) or two bodies of 25 (framed by the first) (default ``"none"``).
    resampling : {"nearest", "linear"}
        ``"nearest"``: sequences longer than ``max_frames`` keep uniformly spaced frames,
        shorter ones are zero-padded; ``"linear"``: every sequence is interpolated to exactly
        ``max_frames`` frames (default ``"nearest"``).
    streams : list of {"joints", "bones", "velocity"}
        Input streams computed inside the model from the (augmented) joints and concatenated
        per frame: joints, bones (child minus parent) and velocities (next frame minus this
        one, times ``velocity_scale``); default ``["joints"]``.
    velocity_scale : float
        Multiplier of the velocity stream (default 1).
    head : {"linear", "nngk"}
        Classifier on the pooled embedding: a linear layer, or nearest-neighbour Gaussian
        kernels over stored training embeddings (:mod:`geokd.models.nngk`; default linear).
    nngk_k, nngk_floor : int, float
        NNGK head: neighbours and probability floor (default 50, 0.001).
    """

    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    ff_dim: int = 128
    dropout: float = 0.1
    pooling: str = "mean"
    positional: str = "sinusoidal"
    normalise: bool = True
    max_frames: int = 128
    input_layernorm: bool = False
    input_projection: bool = True
    padding_mask: bool = True
    norm_first: bool = True
    activation: str = "gelu"
    augment_rotate: float = 0.0
    augment_scale: float = 0.0
    augment_time_warp: float = 0.0
    augment_frame_drop: float = 0.0
    frame: str = "none"
    resampling: str = "nearest"
    streams: list[str] = field(default_factory=lambda: ["joints"])
    velocity_scale: float = 1.0
    head: str = "linear"
    nngk_k: int = 50
    nngk_floor: float = 1e-3

    def __post_init__(self) -> None:
        self.streams = list(self.streams)
        for name, value, allowed in (
            ("frame", self.frame, FRAMES),
            ("resampling", self.resampling, ("nearest", "linear")),
            ("head", self.head, ("linear", "nngk")),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if (
            not self.streams
            or set(self.streams) - set(STREAMS)
            or len(set(self.streams)) < len(self.streams)
        ):
            raise ValueError(f"streams must be distinct names of {STREAMS}, got {self.streams}")
        if self.nngk_k < 1 or not 0 <= self.nngk_floor < 1:
            raise ValueError("nngk_k must be >= 1 and nngk_floor in [0, 1)")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.positional not in POSITIONALS:
            raise ValueError(f"positional must be one of {POSITIONALS}, got {self.positional!r}")
        if self.activation not in ("gelu", "relu"):
            raise ValueError(f"activation must be 'gelu' or 'relu', got {self.activation!r}")
        if min(self.d_model, self.n_heads, self.n_layers, self.ff_dim, self.max_frames) < 1:
            raise ValueError("d_model, n_heads, n_layers, ff_dim and max_frames must be >= 1")
        if self.d_model % self.n_heads:
            raise ValueError(f"n_heads={self.n_heads} does not divide d_model={self.d_model}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.augment_rotate < 0 or not 0 <= self.augment_scale < 1:
            raise ValueError("augment_rotate must be >= 0 and augment_scale in [0, 1)")
        if not 0 <= self.augment_time_warp <= 0.3 or not 0 <= self.augment_frame_drop < 1:
            raise ValueError("augment_time_warp must be in [0, 0.3], augment_frame_drop in [0, 1)")

    @classmethod
    def paper(cls, dataset: str = "utd_mhad") -> StudentConfig:
        """The original student of the paper's code release (natural frames).

        ``"utd_mhad"``: d_model 60 (= 20 joints x 3, identity input), 6 layers, 12 heads,
        feed-forward 512, dropout 0.2, zero padding to 125 frames, mean over all (padded) steps.
        ``"signum"``: d_model 126 (2 hands x 21 x 3), 4 layers, 9 heads, feed-forward 256,
        dropout 0.1, 80 frames, last time step. Both: no positional encoding, no padding
        mask, raw coordinates, post-LN ReLU layers, LayerNorm + linear head.
        """
        common = dict(
            positional="none",
            normalise=False,
            input_layernorm=False,
            input_projection=False,
            padding_mask=False,
            norm_first=False,
            activation="relu",
        )
        if dataset == "utd_mhad":
            return cls(
                d_model=60,
                n_heads=12,
                n_layers=6,
                ff_dim=512,
                dropout=0.2,
                pooling="mean",
                max_frames=125,
                **common,
            )
        if dataset == "signum":
            return cls(
                d_model=126,
                n_heads=9,
                n_layers=4,
                ff_dim=256,
                dropout=0.1,
                pooling="last",
                max_frames=80,
                **common,
            )
        raise ValueError(f"no paper preset for dataset {dataset!r}; use 'utd_mhad' or 'signum'")


@dataclass
class SoftmaxSettings:
    """``teacher.softmax``: :func:`geokd.models.teacher.softmax_teacher`'s parameters; a
    ``temperature`` of None is chosen on ``temperature_grid`` by the teacher's own held-out
    negative log-likelihood (:func:`geokd.models.teacher.select_temperature`)."""

    temperature: float | None = None
    exclude_self: bool = True
    normalise: str = "minmax_offdiag"
    temperature_grid: list[float] = field(
        default_factory=lambda: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 3.0]
    )


@dataclass
class NngkSettings:
    """``teacher.nngk``: :func:`geokd.models.teacher.nngk_teacher`'s parameters."""

    k: int = 5
    sigma: float | None = None
    floor: float = 1e-3
    exclude_self: bool = True


#: the files of one training run's folder (geokd.models.runs.run_trainings writes them)
RUN_FILES = ("model.pt", "model.pt.json", "history.json", "metrics.json", "timings.json")

#: TrainConfig fields that are not settings: each job sets them (seed, loss, threads, no bar)
JOB_FIELDS = ("seed", "mode", "num_threads", "progress")

#: model families: the loss (and for nngk the head) each trains with
MODES = ("transformer", "label_smoothing", "distilled", "metric", "nngk")
#: TrainConfig fields that only one family reads (the others' jobs ignore them)
MODE_FIELDS = {
    "label_smoothing": ("label_smoothing",),
    "distilled": ("distillation", "kd_weight", "alpha", "beta", "temperature"),
    "metric": ("metric_loss", "metric_weight", "metric_tau"),
}


@dataclass
class TrainConfig:
    """Optimisation settings.

    Attributes
    ----------
    epochs : int
        Training epochs (default 200).
    batch_size : int
        Samples per step; the last batch of an epoch may be smaller (default 32).
    lr, weight_decay : float
        Peak learning rate and decoupled weight decay (default 1e-3, 1e-2).
    seed : int
        Seed of initialisation, dropout, shuffling and augmentation (default 0).
    mode : {"transformer", "label_smoothing", "distilled", "metric", "nngk"}
        Model family (:mod:`geokd.models.losses`; default ``"transformer"``).
    label_smoothing : float
        ``label_smoothing`` mode: uniform smoothing epsilon of the cross-entropy (default 0.1).
    distillation : {"kl", "paper"}
        ``distilled`` mode. ``"kl"`` (default): ``(1 - w) CE(z, y) + w KL(P || softmax(z))``
        with ``w = kd_weight``; the teacher's soft labels are tempered once, in distance space
        (``teacher.softmax.temperature``), and used as given. ``"paper"``: the original
        ``alpha CE + beta T^2 KL(P || softmax(z / T))`` (a second temperature on top of the
        tempered teacher; "as published" runs only).
    kd_weight : float
        Weight ``w`` in [0, 1] of the teacher term with ``distillation="kl"`` (default 0.5).
    alpha, beta, temperature : float
        ``distillation="paper"`` only: its weights and temperature (default 0.5, 0.5, 3.0).
    metric_loss : {"rkd", "neighbourhood"}
        ``metric`` mode: distance matching (RKD-D) or neighbourhood KL between the batch's
        embedding distances and its Procrustes-DTW distances (default ``"rkd"``).
    metric_weight, metric_tau : float
        Weight of the metric term added to CE, and the neighbourhood loss's temperature
        (default 1.0, 0.1).
    decay_norms_biases : bool
        Apply weight decay to LayerNorm weights, biases and other 1-D parameters too
        (default False: standard practice decays only weight matrices).
    optimizer : {"adamw", "adam"}
        ``"adam"`` adds weight decay to the gradient (L2), as ``torch.optim.Adam``.
    scheduler : {"cosine", "constant"}
        Learning rate per step after warm-up: cosine decay to 0, or constant.
    warmup_epochs : int
        Linear warm-up length in epochs (default 5).
    grad_clip : float
        Maximal global gradient norm, 0 = off (default 1.0).
    shuffle : bool
        Reshuffle the training set every epoch (default True; the original did not).
    val_fraction : float
        Stratified fraction of the training set held out for selection when ``train`` gets no
        ``val`` set (default 0: none). In distilled mode the teacher rows of held-out samples
        are dropped (the teacher itself was computed with them as references).
    patience : int
        Early stopping after this many epochs without validation improvement, 0 = off.
    eval_every : int
        Evaluate ``val`` and ``eval_sets`` every this many epochs and at the last (default 1).
    latency_batch_size : int
        Besides batch 1, the batch size at which the inference latency per sample is measured
        (default 256: throughput of batched inference).
    eval_batch_size : int
        Batch size of evaluation and prediction (default 256).
    resume_every : int
        Save a resumable state (model, optimiser, scheduler, every RNG state) every this many
        epochs in the run's folder (``.resume.partial``), so that a killed run resumes there;
        it is deleted when the run completes. 0 = off (default 5; :mod:`geokd.models.resume`).
    device : str
        Torch device: ``"cpu"`` (default; bitwise determinism is promised on the CPU only),
        ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (``"cuda"`` when a GPU is visible, else CPU).
    num_threads : int, optional
        ``torch.set_num_threads`` during training; None keeps the current setting.
    progress : bool
        tqdm bar over epochs (shown only when stderr is a terminal).
    """

    epochs: int = 200
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-2
    seed: int = 0
    mode: str = "transformer"
    label_smoothing: float = 0.1
    distillation: str = "kl"
    kd_weight: float = 0.5
    alpha: float = 0.5
    beta: float = 0.5
    temperature: float = 3.0
    metric_loss: str = "rkd"
    metric_weight: float = 1.0
    metric_tau: float = 0.1
    decay_norms_biases: bool = False
    optimizer: str = "adamw"
    scheduler: str = "cosine"
    warmup_epochs: int = 5
    grad_clip: float = 1.0
    shuffle: bool = True
    val_fraction: float = 0.0
    patience: int = 0
    eval_every: int = 1
    latency_batch_size: int = 256
    eval_batch_size: int = 256
    resume_every: int = 5
    device: str = "cpu"
    num_threads: int | None = None
    progress: bool = True

    def __post_init__(self) -> None:
        if self.distillation not in ("kl", "paper") or self.metric_loss not in (
            "rkd",
            "neighbourhood",
        ):
            raise ValueError("distillation must be kl|paper and metric_loss rkd|neighbourhood")
        if not 0 <= self.kd_weight <= 1 or not 0 <= self.label_smoothing < 1:
            raise ValueError("kd_weight must be in [0, 1] and label_smoothing in [0, 1)")
        if self.metric_weight < 0 or not self.metric_tau > 0:
            raise ValueError("metric_weight must be >= 0 and metric_tau > 0")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.optimizer not in ("adamw", "adam") or self.scheduler not in ("cosine", "constant"):
            raise ValueError("optimizer must be adamw|adam and scheduler cosine|constant")
        sizes = (
            self.epochs,
            self.batch_size,
            self.eval_every,
            self.eval_batch_size,
            self.latency_batch_size,
        )
        if min(sizes) < 1:
            raise ValueError(
                "epochs, batch_size, eval_every, eval_batch_size and latency_batch_size "
                "must be >= 1"
            )
        if not DEVICE_RE.fullmatch(self.device):
            raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if not self.temperature > 0 or not 0 <= self.val_fraction < 1:
            raise ValueError("temperature must be > 0 and val_fraction in [0, 1)")
        if self.resume_every < 0:
            raise ValueError(f"resume_every must be >= 0, got {self.resume_every}")

    @classmethod
    def paper(cls, dataset: str = "utd_mhad", **overrides) -> TrainConfig:
        """The original optimisation: Adam, lr 1e-4, batch 16, no shuffling, constant lr,
        no clipping; 2000 epochs (``"utd_mhad"``) or 400 (``"signum"``); alpha = beta = 0.5,
        T = 3."""
        epochs = {"utd_mhad": 2000, "signum": 400}.get(dataset)
        if epochs is None:
            raise ValueError(f"no paper preset for dataset {dataset!r}; use 'utd_mhad' or 'signum'")
        base = dict(
            epochs=epochs,
            batch_size=16,
            lr=1e-4,
            weight_decay=0.0,
            optimizer="adam",
            scheduler="constant",
            warmup_epochs=0,
            grad_clip=0.0,
            shuffle=False,
        )
        return cls(**{**base, **overrides})
