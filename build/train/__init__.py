"""Training on the cluster: job scripts, datasets, the launcher, run records, reports."""
