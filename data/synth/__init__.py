"""The synthetic multilingual speech corpus (ASR / ST / SQA) made with espeak-ng: ``python -m data.synth``.

    python -m data.synth --out DIR --hours 1 --langs en,ru,de --seed 0 [--st-hours 0.5 --sqa-hours 0.5]

Layout written under ``DIR``::

    asr-<lang>/manifest.jsonl, asr-<lang>/audio/asr-<lang>-0000000.flac, ...
    st/manifest.jsonl      English speech of ``text.st_example()["en"]`` + ``translations``
    sqa/manifest.jsonl     one line per question; the lines of a passage share one FLAC file
    synth.json             config, counts, hours, wall time, voices used

Determinism: utterance ``i`` of task ``t`` is planned from ``random.Random`` seeded by
``SeedSequence([seed, task_id(t), i, 0])`` and its augmentation noise comes from
``default_rng([seed, task_id(t), i, 1])``; nothing depends on other utterances, so the output
is the same for any worker count. Utterances are kept in index order until the cumulative
duration first reaches the task's target; results computed ahead in parallel are discarded.

Modules (only the generator uses them; the shard pipeline reads its manifests like any other corpus's):
    config: ``SynthConfig``, the settings of one run, validated.
    tasks: the ASR / ST / SQA tasks: what each utterance says and how it is voiced, its manifest lines.
    speech: espeak-ng voices and the rendering of one utterance to FLAC.
    augment: additive noise at an exact SNR, synthetic reverb, resampling, 16-bit conversion.
    corpus: the corpus writer (``synthesize``) and the command line (``main``).
    text: offline template grammars and lexicons (stdlib only) that write the sentences.

This file imports nothing, so ``data.synth.text`` stays free of the audio dependencies.
"""
