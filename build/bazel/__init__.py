"""Bazel as a build tool inside recipes: the flags piforge renders for it, the
persistent caches that let a 20-hour build resume, and its progress lines."""
