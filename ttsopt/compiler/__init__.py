"""The build side of ttsopt (needs torch): load checkpoints, fold, export, produce golden outputs."""
