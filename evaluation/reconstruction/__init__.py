"""How well a model reconstructs videos: the per-video metrics (MSE, PSNR, SSIM, temporal consistency),
the frame SSIM, the cost of a model (parameters, time per batch) and the checks of a (pred, target) pair."""
