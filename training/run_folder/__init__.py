"""A run's folder: preparing it (fresh, overwrite or resume, and checking that a resume is the same run),
the advisory lock that keeps it to one process, and the logs written into it (metrics.csv, TensorBoard, train.log)."""
