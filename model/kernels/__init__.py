"""Fused kernels for the contrastive losses, with plain-torch fallbacks (see `model.kernels.dispatch`)."""
