# Inference-time sweeps of video-model settings (Ω stages, warm-up frames n), and model
# cost tables. Filled in by the phase-aware cine work (issue 4).


def sweep_targets():
    return []
