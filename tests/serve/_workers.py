"""Stand-ins for the upload worker (module level, so a spawned process can import them)."""
import os
import time

import numpy as np


def crash(path, attrs, feature_dim, device):
    os._exit(11)  # what a decoder segfault looks like to the pool


def hang(path, attrs, feature_dim, device):
    time.sleep(3600)


def fine(path, attrs, feature_dim, device):
    return np.ones((3, feature_dim), np.float32), np.zeros((3, 6), np.float32)
