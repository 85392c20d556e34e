"""piforge: a declarative, content-addressed build and cluster tool for TensorFlow on Raspberry Pi."""

__version__ = "0.1.0"
