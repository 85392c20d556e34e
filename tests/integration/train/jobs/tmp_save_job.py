"""A user's Keras script, the way the user writes them: MultiWorkerMirroredStrategy,
and ``model.save("/tmp/keras_save")`` on every worker (same fixed path on one box).
Uses the jobkit's input pipeline and epoch events (step times, shard size)."""
from __future__ import annotations

import os

import piforge_jobkit as kit

DEFAULTS = {"epochs": 3, "steps": 6, "batch": 16, "train_samples": 150, "seed": 1,
            "data": os.environ.get("PIFORGE_DATA", "data.npz"), "save": "/tmp/keras_save"}


def main() -> None:
    params, worker, strategy, arrays = kit.start(DEFAULTS)
    import numpy as np
    import tensorflow as tf

    def to_float(image, label):  # type: ignore[no-untyped-def]
        return tf.cast(image, tf.float32) / 255.0, tf.cast(label, tf.int64)

    count = params["train_samples"]
    train = kit.training_input(arrays["x_train"][:count], arrays["y_train"][:count], worker, params["batch"],
                               to_float, seed=params["seed"])
    with strategy.scope():
        model = tf.keras.Sequential([
            tf.keras.Input(shape=(28, 28)), tf.keras.layers.Reshape((28, 28, 1)),
            tf.keras.layers.Conv2D(16, 3, activation="relu"), tf.keras.layers.Flatten(),
            tf.keras.layers.Dense(10)])
        model.compile(loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      optimizer=tf.keras.optimizers.Adam(0.001), metrics=["accuracy"])
    model.fit(train, epochs=params["epochs"], steps_per_epoch=params["steps"], verbose=2,
              callbacks=[kit.history_callback(params["batch"], params["steps"])])
    model.save(params["save"])  # every worker, one fixed path: what raced in MergeV2Checkpoints
    reloaded = tf.keras.models.load_model(params["save"])
    same = all(np.array_equal(a, b) for a, b in zip(model.get_weights(), reloaded.get_weights()))
    print(f"{worker.name}: saved to {params['save']} and read back {'intact' if same else 'DIFFERENT'}", flush=True)
    kit.event("tmp_save", path=params["save"], intact=same)
    os._exit(0 if same else 4)  # like the jobkit's finish: fit() may linger at shutdown


if __name__ == "__main__":
    main()
