"""train:catsdogs end to end: the real cats_vs_dogs recipe decodes a generated PetImages
archive (with a truncated JPEG and a non-JPEG, which are skipped and counted), then two
workers train the user's CNN on it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_catsdogs_on_generated_images_with_corrupt_files(test_cluster, cats_dataset: Path, run_piforge,
                                                         piforge_home: Path):
    summary = json.loads((cats_dataset.parent / "cats_vs_dogs.json").read_text())
    assert summary["skipped_corrupt"] == 2
    assert sorted(summary["skipped_files"]) == ["PetImages/Cat/60.jpg", "PetImages/Dog/60.jpg"]
    assert summary["images"] == 120 and summary["test"] == 12 and summary["image_size"] == 64
    assert "skipped 2 corrupt JPEGs" in (cats_dataset.parent / ".piforge" / "build.log").read_text()

    cluster = test_cluster.write('[jobs.catsdogs]\nhosts = ["h0", "h1"]\n[jobs.catsdogs.params]\nper_worker_batch = 32\n')
    result = run_piforge("train:catsdogs", f"cluster={cluster}", f"dataset={cats_dataset}",
                         "epochs=3", "steps=8", "batch=16")
    assert result.returncode == 0, result.stdout
    assert float(result.stdout.split("test_accuracy=")[-1].split()[0]) >= 0.75  # colours separate the classes
    (run,) = (piforge_home / "runs").iterdir()
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    assert {e["host"] for e in events if e["kind"] == "epoch"} == {"h0", "h1"}
    assert (run / "model" / "saved_model.pb").is_file()
