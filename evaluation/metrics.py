"""Re-exports :mod:`evaluation.reconstruction.metrics` under its old path, which the design document uses
(``from evaluation.metrics import reconstruction_metrics, compare_models``); new code imports the new path."""

from evaluation.reconstruction.metrics import (
    bce_per_frame,
    compare_models,
    eval_mode,
    frame_mse,
    frame_psnr,
    mae_per_frame,
    mse,
    mse_per_frame,
    psnr,
    reconstruction_metrics,
    ssim,
    ssim_uniform,
    temporal_consistency,
    video_metrics,
)

__all__ = [
    "bce_per_frame", "compare_models", "eval_mode", "frame_mse", "frame_psnr", "mae_per_frame", "mse",
    "mse_per_frame", "psnr", "reconstruction_metrics", "ssim", "ssim_uniform", "temporal_consistency",
    "video_metrics",
]
