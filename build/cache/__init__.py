"""The binary cache: pack store paths, sign their metadata, push/pull them over HTTP or file://."""
