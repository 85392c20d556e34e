"""What every piforge job script needs on a worker, for TF 2.2 (Python 3.8) and current TF.

The launcher ships this file beside the job script. It never writes TF_CONFIG: it
only reads the one the launcher set, to learn this worker's index. Hyperparameters
come from the command line (``epochs=3 batch=64``) or from ``PIFORGE_PARAM_<NAME>``.

Lines starting with ``PIFORGE_EVENT`` on stdout are machine-readable progress that the
launcher turns into the run record (per-epoch history, first-step time, test accuracy).
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

# Keras 3's fit() crashes under MultiWorkerMirroredStrategy with 2+ workers; when
# tf-keras is installed, use it (Keras 2). TF 2.2 has Keras 2 built in and ignores this.
if importlib.util.find_spec("tf_keras") is not None:
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
# The strategy's first barrier waits on gRPC's reconnect backoff (TF caps it at 1 s) when
# a peer's server came up a moment after the first connect: measured 0.07-1.04 s after the
# last worker's import with the default, ~0.1 s with these (TF 2.2 and current TF read
# them; TF 2.2's gRPC refuses an initial backoff under 100 ms; bench/train_scaling.py).
os.environ.setdefault("TF_GRPC_DEFAULT_OPTIONS",
                      "grpc.initial_reconnect_backoff_ms=100,grpc.max_reconnect_backoff_ms=200")

PROCESS_START = time.time()


def event(kind: str, **fields: Any) -> None:
    """One machine-readable line for the launcher (flushed at once: logs stream live)."""
    fields["t"] = round(time.time(), 3)
    print(f"PIFORGE_EVENT {kind} {json.dumps(fields, sort_keys=True)}", flush=True)


def mark(name: str) -> None:
    """A start-up milestone (bench/train_scaling.py shows where the first step's seconds go)."""
    event("phase", name=name, since_start=round(time.time() - PROCESS_START, 3))


# Longer names cluster.toml files use for the same hyperparameters.
ALIASES = {"per_worker_batch": "batch", "steps_per_epoch": "steps", "learning_rate": "lr"}


def parse_params(defaults: Dict[str, Any], argv: Optional[List[str]] = None) -> Dict[str, Any]:
    """``key=value`` arguments (or PIFORGE_PARAM_KEY) over ``defaults``, typed like the default.

    Later arguments win, so the launcher passes cluster.toml's values before the command line's.
    """
    params = dict(defaults)
    given: Dict[str, str] = {}
    for name in defaults:
        env = os.environ.get("PIFORGE_PARAM_" + name.upper())
        if env is not None:
            given[name] = env
    for argument in sys.argv[1:] if argv is None else argv:
        key, sep, value = argument.partition("=")
        key = key.lstrip("-").replace("-", "_")
        key = ALIASES.get(key, key)
        if not sep or key not in defaults:
            known = ", ".join(sorted(defaults))
            raise SystemExit(f"job: bad argument {argument!r}: expected key=value with key one of {known}")
        given[key] = value
    for key, value in given.items():
        kind = type(defaults[key])
        try:
            params[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
        except ValueError:
            raise SystemExit(f"job: {key}={value!r}: expected {kind.__name__}") from None
    return params


class Worker:
    """This process's place in the cluster, read from TF_CONFIG (absent: a lone worker)."""

    def __init__(self) -> None:
        config = json.loads(os.environ.get("TF_CONFIG") or "{}")
        cluster = config.get("cluster", {})
        task = config.get("task", {"type": "worker", "index": 0})
        # Replicas that read data, in the order TF numbers them: chief first, then workers.
        self.members = [("chief", i) for i in range(len(cluster.get("chief", [])))]
        self.members += [("worker", i) for i in range(len(cluster.get("worker", [])))]
        if not self.members:
            self.members = [("worker", 0)]
        me = (task.get("type", "worker"), int(task.get("index", 0)))
        self.index = self.members.index(me) if me in self.members else 0
        self.count = len(self.members)
        # MultiWorkerMirroredStrategy's chief: the chief task, else worker 0.
        self.is_chief = me == self.members[0]
        self.name = f"{me[0]}{me[1]}"


def make_strategy(worker: Worker) -> Any:
    import tensorflow as tf

    event("tf_imported", version=tf.__version__, seconds=round(time.time() - PROCESS_START, 3))
    if worker.count == 1 and not os.environ.get("TF_CONFIG"):
        return tf.distribute.get_strategy()  # the single-host baseline: no collectives at all
    stable = getattr(tf.distribute, "MultiWorkerMirroredStrategy", None)  # TF >= 2.4
    if stable is None:   # TF 2.2: no communication options to give
        strategy = tf.distribute.experimental.MultiWorkerMirroredStrategy()
    else:
        strategy = stable(communication_options=communication_options(tf))
    mark("strategy")
    return strategy


def communication_options(tf: Any) -> Any:
    """``PIFORGE_BYTES_PER_PACK`` (a profile's [job_env] may set it): gradients all-reduced
    in packs of about that many bytes (TF >= 2.4); unset or 0: TF's default."""
    text = os.environ.get("PIFORGE_BYTES_PER_PACK", "").strip()
    try:
        size = int(text) if text else 0
    except ValueError:
        raise SystemExit(f"job: PIFORGE_BYTES_PER_PACK={text!r}: expected a number of bytes") from None
    if size <= 0:
        return tf.distribute.experimental.CommunicationOptions()
    return tf.distribute.experimental.CommunicationOptions(bytes_per_pack=size)


def start(defaults: Dict[str, Any]) -> Tuple[Dict[str, Any], Worker, Any, Dict[str, Any]]:
    """The beginning of every built-in job: parameters, place, strategy, seeded TF, data."""
    params = parse_params(defaults)
    worker = Worker()
    strategy = make_strategy(worker)
    import tensorflow as tf

    tf.random.set_seed(params["seed"])
    arrays = load_arrays(params["data"])
    mark("data_loaded")
    return params, worker, strategy, arrays


def load_arrays(path: str) -> Dict[str, Any]:
    import numpy as np

    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def training_input(x: Any, y: Any, worker: Worker, per_worker_batch: int,
                   preprocess: Callable[[Any, Any], Tuple[Any, Any]], seed: int = 1,
                   vectorized: bool = False) -> Any:
    """The per-worker input pipeline: shard first, then decode/map, cache, shuffle, prefetch.

    Sharding the raw arrays before anything else means each worker converts only its
    own 1/N of the data (decoding the whole stream on every worker is what made the
    user's second Pi buy nothing). TF's auto-sharding is off because we did it here.
    The dataset is batched at the global batch size: MultiWorkerMirroredStrategy splits
    each batch by the number of replicas, so every worker steps on ``per_worker_batch``.

    ``vectorized``: ``preprocess`` works on whole batches as well as on single elements
    (a cast and a scale): it then runs once a batch, after shuffling the raw elements.
    The batches are the same; the first one comes ~0.5 s sooner (no per-element map to
    fill the shuffle buffer) and every later one costs less CPU.
    """
    import tensorflow as tf

    x_shard, y_shard = x[worker.index::worker.count], y[worker.index::worker.count]
    shard_event(len(x_shard), per_worker_batch, worker)
    dataset = tf.data.Dataset.from_tensor_slices((x_shard, y_shard))
    autotune = tf.data.experimental.AUTOTUNE
    if not vectorized:
        dataset = dataset.map(preprocess, num_parallel_calls=autotune).cache()
    dataset = dataset.shuffle(min(len(x_shard), 10000), seed=seed + worker.index)
    dataset = dataset.repeat().batch(per_worker_batch * worker.count)
    if vectorized:
        dataset = dataset.map(preprocess, num_parallel_calls=autotune)
    dataset = dataset.prefetch(tf.data.experimental.AUTOTUNE)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
    return dataset.with_options(options)


def shard_event(samples: int, per_worker_batch: int, worker: Worker) -> None:
    """Say how much data this worker's shard holds (the report warns about tiny shards:
    a few batches repeated every epoch). Custom scripts that shard by hand may call it."""
    batch = max(1, int(per_worker_batch))
    event("shard", samples=int(samples), batch=batch, batches=int(samples) // batch,
          index=worker.index, workers=worker.count)


def compute_probe(model: Any, per_worker_batch: int, state: Dict[str, Any]) -> Optional[float]:
    """Seconds this host alone takes for a forward pass of one probe batch (zeros shaped like
    the model's input; no collectives).

    Why: under MultiWorkerMirroredStrategy every step ends in an all-reduce, so every host's
    wall-clock step time is the slowest host's; a straggler only shows in work timed
    without its peers. Timed over >= 0.25 s (and >= 2 passes), so a host that is stopped
    part of the time (throttling) is measured at its average speed.
    """
    try:
        if "input" not in state:
            import numpy as np

            shape = tuple(model.inputs[0].shape[1:])
            if any(d is None for d in shape):
                state["input"] = None
            else:
                dtype = getattr(model.inputs[0].dtype, "as_numpy_dtype", np.float32)
                state["input"] = np.zeros((min(per_worker_batch, 64),) + shape, dtype=dtype)
                model(state["input"], training=False)  # the first call builds; not timed
        probe = state["input"]
        if probe is None:
            return None
        calls, started = 0, time.perf_counter()
        while calls < 2 or (time.perf_counter() - started < 0.25 and calls < 200):
            model(probe, training=False)
            calls += 1
        return (time.perf_counter() - started) / calls
    except Exception:  # a model the probe cannot feed: no figure, never a failed job
        state["input"] = None
        return None


def make_optimizer(name: str, learning_rate: float) -> Any:
    import tensorflow as tf

    optimizers = {"sgd": tf.keras.optimizers.SGD, "adam": tf.keras.optimizers.Adam,
                  "rmsprop": tf.keras.optimizers.RMSprop}
    if name.lower() not in optimizers:
        raise SystemExit(f"job: optimizer={name!r}: expected one of {', '.join(sorted(optimizers))}")
    return half_precision_allreduce(optimizers[name.lower()](learning_rate=learning_rate))


def half_precision_allreduce(optimizer: Any) -> Any:
    """``PIFORGE_ALLREDUCE_DTYPE=float16`` (a profile's [job_env] may set it): gradients
    cross the network as float16, half the bytes, and are applied in float32 (Horovod's
    fp16 compression). Unset or float32: TF's own all-reduce. The hook is where each
    Keras sums gradients across workers: tf-keras's optimizer ``aggregate_gradients``
    (pairs in, pairs out), TF 2.2's OptimizerV2 ``_aggregate_gradients`` (pairs in,
    gradients out)."""
    text = os.environ.get("PIFORGE_ALLREDUCE_DTYPE", "").strip() or "float32"
    if text not in ("float16", "float32"):
        raise SystemExit(f"job: PIFORGE_ALLREDUCE_DTYPE={text!r}: expected float16 or float32")
    if text == "float32":
        return optimizer
    import tensorflow as tf

    def halves(pairs: List[Any]) -> List[Any]:
        return [(tf.cast(g, tf.float16) if g is not None and g.dtype == tf.float32 else g, v) for g, v in pairs]

    def back(summed: Any, grad: Any) -> Any:
        return tf.cast(summed, grad.dtype) if summed is not None and grad is not None and summed.dtype != grad.dtype \
            else summed

    if hasattr(optimizer, "aggregate_gradients"):
        pairs_to_pairs = optimizer.aggregate_gradients

        def aggregate_pairs(grads_and_vars: Any) -> Any:
            pairs = list(grads_and_vars)
            return [(back(s, g), v) for (s, _), (g, v) in zip(pairs_to_pairs(halves(pairs)), pairs)]

        optimizer.aggregate_gradients = aggregate_pairs
    elif hasattr(optimizer, "_aggregate_gradients"):
        pairs_to_grads = optimizer._aggregate_gradients

        def aggregate_grads(grads_and_vars: Any) -> Any:
            pairs = list(grads_and_vars)
            return [back(s, g) for s, (g, _) in zip(pairs_to_grads(halves(pairs)), pairs)]

        optimizer._aggregate_gradients = aggregate_grads
    else:
        raise SystemExit("job: PIFORGE_ALLREDUCE_DTYPE=float16: this Keras has no gradient aggregation hook")
    return optimizer


def history_callback(per_worker_batch: int, steps: int) -> Any:
    """A Keras callback printing one PIFORGE_EVENT per epoch with this host's timings."""
    import tensorflow as tf

    class EpochEvents(tf.keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch_start = 0.0
            self.first_step_seen = False
            self.probe_state: Dict[str, Any] = {}  # the probe batch, made once

        def on_train_begin(self, logs: Optional[Dict[str, Any]] = None) -> None:
            event("fit_start", since_start=round(time.time() - PROCESS_START, 3))

        def on_epoch_begin(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
            self.epoch_start = time.time()

        def on_train_batch_begin(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
            if not self.first_step_seen:
                mark("first_batch_begin")   # the iterator exists; tracing + step 1 follow

        def on_train_batch_end(self, batch: int, logs: Optional[Dict[str, Any]] = None) -> None:
            if not self.first_step_seen:
                self.first_step_seen = True
                event("first_step", since_start=round(time.time() - PROCESS_START, 3))

        def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
            seconds = time.time() - self.epoch_start
            logs = logs or {}
            accuracy = logs.get("accuracy", logs.get("acc"))
            probe = compute_probe(self.model, per_worker_batch, self.probe_state)
            event("epoch", epoch=epoch + 1, loss=float(logs.get("loss", float("nan"))),
                  accuracy=None if accuracy is None else float(accuracy),
                  seconds=round(seconds, 4), step_time=round(seconds / steps, 5),
                  samples_per_second=round(steps * per_worker_batch / seconds, 2),
                  compute_probe=None if probe is None else round(probe, 6),
                  peak_rss_mb=peak_rss_mb())

    return EpochEvents()


def test_accuracy(model: Any, x: Any, y: Any, preprocess: Callable[[Any, Any], Tuple[Any, Any]],
                  to_labels: Callable[[Any], Any], batch: int = 500) -> float:
    """Plain forward passes on the whole test set (no collectives: any worker may call it)."""
    import numpy as np
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y)).map(preprocess).batch(batch)
    correct = 0
    for images, labels in dataset:
        predicted = to_labels(model(images, training=False).numpy())
        correct += int(np.sum(predicted.reshape(-1) == labels.numpy().reshape(-1)))
    return correct / len(y)


def save_model(model: Any, worker: Worker, model_dir: str) -> None:
    """Every worker must save (saving runs collectives); only the chief keeps its copy."""
    target = model_dir if worker.is_chief else tempfile.mkdtemp(prefix="piforge-save-")
    try:
        model.save(target)
    finally:
        if not worker.is_chief:
            shutil.rmtree(target, ignore_errors=True)
    event("saved", path=target if worker.is_chief else None)


# -- checkpoints every epoch, so a restarted job resumes (elastic training) ----------------
# The launcher gives every worker a backup directory on its own host. The chief's copy is
# the real one (``<dir>/chief/``, TF's own layout); the launcher moves it to every host of
# the next attempt, so the hosts need no shared filesystem.
BACKUP_ENV = "PIFORGE_BACKUP_DIR"
EPOCH_MARK = "piforge-epoch.json"   # written by the chief after each complete backup


def backup_callback_class() -> Any:
    """Keras' BackupAndRestore (TF >= 2.3; `experimental` until 2.8), or None (TF 2.2)."""
    import tensorflow as tf

    found = getattr(tf.keras.callbacks, "BackupAndRestore", None)
    experimental = getattr(tf.keras.callbacks, "experimental", None)
    return found or getattr(experimental, "BackupAndRestore", None)


def resume_callbacks(model: Any, worker: Worker, directory: Optional[str] = None) -> Tuple[List[Any], int]:
    """Callbacks that back the training state up every epoch under ``directory`` (default
    $PIFORGE_BACKUP_DIR; unset: no backups), and the epoch ``fit(initial_epoch=)`` starts at.

    TF >= 2.3: Keras' BackupAndRestore, which restores and sets the epoch itself (so 0 is
    returned). TF 2.2 predates it: the jobkit saves weights and optimizer state itself."""
    directory = directory or os.environ.get(BACKUP_ENV)
    if not directory:
        return [], 0
    keras_backup = backup_callback_class()
    if keras_backup is not None:
        backup, initial_epoch = keras_backup(directory), 0
    else:
        backup = _tf22_resume(model, worker, directory)
        initial_epoch = backup.restore()
    return [backup, _epoch_mark(worker, directory)], initial_epoch


def _tf22_resume(model: Any, worker: Worker, directory: str) -> Any:
    """TF 2.2's stand-in for BackupAndRestore: a tf.train.Checkpoint of model and optimizer
    per epoch (``chief/ckpt-<epoch>``). Every worker saves (saving may sync variables across
    workers, as MultiWorkerMirroredStrategy requires); only the chief into the real place."""
    import tensorflow as tf

    class Tf22Resume(tf.keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.read_dir = os.path.join(directory, "chief")
            self.write_dir = self.read_dir if worker.is_chief else os.path.join(
                directory, f"workertemp_{worker.index}")
            self.checkpoint = tf.train.Checkpoint(model=model, optimizer=model.optimizer)
            self.manager = tf.train.CheckpointManager(self.checkpoint, self.write_dir, max_to_keep=1)

        def restore(self) -> int:
            latest = tf.train.latest_checkpoint(self.read_dir)
            if not latest:
                return 0
            with model.distribute_strategy.scope():
                # Slots made now are restored now, not deferred to the first step.
                model.optimizer._create_all_weights(model.trainable_variables)
                self.checkpoint.restore(latest).assert_existing_objects_matched()
            return int(latest.rsplit("-", 1)[1])

        def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
            self.manager.save(checkpoint_number=epoch + 1)

        def on_train_end(self, logs: Optional[Dict[str, Any]] = None) -> None:
            # Like BackupAndRestore: a finished fit leaves no backup behind.
            shutil.rmtree(self.write_dir, ignore_errors=True)

    return Tf22Resume()


def _epoch_mark(worker: Worker, directory: str) -> Any:
    """After the backup callback: the chief notes the epoch its backup holds (for the
    launcher, which cannot read a checkpoint), and every worker says where it resumed."""
    import tensorflow as tf

    class EpochMark(tf.keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.started = False

        def on_epoch_begin(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
            if not self.started:
                self.started = True
                event("resumed" if epoch else "fresh", epoch=epoch)

        def on_epoch_end(self, epoch: int, logs: Optional[Dict[str, Any]] = None) -> None:
            if not worker.is_chief:
                return
            mark = os.path.join(directory, EPOCH_MARK)
            with open(mark + ".part", "w") as handle:
                json.dump({"epoch": epoch + 1, "t": round(time.time(), 3)}, handle)
            os.replace(mark + ".part", mark)
            event("checkpoint", epoch=epoch + 1)

    return EpochMark()


def peak_rss_mb() -> float:
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)  # KiB on Linux


def prepare_first_step(model: Any, dataset: Any) -> bool:
    """Create, before ``fit``, the variables its first step would create: the optimizer's
    slots and the loss and metric totals. Why: a ``tf.function`` whose first trace creates
    variables is traced a second time, so ``fit``'s first step traced the whole train step
    twice (TF 2.21, 2 workers: 0.70 s of tracing instead of 0.35 s). Keras builds the same
    objects itself when they are missing, so this is best effort: a model or Keras it does
    not fit (no static output shape, other internals) just keeps the second trace.
    ``PIFORGE_PREPARE_FIRST_STEP=0`` turns it off (bench/train_scaling.py's "before")."""
    if os.environ.get("PIFORGE_PREPARE_FIRST_STEP", "1").strip() == "0":
        return False
    try:
        import tensorflow as tf

        outputs, (_, y_spec) = model.outputs, dataset.element_spec
        if len(outputs) != 1 or None in outputs[0].shape[1:] or None in y_spec.shape[1:]:
            return False
        y_pred = tf.zeros([1] + list(outputs[0].shape[1:]), outputs[0].dtype)
        y_true = tf.zeros([1] + list(y_spec.shape[1:]), y_spec.dtype)
        with model.distribute_strategy.scope():
            if hasattr(model.compiled_loss, "build"):      # tf-keras
                model.optimizer.build(model.trainable_variables)
                model.compiled_loss.build(y_pred)
                model.compiled_metrics.build(y_pred, y_true)
            else:                                           # TF 2.2's Keras
                model.optimizer._create_all_weights(model.trainable_variables)
                model.compiled_loss._build(y_pred)
                model.compiled_metrics._build(y_pred, y_true)
    except Exception:   # never a failed job: fit() builds whatever is still missing
        return False
    mark("first_step_prepared")
    return True


def fit_evaluate_save(model: Any, dataset: Any, params: Dict[str, Any], worker: Worker,
                      arrays: Dict[str, Any], preprocess: Callable[[Any, Any], Tuple[Any, Any]],
                      to_labels: Callable[[Any], Any]) -> None:
    """The end of every built-in job: fit with per-epoch backups and events, test, save, exit."""
    backups, initial_epoch = resume_callbacks(model, worker)
    prepare_first_step(model, dataset)
    model.fit(dataset, epochs=params["epochs"], steps_per_epoch=params["steps"], verbose=2,
              initial_epoch=initial_epoch,
              # the history first: its epoch time must not include the backup's save
              callbacks=[history_callback(params["batch"], params["steps"])] + backups)
    count = int(params.get("test_samples") or 0) or len(arrays["y_test"])
    accuracy = test_accuracy(model, arrays["x_test"][:count], arrays["y_test"][:count], preprocess, to_labels)
    finish(model, worker, accuracy, params["model_dir"])


def finish(model: Any, worker: Worker, accuracy: float, model_dir: str) -> None:
    save_model(model, worker, model_dir)
    if worker.is_chief:
        print(f"test_accuracy={accuracy:.4f}", flush=True)
    event("test", accuracy=accuracy, peak_rss_mb=peak_rss_mb())
    # fit() may linger for tf.data autotune shutdown; nothing is left to do.
    sys.stdout.flush()
    os._exit(0)
