"""Docker images from piforge store entries, with no registry.

A debootstrapped arm64 root filesystem (a rootfs recipe's store entry) becomes a
one-layer image whose config says linux/arm64: ``docker import`` would label it with
the host's architecture, and the classic builder then tries to pull a "matching"
base from a registry. Writing the ``docker save`` layout ourselves gives the right
label and a content-addressed image ID (the config has fixed timestamps), loaded
through the SDK. Built images are saved as ``image.tar`` + ``image.json`` so the
store (and the binary cache) carries them like any other output.
"""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from ..epoch import EPOCH, EPOCH_ISO
from ..errors import BuildError
from ..platform import Platform

IMAGE_TAR = "image.tar"
IMAGE_JSON = "image.json"


def docker_platform(platform: str) -> str:
    """piforge's ``linux/aarch64`` is Docker's ``linux/arm64``."""
    return Platform.parse(platform).docker_platform


def _sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def rootfs_image_config(layer_sha256: str, platform: str) -> bytes:
    parsed = Platform.parse(platform)
    architecture, variant = parsed.docker_arch, parsed.oci_variant
    config: Dict[str, Any] = {
        "architecture": architecture,
        "os": "linux",
        "created": EPOCH_ISO,
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8"],
            "Cmd": ["/bin/bash"],
        },
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_sha256}"]},
        "history": [{"created": EPOCH_ISO, "created_by": "piforge: root filesystem from the store"}],
    }
    if variant:
        config["variant"] = variant
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = EPOCH
    info.mode = 0o644
    archive.addfile(info, io.BytesIO(data))


def tar_rootfs(root: Path, layer: Path) -> None:
    """The root tree as one layer: sorted, numeric owners, without the store's metadata."""
    try:
        subprocess.run(["tar", "--sort=name", "--numeric-owner", "--xattrs", "--exclude=./.piforge",
                        "-C", str(root), "-cf", str(layer), "."],
                       check=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except subprocess.CalledProcessError as error:
        raise BuildError(f"cannot pack {root} as an image layer: {error.output.decode(errors='replace')[-500:]}") from None


def write_rootfs_image_archive(rootfs_tar: Path, archive_path: Path, platform: str, tag: str) -> str:
    """Write a ``docker load``-able archive with ``rootfs_tar`` as its only layer;
    returns the image ID (``sha256:<config digest>``)."""
    layer_sha = _sha256_of(rootfs_tar)
    config = rootfs_image_config(layer_sha, platform)
    config_sha = hashlib.sha256(config).hexdigest()
    manifest = [{"Config": f"{config_sha}.json", "RepoTags": [tag], "Layers": [f"{layer_sha}/layer.tar"]}]
    with tarfile.open(archive_path, "w", format=tarfile.PAX_FORMAT) as archive:
        _add_bytes(archive, f"{config_sha}.json", config)
        archive.add(str(rootfs_tar), arcname=f"{layer_sha}/layer.tar", recursive=False)
        _add_bytes(archive, "manifest.json", json.dumps(manifest).encode())
    return f"sha256:{config_sha}"


def _chunks(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            yield block


def has_image(client: Any, image_id: str) -> bool:
    import docker.errors

    try:
        client.images.get(image_id)
        return True
    except docker.errors.ImageNotFound:
        return False


def load_archive(client: Any, archive: Path) -> None:
    """Stream an image archive into the engine (no registry, no CLI)."""
    client.api.load_image(_chunks(archive))


def read_image_json(entry: Path) -> Dict[str, Any]:
    return json.loads((entry / IMAGE_JSON).read_text())


def ensure_base_image(client: Any, entry: Path, platform: str, scratch: Path, log: Any) -> str:
    """The engine's ID of the image a store entry holds, loading it when the engine
    lacks it: an ``image.tar`` (a built image) or a ``rootfs.tar`` (a root filesystem)."""
    if (entry / IMAGE_JSON).is_file() and (entry / IMAGE_TAR).is_file():
        image_id = read_image_json(entry)["id"]
        if not has_image(client, image_id):
            log(f"docker: loading image {image_id[:19]} from {entry / IMAGE_TAR}")
            load_archive(client, entry / IMAGE_TAR)
        return str(image_id)
    if (entry / "etc" / "debian_version").is_file():   # a root filesystem recipe's output
        tag = f"piforge/{entry.name[:32]}:rootfs"
        layer = scratch / "rootfs-layer.tar"
        archive = scratch / "rootfs-image.tar"
        tar_rootfs(entry, layer)
        image_id = write_rootfs_image_archive(layer, archive, platform, tag)
        layer.unlink()
        if not has_image(client, image_id):
            log(f"docker: loading {entry} as image {image_id[:19]} ({docker_platform(platform)})")
            load_archive(client, archive)
        archive.unlink()
        return image_id
    raise BuildError(f"{entry}: the builder base holds neither {IMAGE_TAR}+{IMAGE_JSON} nor a root filesystem",
                     hint="a docker builder's base must be an image recipe (image-aarch64) or a rootfs recipe")


def save_image(client: Any, image_id: str, out_dir: Path, info: Optional[Dict[str, Any]] = None) -> None:
    """``image.tar`` + ``image.json`` into a build's output."""
    image = client.images.get(image_id)
    with open(out_dir / IMAGE_TAR, "wb") as handle:
        for chunk in image.save(named=False):
            handle.write(chunk)
    attrs = image.attrs
    record = {"id": image.id, "architecture": attrs.get("Architecture"), "variant": attrs.get("Variant"),
              "os": attrs.get("Os"), "size": attrs.get("Size")}
    record.update(info or {})
    (out_dir / IMAGE_JSON).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
