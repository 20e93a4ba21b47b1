"""Frozen speech encoders, trainable projectors, the frozen LLM with multi-layer hidden states, and the alignment
losses. Knows nothing of DeepSpeed, launchers or Slurm (see ../README.md, "Layout"). Built in issue 3."""
