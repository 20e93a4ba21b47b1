"""Evaluation harness: generation, WER/BLEU/COMET/SQuAD metrics, retrieval, reports. Built in issue 5."""
