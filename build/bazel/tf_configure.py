"""What TensorFlow's ``./configure`` asks, so a recipe can answer all of it up front.

configure.py reads each answer from the environment before prompting; one missing
answer means a prompt on a closed stdin, i.e. a hung or failed unattended build.
The list is read off TensorFlow v2.2.0's configure.py (``main()``, Linux, no CUDA):
setup_python, the TF_ENABLE_XLA default, set_action_env_var / get_var calls,
set_tf_download_clang, set_cc_opt_flags, the Android workspace question and the
iOS switch that is forced off on Linux but still read.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Tuple

# (variable, question as configure.py words it) in the order main() asks them.
TF_2_2_CONFIGURE_QUESTIONS: Tuple[Tuple[str, str], ...] = (
    ("PYTHON_BIN_PATH", "Please specify the location of python."),
    ("PYTHON_LIB_PATH", "Please input the desired Python library path to use."),
    ("TF_ENABLE_XLA", "(not asked: read with default 1, enables --config=xla)"),
    ("TF_NEED_OPENCL_SYCL", "Do you wish to build TensorFlow with OpenCL SYCL support?"),
    ("TF_NEED_ROCM", "Do you wish to build TensorFlow with ROCm support?"),
    ("TF_NEED_CUDA", "Do you wish to build TensorFlow with CUDA support?"),
    ("TF_DOWNLOAD_CLANG", "Do you wish to download a fresh release of clang? (Experimental)"),
    ("CC_OPT_FLAGS", "Please specify optimization flags to use during compilation when "
                     "bazel option \"--config=opt\" is specified"),
    ("TF_SET_ANDROID_WORKSPACE", "Would you like to interactively configure ./WORKSPACE for Android builds?"),
    ("TF_CONFIGURE_IOS", "(forced to 0 off macOS, then read by set_action_env_var)"),
)

# Answers that pull in toolchains a CPU-only Pi build must not have.
MUST_BE_OFF = ("TF_NEED_OPENCL_SYCL", "TF_NEED_ROCM", "TF_NEED_CUDA", "TF_DOWNLOAD_CLANG",
               "TF_SET_ANDROID_WORKSPACE", "TF_CONFIGURE_IOS")


def unanswered(env: Mapping[str, str]) -> List[str]:
    """The configure variables ``env`` leaves unset or empty (each would prompt)."""
    return [name for name, _ in TF_2_2_CONFIGURE_QUESTIONS if not str(env.get(name, "")).strip()]


def answers_that_enable_gpu_or_mobile(env: Mapping[str, str]) -> Dict[str, str]:
    return {name: env[name] for name in MUST_BE_OFF if str(env.get(name, "0")).strip().lower() not in ("0", "n", "no", "false", "f")}
