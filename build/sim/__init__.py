"""Simulated cluster hosts (netns + real sshd + private home, optionally an arm64
rootfs under qemu): shared by the sim:up/sim:down tasks and the integration tests."""
