#!/usr/bin/env python3
"""Convert a run's SavedModel to TensorFlow Lite (float32 and full-integer int8) and
measure each on the job's whole test set. Run by the TensorFlow that trained the model
(plain TF: TF 2.2.0 on Python 3.8 as well as TF 2.21 + tf-keras):

    python export_tflite.py model=DIR data=FILE.npz out=DIR [samples=300] [seed=1] [dynamic=1]

dynamic=1 adds dynamic.tflite: dynamic-range quantization (int8 weights, float
activations and I/O, no calibration data).

The data file is the job's own .npz (x_train, y_train, x_test, y_test; uint8 images
scaled by 1/255 as the built-in jobs do). One output of size 1 is a sigmoid (> 0.5 is
class 1), otherwise the class is the argmax. The last stdout line is
``PIFORGE_EXPORT {json}``; a failure prints ``PIFORGE_EXPORT_ERROR {json}`` (stage and
message, the converter's own words) and exits 3.
"""
from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Tuple

if importlib.util.find_spec("tf_keras") is not None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras is Keras 2, as in training
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TF 2.2's converter runs the toco_from_protos binary of its own venv, found on PATH
os.environ["PATH"] = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")

DEFAULTS = {"model": "model", "data": "data.npz", "out": "export", "samples": "300", "seed": "1", "dynamic": "0"}


def fail(stage: str, message: str, op: str = "") -> None:
    print("PIFORGE_EXPORT_ERROR " + json.dumps({"stage": stage, "message": message, "op": op}), flush=True)
    sys.exit(3)


# How TF's converter names an op it cannot map ('tf.MatrixDeterminant' op is neither a
# custom op nor a flex op; older: "Some of the operators ... : MatrixDeterminant.")
_OP_PATTERNS = (r"'(tf\.[A-Za-z0-9_]+)' op is neither a custom op nor a flex op",
                r"'(tf\.[A-Za-z0-9_]+)' op",
                r"this is not supported by TensorFlow Lite[^:]*: ([A-Za-z0-9_, ]+)",
                r"operators in the model are not supported[^:]*:\s*([A-Za-z0-9_, ]+)")


def converter_words(text: str) -> str:
    """The converter's message without its pages of MLIR locations: the lines that name an
    unsupported op or say what is not supported, from the op's quoted name on."""
    import re

    lines = [line.strip() for line in text.splitlines() if line.strip()]
    key = [line for line in lines if " op " in line or "not supported" in line][:3] or lines[:3]
    words = []
    for line in key:
        quoted = re.search(r"'tf\.[A-Za-z0-9_]+' op .*", line)
        words.append(quoted.group(0) if quoted else re.sub(r"^.*?error: loc\(.*?\)+: ", "", line))
    prefix = text.split(":", 1)[0]
    joined = " | ".join(words)   # the first line lost "ConverterError: " with its locations
    return (joined if joined.startswith(prefix) else f"{prefix}: {joined}")[:2000]


def failed_op(message: str) -> str:
    """The op the converter could not convert, from its own message ('' if it names none)."""
    import re

    for pattern in _OP_PATTERNS:
        found = re.search(pattern, message)
        if found:
            return found.group(1).strip().rstrip(".,")
    return ""


def parse(argv: List[str]) -> Dict[str, str]:
    params = dict(DEFAULTS)
    for argument in argv:
        key, sep, value = argument.partition("=")
        if not sep or key not in DEFAULTS:
            fail("arguments", f"bad argument {argument!r}: expected key=value, key one of {', '.join(DEFAULTS)}")
        params[key] = value
    return params


def prepare(x: Any, shape: Tuple[int, ...]) -> Any:
    """uint8 images -> float32 in [0, 1] shaped like the model's input (batch first)."""
    import numpy as np

    x = x.astype(np.float32) / 255.0
    wanted = tuple(d for d in shape[1:])
    if tuple(x.shape[1:]) != wanted and all(d is not None for d in wanted):
        x = x.reshape((x.shape[0],) + wanted)
    return x


def labels_of(scores: Any) -> Any:
    import numpy as np

    scores = np.asarray(scores)
    if scores.ndim == 1 or scores.shape[-1] == 1:
        return (scores.reshape(-1) > 0.5).astype(np.int64)
    return scores.argmax(axis=-1).astype(np.int64)


def representative(x: Any, count: int, seed: int) -> Callable[[], Any]:
    import numpy as np

    rng = np.random.RandomState(seed)
    picked = x[rng.choice(len(x), size=min(count, len(x)), replace=False)]

    def generate() -> Any:
        for sample in picked:
            yield [sample[None, ...]]

    return generate


def convert(tf: Any, model_dir: str, kind: str, x_train: Any, samples: int, seed: int) -> Tuple[bytes, str]:
    """kind: float32 (no optimization), dynamic (int8 weights only), int8 (full integer)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(model_dir)
    io = "float32"
    if kind == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]   # no representative data: dynamic range
    if kind == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative(x_train, samples, seed)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if version_tuple(tf.__version__) >= (2, 3):
            # TF 2.2's converter ignores these: its int8 model keeps float input and output
            converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
            io = "int8"
    return converter.convert(), io


def version_tuple(text: str) -> Tuple[int, int]:
    parts = text.split(".")
    return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)


def interpreter_accuracy(tf: Any, path: str, x: Any, y: Any) -> float:
    """Batch-1 invokes over the whole test set, quantizing input and output when int8."""
    import numpy as np

    interpreter = tf.lite.Interpreter(model_path=path)
    interpreter.allocate_tensors()
    given = interpreter.get_input_details()[0]
    taken = interpreter.get_output_details()[0]
    in_scale, in_zero = given["quantization"]
    out_scale, out_zero = taken["quantization"]
    correct = 0
    for index in range(len(x)):
        sample = x[index:index + 1]
        if given["dtype"] != np.float32:
            info = np.iinfo(given["dtype"])
            sample = np.clip(np.round(sample / in_scale + in_zero), info.min, info.max)
        interpreter.set_tensor(given["index"], sample.astype(given["dtype"]))
        interpreter.invoke()
        scores = interpreter.get_tensor(taken["index"])
        if taken["dtype"] != np.float32:
            scores = (scores.astype(np.float32) - out_zero) * out_scale
        correct += int(labels_of(scores)[0] == y[index])
    return correct / len(y)


def keras_accuracy(tf: Any, model: Any, x: Any, y: Any) -> float:
    import numpy as np

    correct = 0
    for start in range(0, len(x), 500):
        scores = model(tf.constant(x[start:start + 500]), training=False)
        correct += int(np.sum(labels_of(scores.numpy()) == y[start:start + 500]))
    return correct / len(y)


def main() -> None:
    params = parse(sys.argv[1:])
    import numpy as np
    import tensorflow as tf

    started = time.time()
    try:
        model = tf.keras.models.load_model(params["model"], compile=False)
    except Exception as error:  # noqa: BLE001 - the user needs TF's words, not a traceback
        fail("load", f"{params['model']}: {type(error).__name__}: {error}")
    with np.load(params["data"]) as data:
        arrays = {key: data[key] for key in data.files}
    shape = tuple(model.inputs[0].shape.as_list() if hasattr(model.inputs[0].shape, "as_list")
                  else model.inputs[0].shape)
    x_train = prepare(arrays["x_train"], shape)
    x_test = prepare(arrays["x_test"], shape)
    y_test = arrays["y_test"].reshape(-1).astype(np.int64)
    os.makedirs(params["out"], exist_ok=True)
    # A fixed batch of test inputs: infer: runs it on every host and compares the predictions
    np.save(os.path.join(params["out"], "samples.npy"), x_test[:64])
    result: Dict[str, Any] = {"tensorflow": tf.__version__, "test_samples": int(len(y_test)),
                              "representative_samples": min(int(params["samples"]), len(x_train)),
                              "input_shape": [d for d in shape[1:]],
                              "keras_accuracy": keras_accuracy(tf, model, x_test, y_test), "models": {}}
    kinds = ["float32", "int8"] + (["dynamic"] if params["dynamic"] not in ("0", "", "no") else [])
    for name in kinds:
        try:
            flat, io = convert(tf, params["model"], name, x_train, int(params["samples"]), int(params["seed"]))
        except Exception as error:  # noqa: BLE001
            text = f"{type(error).__name__}: {error}"
            fail(f"convert {name}", converter_words(text), failed_op(text))
        path = os.path.join(params["out"], f"{name}.tflite")
        with open(path, "wb") as handle:
            handle.write(flat)
        accuracy = interpreter_accuracy(tf, path, x_test, y_test)
        result["models"][name] = {"file": f"{name}.tflite", "io": io, "accuracy": accuracy}
        print(f"{name}: {len(flat)} bytes, {io} I/O, accuracy {accuracy:.4f}", flush=True)
    result["seconds"] = round(time.time() - started, 2)
    print("PIFORGE_EXPORT " + json.dumps(result, sort_keys=True), flush=True)


if __name__ == "__main__":
    main()
