"""Shared plumbing for the three stages: Keras set-up, config files, file I/O, runners.

Importing this package (every stage package does so first) selects legacy Keras
(tf-keras) for TensorFlow Recommenders. This is the one place that sets it: the
variable must be in the environment before TensorFlow is first imported, and
TensorFlow reads it only once.
"""
import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
