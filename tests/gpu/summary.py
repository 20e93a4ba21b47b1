"""The GPU check's report: markdown sections for BENCHMARKS.md and the summary printed at the end, both made from
the JSON lines the stages append (tests/gpu/check.py), so that whatever a cut-off run recorded is reported.

Standard library only: the driver renders these before and after the wheels are installed.
"""

from __future__ import annotations

__all__ = ["sections", "text", "stage_figures"]

GOALS = {"loop_over_kernel": 100.0, "batched_over_kernel": 10.0}
"""Goals of the kernel issue on a GPU (D=4096): reported as met or not, never asserted."""


def _of(rows: list[dict], stage: str, event: str) -> list[dict]:
    return [r for r in rows if r.get("stage") == stage and r.get("event") == event]


def _fmt(x, digits: int = 2) -> str:
    if x is None:
        return "-"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def stage_figures(rows: list[dict], stage: str) -> str:
    """One line of the key figures of `stage`."""
    if stage == "install":
        f = (_of(rows, "install", "figures") or [{}])[-1]
        if not f:
            return "-"
        if f.get("skipped"):
            return f"skipped: {f['skipped']}"
        return f"{f.get('wheels', '?')} wheels, {_fmt(f.get('mb'), 1)} MB into {f.get('site', '?')}" + (
            " (already there)" if f.get("already") else "")
    if stage == "smoke":
        f = (_of(rows, "smoke", "figures") or [None])[-1]
        if not f:
            return "-"
        return (f"{f['device']}, torch {f['torch']}, CUDA {f['cuda']}; tiny bf16 step: loss {f['loss']}, "
                f"{f['seconds']} s")
    if stage == "tests":
        tests = _of(rows, "tests", "test")
        counts = {k: sum(t["outcome"] == k for t in tests) for k in ("passed", "failed", "skipped")}
        failed = [t["test"].split("::")[-1] for t in tests if t["outcome"] == "failed"]
        return ", ".join(f"{v} {k}" for k, v in counts.items()) + (f" ({', '.join(failed)})" if failed else "")
    if stage == "sinkhorn":
        parts = []
        for r in _of(rows, "sinkhorn", "row"):
            if r.get("kernel_ms") is None:
                parts.append(f"D={r['d']}: loop / ours {_fmt(r['loop_over_ours'], 1)}x (no kernel on {r['device']})")
            else:
                parts.append(f"D={r['d']}: loop / kernel {_fmt(r['loop_over_kernel'], 0)}x (goal >= 100x), "
                             f"batched / kernel {_fmt(r['batched_over_kernel'], 1)}x (goal >= 10x)")
        return "; ".join(parts) or "-"
    if stage == "throughput":
        setup = (_of(rows, "throughput", "setup") or [{}])[-1]
        predicted = (setup.get("memory_model") or {}).get("peak_gb")
        parts = [f"{v['packing']}: {v['step_s']} s/step, {v['audio_h_per_gpu_h']} audio h per GPU-h, MFU "
                 f"{_fmt(v['mfu'], 3)}, peak {_fmt(v.get('peak_allocated_gb'), 1)} GB"
                 for v in _of(rows, "throughput", "variant")]
        return "; ".join(parts) + (f" (memory model: {predicted} GB)" if predicted is not None and parts else "") or "-"
    return "-"


def _stages(rows: list[dict]) -> list[dict]:
    """Each stage that left a record, in order, with its end record (or "running" while it runs / if cut off)."""
    names = list(dict.fromkeys(r["stage"] for r in rows if "stage" in r))
    ends = {r["stage"]: r for r in rows if r.get("event") == "end"}
    return [ends.get(name, {"stage": name, "status": "running", "seconds": None, "limit": None}) for name in names]


def _summary_body(rows: list[dict]) -> str:
    stages = _stages(rows)
    device = (_of(rows, "smoke", "figures") or [{}])[-1].get("device", "?")
    spent = sum(r.get("seconds") or 0 for r in stages)
    lines = [f"Device: {device}. {len(stages)} stages, {spent:.0f} s (each in its own process with its own time "
             "limit; figures are written as each stage produces them, so a run cut off still reports).", "",
             "| stage | status | seconds (limit) | figures |", "|---|---|---|---|"]
    for r in stages:
        lines.append(f"| {r['stage']} | {r['status']} | {_fmt(r.get('seconds'), 1)} ({r.get('limit')}) | "
                     f"{stage_figures(rows, r['stage'])} |")
    return "\n".join(lines)


def _tests_body(rows: list[dict]) -> str:
    lines = ["`pytest -m gpu tests/gpu`: compiled Triton kernels against the torch references, a bf16 pretraining "
             "step, SDPA's flash path, a one-rank NCCL DeepSpeed engine with checkpoint save/load. Figures are the "
             "tests' recorded properties (max relative errors, selected kernels).", "",
             "| test | outcome | s | figures |", "|---|---|---|---|"]
    for t in _of(rows, "tests", "test"):
        props = ", ".join(f"{k}={v}" for k, v in (t.get("properties") or {}).items())
        lines.append(f"| {t['test'].split('::', 1)[-1]} | {t['outcome']} | {_fmt(t.get('seconds'), 1)} | {props} |")
    return "\n".join(lines)


def _throughput_body(rows: list[dict]) -> str:
    s = (_of(rows, "throughput", "setup") or [{}])[-1]
    mem = s.get("memory_model") or {}
    predicted = mem.get("peak_gb")
    lines = [f"{s.get('stack')} on {s.get('device')}: micro-batch {s.get('batch')} of {s.get('seconds')} s synthetic "
             f"audio, {s.get('dtype')}, DeepSpeed ZeRO-{s.get('zero_stage')} over {s.get('backend')} (one rank), "
             f"cosine InfoNCE over layers {s.get('layers')}, text states from the text cache (random). Parameters "
             f"(M): {s.get('params_m')}. Model GFLOP per audio second (train.throughput, text cache): "
             f"{s.get('model_gflop_per_audio_s')}. Peak used for MFU: {s.get('peak_tflops')} TFLOP/s (dense bf16). "
             f"Activation checkpointing: {s.get('activation_checkpointing')}. Build {s.get('build_s')} s, engine "
             f"{s.get('engine_s')} s, weights {s.get('weights_allocated_gb')} GB. Device used = total - free "
             "after the variant (adds the CUDA context and NCCL buffers the allocator does not see).",
             "", f"Memory model: {mem.get('source', '-')}: "
             + (f"{predicted} GB, terms {mem.get('terms_gb')}" if predicted is not None else
                f"no prediction ({mem.get('reason', 'not run')})"), "",
             "| packing | step s (median) | audio h per GPU-h | model TFLOP per step | achieved TFLOP/s | MFU | "
             "peak allocated GB | peak reserved GB | device used GB | memory model GB | loss first -> last |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for v in _of(rows, "throughput", "variant"):
        lines.append(f"| {v['packing']} | {v['step_s']} | {v['audio_h_per_gpu_h']} | {v['model_tflop_per_step']} | "
                     f"{v['achieved_tflops']} | {_fmt(v['mfu'], 3)} | {_fmt(v.get('peak_allocated_gb'))} | "
                     f"{_fmt(v.get('peak_reserved_gb'))} | {_fmt(v.get('device_used_gb'))} | {_fmt(predicted)} | "
                     f"{v['loss_first']} -> {v['loss_last']} |")
    return "\n".join(lines)


def sections(rows: list[dict]) -> list[tuple[str, str, str]]:
    """``(name, title, body)`` of each section the records can fill."""
    out = [("gpu_check", "GPU check: stages and summary", _summary_body(rows))]
    if _of(rows, "tests", "test"):
        out.append(("gpu_tests", "GPU check: kernels, bf16 step, flash attention, NCCL engine", _tests_body(rows)))
    if _of(rows, "throughput", "setup"):
        out.append(("gpu_throughput", "GPU check: paper-size pretraining throughput and memory",
                    _throughput_body(rows)))
    return out


def text(rows: list[dict], elapsed: float, budget: float) -> str:
    """The summary printed at the end of the check."""
    lines = [f"gpu check summary ({elapsed:.0f} s of a {budget:.0f} s budget):"]
    for r in _stages(rows):
        lines.append(f"  {r['stage']:<11} {r['status']:<8} {_fmt(r.get('seconds'), 1):>6} s  "
                     f"{stage_figures(rows, r['stage'])}")
    return "\n".join(lines)
