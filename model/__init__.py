"""Frozen speech encoders, trainable projectors, the frozen LLM with multi-layer hidden states, and the alignment
losses. Knows nothing of DeepSpeed, launchers or Slurm; `distributed.py` is the one place that touches
torch.distributed (the cross-rank gather of contrastive negatives)."""
