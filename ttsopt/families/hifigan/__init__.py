"""HiFi-GAN V1/V2/V3 generators (jik876 checkpoints): a neural vocoder, mel → waveform."""
