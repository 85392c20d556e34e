#!/usr/bin/env python3
"""The user's MNIST CNN under MultiWorkerMirroredStrategy (their worker1.py, minus the
hand-written TF_CONFIG). Defaults are their hyperparameters; override with key=value:

    python3 mnist.py data=mnist.npz epochs=3 steps=50 batch=256 optimizer=adam lr=0.001

The data file is an .npz with x_train, y_train, x_test, y_test (Keras mnist.npz layout;
fashion_mnist has the same shapes). TF_CONFIG, when set, comes from the launcher.
"""
from __future__ import annotations

import os

import piforge_jobkit as kit

DEFAULTS = {
    "epochs": 20, "steps": 100, "batch": 2000, "optimizer": "sgd", "lr": 0.001,
    "data": os.environ.get("PIFORGE_DATA", "mnist.npz"),
    "model_dir": os.environ.get("PIFORGE_MODEL_DIR", "model"),
    "seed": 1,
    "test_samples": 0,   # 0: the whole test set; fewer for slow (emulated) hosts
    "vectorized": True,  # preprocess whole batches (the same batches, a faster start)
}


def build_model(tf, optimizer):  # type: ignore[no-untyped-def]
    model = tf.keras.Sequential([
        tf.keras.Input(shape=(28, 28)),
        tf.keras.layers.Reshape(target_shape=(28, 28, 1)),
        tf.keras.layers.Conv2D(32, 3, activation="relu"),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(128, activation="relu"),
        tf.keras.layers.Dense(10),
    ])
    model.compile(loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  optimizer=optimizer, metrics=["accuracy"])
    return model


def main() -> None:
    params, worker, strategy, arrays = kit.start(DEFAULTS)
    import tensorflow as tf


    def to_float(image, label):  # type: ignore[no-untyped-def]
        return tf.cast(image, tf.float32) / 255.0, tf.cast(label, tf.int64)

    train = kit.training_input(arrays["x_train"], arrays["y_train"], worker, params["batch"], to_float,
                               seed=params["seed"], vectorized=params["vectorized"])
    with strategy.scope():
        model = build_model(tf, kit.make_optimizer(params["optimizer"], params["lr"]))
    kit.fit_evaluate_save(model, train, params, worker, arrays, to_float, lambda logits: logits.argmax(axis=-1))


if __name__ == "__main__":
    main()
