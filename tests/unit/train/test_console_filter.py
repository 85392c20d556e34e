"""TensorFlow's start-up banners stay off the live console; training output does not."""
from __future__ import annotations

import pytest

from build.train.console_filter import is_startup_noise

# Printed by `import tensorflow` + a MultiWorkerMirroredStrategy in the deployed local venvs
# (tensorflow-cpu 2.2.0 on Python 3.8, tensorflow-cpu 2.21.0 on Python 3.11), verbatim.
TF22_BANNERS = [
    "2026-12-02 15:34:53.109176: I tensorflow/core/platform/cpu_feature_guard.cc:143] Your CPU supports "
    "instructions that this TensorFlow binary was not compiled to use: AVX2 AVX512F FMA",
    "2026-12-02 15:34:53.124366: I tensorflow/core/platform/profile_utils/cpu_utils.cc:102] CPU Frequency: "
    "2596130000 Hz",
    "2026-12-02 15:34:53.124759: I tensorflow/compiler/xla/service/service.cc:168] XLA service 0x563d1d0b01e0 "
    "initialized for platform Host (this does not guarantee that XLA will be used). Devices:",
    "2026-12-02 15:34:53.124896: I tensorflow/compiler/xla/service/service.cc:176]   StreamExecutor device (0): "
    "Host, Default Version",
]
TF221_BANNERS = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1796225686.488420   26974 port.cc:153] oneDNN custom operations are on. You may see slightly "
    "different numerical results due to floating-point round-off errors from different computation orders. "
    "To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`.",
    "I0000 00:00:1796225686.674178   26974 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
    "available CPU instructions in performance-critical operations.",
    "To enable the following instructions: AVX2 AVX512F AVX512_VNNI AVX512_BF16 FMA, in other operations, "
    "rebuild TensorFlow with the appropriate compiler flags.",
]
# The GPU-less messages of the full `tensorflow` packages (TF 2.2's stream_executor, current
# TF's local_tsl / local_xla), as TensorFlow's sources spell them.
CUDA_BANNERS = [
    "2026-12-02 15:34:52.000001: W tensorflow/stream_executor/platform/default/dso_loader.cc:55] Could not load "
    "dynamic library 'libcudart.so.10.1'; dlerror: libcudart.so.10.1: cannot open shared object file",
    "2026-12-02 15:34:52.000002: I tensorflow/stream_executor/cuda/cudart_stub.cc:29] Ignore above cudart dlerror "
    "if you do not have a GPU set up on your machine.",
    "2026-12-02 15:34:52.000003: E tensorflow/stream_executor/cuda/cuda_driver.cc:313] failed call to cuInit: "
    "UNKNOWN ERROR (303)",
    "I0000 00:00:1796225686.000004   26974 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will "
    "not be used.",
    "E0000 00:00:1796225686.000005   26974 cuda_dnn.cc:8310] Unable to register cuDNN factory: Attempting to "
    "register factory for plugin cuDNN when one has already been registered",
    "W0000 00:00:1796225686.000006   26974 py_utils.cc:38] TF-TRT Warning: Could not find TensorRT",
]
KEPT = [
    "Epoch 3/3",
    "40/40 [==============================] - 5s 120ms/step - loss: 0.4567 - accuracy: 0.8400",
    "test_accuracy=0.8412",
    "I0000 00:00:1796225689.670924   26974 grpc_server_lib.cc:467] Started server with target: grpc://127.0.0.1:23456",
    "2026-12-02 15:34:53.734279: W tensorflow/core/common_runtime/eager/context.cc:447] Unable to destroy server_ "
    "object, so releasing instead. Servers don't support clean shutdown.",
    "E0000 00:00:1796225690.000000   26974 collective_ops.cc:1] Collective ops is aborted by: failed to connect",
    "Traceback (most recent call last):",
    "ImportError: libcudart.so.10.1: cannot open shared object file",
    "job: bad argument 'epoch=3'",
]


@pytest.mark.parametrize("line", TF22_BANNERS + TF221_BANNERS + CUDA_BANNERS)
def test_startup_banners_are_noise(line: str) -> None:
    assert is_startup_noise(line)


@pytest.mark.parametrize("line", KEPT)
def test_training_and_errors_reach_the_console(line: str) -> None:
    assert not is_startup_noise(line)
