"""GPT-SoVITS v4 (48 kHz): the SoVITS text/latent part, the CFM/DiT mel generator and the v4 vocoder.

v4 replaces v2's flow + HiFi-GAN decoder by a conditional flow-matching model (a DiT estimator integrated with
Euler steps) that writes a 100-bin log-mel spectrogram, and a separate 48 kHz HiFi-GAN-style vocoder. Users
train LoRA files (header tag ``04``) that are merged into the released base ``s2Gv4.pth`` at export.

Modules: :mod:`.model` (text/latent part), :mod:`.dit` (the estimator and the reference Euler loop),
:mod:`.vocoder`, :mod:`.checkpoint` (files, version detection, LoRA merge), :mod:`.graphs` (export cuts).
Written from the fact sheet ``gpt-sovits-pro-v4.md`` §5–6, not from the official source.
"""
