"""The cluster area: cluster.toml, TF_CONFIG, hosts (local, ssh), check, deploy, fan-out."""
