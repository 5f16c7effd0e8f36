"""Stand-ins for the decode worker's prepare function. Their own module, importing nothing heavy: a
spawned decode worker imports it when it unpickles its first task, inside that task's time limit
(the test module would import av, torch and the extractor there: seconds on a loaded machine)."""
import os
import time


def sleepy(path, vid, recipe):
    if "hang" in vid:
        time.sleep(3600)  # hangs until the pool kills it
    return {"ok": vid}


def crashing(path, vid, recipe):
    if "crash" in vid:
        os._exit(139)  # what a segfaulting decoder looks like from outside
    return {"ok": vid}
