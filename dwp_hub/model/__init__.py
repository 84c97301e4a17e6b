"""Models: the kernel VAE, the loaded prior, and the paper's networks."""
