"""Structured channel pruning with recovery, gated by measured quality (``ttsopt prune``).

The stages, one module each: :mod:`.ratios` (what the user asked for), :mod:`.graph` (torch-pruning's
dependency graph removes the channels, ties included), :mod:`.importance` (magnitude vs Taylor, chosen by
measurement), :mod:`.refit` (least squares, layer by layer, no training), :mod:`.distill` (optional SGD
against the original), :mod:`.losses` (torch spectral losses), :mod:`.quality` (the pruned model against the
original on held-out speech, and the gates). What a family must say about its model is
:class:`.graph.PruneScope` and a conv-step walker (:data:`.refit.ConvSteps`).
"""
