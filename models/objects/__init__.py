"""The object structure of the Disentangled VAE's slot architectures: the parameter-free tracker, glimpses
and sprite placement (slots), and the learned localiser that replaces the tracker (keypoints)."""
