"""A user's own job, as cluster.toml can name one: a tiny price regression that uses
MultiWorkerMirroredStrategy directly (no piforge jobkit) and reads a CSV shipped with it.

    python price_job.py csv=prices.csv epochs=5 hang_worker=-1
"""
from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
args = dict(a.split("=", 1) for a in sys.argv[1:])
task = json.loads(os.environ["TF_CONFIG"])["task"]
if int(args.get("hang_worker", -1)) == task["index"]:
    print("this worker hangs before TensorFlow starts", flush=True)
    time.sleep(3600)

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

strategy = tf.distribute.experimental.MultiWorkerMirroredStrategy()
data = np.loadtxt(args.get("csv", "prices.csv"), delimiter=",", dtype="float32")
x, y = data[:, :1], data[:, 1:]
with strategy.scope():
    model = tf.keras.Sequential([tf.keras.layers.Dense(1, input_shape=(1,))])
    model.compile(optimizer=tf.keras.optimizers.SGD(0.1), loss="mse")
dataset = tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(32)
model.fit(dataset, epochs=int(args.get("epochs", 5)), steps_per_epoch=20, verbose=2)
weight, bias = (float(v.numpy().ravel()[0]) for v in model.weights)
print(f"worker {task['index']}: price = {weight:.2f} * x + {bias:.2f}", flush=True)
