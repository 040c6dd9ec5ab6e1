# Arbitrary-scale evaluation (one model, every scale 1.1..4.0). Filled in by the
# Meta-SRGAN work (issue 6).


def scale_sweep_targets():
    return []
