#!/usr/bin/env python3
"""The user's cats-vs-dogs CNN (their cnn-distributed.py) under MultiWorkerMirroredStrategy.

Defaults are their hyperparameters (64x64 images, per-worker batch 32, Adam, 10 epochs x
50 steps); override with key=value. The data file is an .npz the controller prepared
once (piforge's cats_vs_dogs dataset): x_train/x_test uint8 (N, 64, 64, 3), y_train/y_test
0 = cat, 1 = dog. Decoding JPEGs is done there, not on every Pi for every epoch.
"""
from __future__ import annotations

import os

import piforge_jobkit as kit

DEFAULTS = {
    "epochs": 10, "steps": 50, "batch": 32, "optimizer": "adam", "lr": 0.001, "image_size": 64,
    "data": os.environ.get("PIFORGE_DATA", "cats_vs_dogs.npz"),
    "model_dir": os.environ.get("PIFORGE_MODEL_DIR", "model"),
    "seed": 1,
    "test_samples": 0,   # 0: the whole test set; fewer for slow (emulated) hosts
}


def build_model(tf, size, optimizer):  # type: ignore[no-untyped-def]
    layers = tf.keras.layers
    model = tf.keras.Sequential([
        layers.Conv2D(32, (3, 3), input_shape=(size, size, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(32, (3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dense(units=128, activation="relu"),
        layers.Dense(units=1, activation="sigmoid"),
    ])
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=["accuracy"])
    return model


def main() -> None:
    params, worker, strategy, arrays = kit.start(DEFAULTS)
    import tensorflow as tf

    size = params["image_size"]

    def to_float(image, label):  # type: ignore[no-untyped-def]
        image = tf.cast(image, tf.float32) / 255.0
        if image.shape[0] != size:  # the stored arrays are 64x64; other sizes resize here
            image = tf.image.resize(image, [size, size])
        return image, tf.cast(label, tf.float32)

    train = kit.training_input(arrays["x_train"], arrays["y_train"], worker, params["batch"], to_float,
                               seed=params["seed"])
    with strategy.scope():
        model = build_model(tf, size, kit.make_optimizer(params["optimizer"], params["lr"]))
    kit.fit_evaluate_save(model, train, params, worker, arrays, to_float, lambda scores: (scores > 0.5).astype("int64"))


if __name__ == "__main__":
    main()
