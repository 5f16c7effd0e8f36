"""Stand-ins for the upload worker (module level, so a spawned process can import them)."""
import os
import time

import numpy as np


def crash(path, attrs, feature_dim, device, max_mpix):
    os._exit(11)  # what a decoder segfault looks like to the pool


def hang(path, attrs, feature_dim, device, max_mpix):
    time.sleep(3600)


def fine(path, attrs, feature_dim, device, max_mpix):
    return np.ones((3, feature_dim), np.float32), np.zeros((3, 6), np.float32), None


def slow_then_fine(path, attrs, feature_dim, device, max_mpix):
    """Sleeps as long as the file's text says (seconds), then answers."""
    time.sleep(float(open(path).read()))
    return fine(path, attrs, feature_dim, device, max_mpix)
