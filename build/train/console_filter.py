"""Which worker output lines are TensorFlow's start-up noise, kept off the live console.

Every worker prints the same C++ banners when TensorFlow loads (oneDNN, absl's log
initialisation, CPU-feature notices, XLA's host platform, CUDA libraries not found on a
CPU-only Pi): on a cluster the console would be mostly those. The supervisor still writes
every line to the host's log file in the run record; only the live echo is filtered.
A line is noise if its message (after TensorFlow's C++ log prefix, in either the TF 2.2
or the absl format of current TF) matches one of the patterns below: known banners only,
so an unknown warning or error always reaches the console.
"""
from __future__ import annotations

import re
from typing import List, Pattern

# "2026-12-02 15:34:53.109176: I tensorflow/core/platform/cpu_feature_guard.cc:143] msg" (TF 2.2)
# "I0000 00:00:1796225686.488420   26974 port.cc:153] msg" (absl, current TF)
_CPP_PREFIX = re.compile(
    r"^(?:\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+:\d+\]"
    r"|[IWEF]\d{4} \d\d:\d\d:[\d.]+\s+\d+ \S+:\d+\]) ?")

_NOISE: List[Pattern[str]] = [re.compile(p) for p in (
    # absl's first line before logging is set up
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$",
    # oneDNN and CPU-feature banners (and their second lines, printed without a prefix)
    r"^oneDNN custom operations are on\.",
    r"^This TensorFlow binary is optimized ",
    r"^Your CPU supports instructions that this TensorFlow binary was not compiled to use",
    r"^To enable (?:the following instructions: .*, in other operations|them in other operations), "
    r"rebuild TensorFlow with the appropriate compiler flags\.$",
    r"^CPU Frequency: \d+ Hz$",
    # XLA's host platform
    r"^XLA service 0x[0-9a-f]+ initialized for platform ",
    r"^\s*StreamExecutor device \(\d+\): ",
    # no GPU / CUDA / TensorRT on this machine
    r"^Could not load dynamic library 'lib(?:cud|nvinfer|cublas|cufft|curand|cusolver|cusparse)",
    r"^Ignore above cudart dlerror if you do not have a GPU set up on your machine\.$",
    r"^Could not find cuda drivers on your machine, GPU will not be used\.$",
    r"^failed call to cuInit: ",
    r"^kernel driver does not appear to be running on this host ",
    r"^retrieving CUDA diagnostic information for host: ",
    r"^hostname: \S+$",
    r"^Unable to register cu(?:DNN|FFT|BLAS) factory: ",
    r"^(?:TF-TRT Warning: )?Could not find TensorRT$",
    r"^Cannot dlopen some GPU libraries\.",
    r"^Skipping registering GPU devices\.\.\.$",
    # TF_CPP_* and oneDNN environment hints
    r"^To turn them off, set the environment variable `TF_ENABLE_ONEDNN_OPTS=0`\.$",
)]


def message_of(line: str) -> str:
    """The message of a TensorFlow C++ log line (the line itself if it has no such prefix)."""
    return _CPP_PREFIX.sub("", line, count=1)


def is_startup_noise(line: str) -> bool:
    """True for TensorFlow's start-up banners, which the live console leaves out."""
    message = message_of(line.rstrip("\n"))
    return any(pattern.search(message) for pattern in _NOISE)
