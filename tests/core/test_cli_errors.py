"""One error path for every command (core.errors): an expected failure ends a ``python -m`` entry point with one
``ERROR <prog>: ...`` line naming the file or setting, exit status 2 and no traceback; once per job (rank 0).

Each entry point gets a realistic expected failure, called in-process through its decorated ``main(argv)``; a few
real subprocesses prove the exit status and the whole stderr (a truncated shard for data.check, a two-rank
train.launch job, an unexpected error's traceback).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core.errors import UserError, describe, entry_point, is_expected, job_rank, user_errors
from tests.conftest import REPO, make_shard_set


@pytest.fixture(autouse=True)
def _single_process(monkeypatch):
    for var in ("RANK", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(var, raising=False)


def one_error_line(err: str, prog: str, *needles: str) -> str:
    """The single ERROR line of `err`, checked: from `prog`, naming every needle, no traceback anywhere."""
    errors = [line for line in err.splitlines() if "ERROR" in line]
    assert len(errors) == 1, err
    line = errors[0]
    assert line.startswith(f"ERROR {prog}: "), line
    assert all(n in line for n in needles), (needles, line)
    assert "Traceback" not in err, err
    return line


def expect_exit_2(capsys, main, argv: list[str], prog: str, *needles: str) -> str:
    assert main(argv) == 2
    return one_error_line(capsys.readouterr().err, prog, *needles)


def run(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "SLURM_PROCID", "SLURM_NTASKS")} | (env or {})
    return subprocess.run([sys.executable, *args], cwd=REPO, env={**env, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=timeout)


# ------------------------------------------------------------------------------------------------ core.errors


def test_expected_errors_keep_their_builtin_bases():
    from data.stream import DataQualityError, LoaderStateError
    from data.text_cache import CacheMismatchError
    from model.encoders import EncoderNotFoundError
    from model.llm import LLMNotFoundError
    from model.pretrained import MissingModelPackageError
    from train.checkpoint import NoIntactCheckpointError, ResumeError
    from train.config import ConfigError

    for cls, base in ((ConfigError, ValueError), (DataQualityError, RuntimeError), (LoaderStateError, ValueError),
                      (CacheMismatchError, ValueError), (EncoderNotFoundError, OSError), (LLMNotFoundError, OSError),
                      (MissingModelPackageError, ImportError), (ResumeError, ValueError),
                      (NoIntactCheckpointError, RuntimeError)):
        exc = cls("the message")
        assert isinstance(exc, base) and is_expected(exc) and str(exc) == "the message", cls
    assert ConfigError("unknown key", "data.x").key == "data.x"
    missing = FileNotFoundError(2, "No such file or directory", "/x.yaml")  # what open() raises
    assert is_expected(missing) and describe(missing) == "/x.yaml: No such file or directory"
    assert is_expected(FileExistsError("run_dir/checkpoints already holds checkpoints"))  # resume=never
    assert not is_expected(ValueError("a bug")) and not is_expected(KeyError("a bug"))
    assert str(UserError("cannot read it", where="a.yaml", fix="give another file")) == (
        "a.yaml: cannot read it; give another file")
    assert str(UserError("a.yaml cannot be read; give another file", where="a.yaml", fix="give another file")) == (
        "a.yaml cannot be read; give another file")


def test_user_errors_marks_builtins_only_inside_the_block():
    with pytest.raises(UserError, match="bad value") as info, user_errors(ValueError):
        raise ValueError("bad\n  value")
    assert isinstance(info.value.__cause__, ValueError) and describe(info.value) == "bad value"
    with pytest.raises(KeyError), user_errors(ValueError):
        raise KeyError("not listed")


def test_an_unexpected_error_keeps_its_traceback(capsys):
    @entry_point(prog="prog")
    def main(argv=None):
        raise KeyError("a bug")

    with pytest.raises(KeyError):
        main([])
    assert capsys.readouterr().err == ""
    code = ("import sys; from core.errors import entry_point\n"
            "@entry_point\ndef main(): return {}['missing']\nsys.exit(main())")
    proc = run("-c", code)
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "KeyError: 'missing'" in proc.stderr
    assert "ERROR" not in proc.stderr


def test_only_rank_0_prints_other_ranks_exit_2_silently(monkeypatch, capsys, tmp_path):
    from data.prepare import main

    argv = ["manifest", "--manifest", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "out")]
    monkeypatch.setenv("RANK", "1")
    assert main(argv) == 2
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    expect_exit_2(capsys, main, argv, "python -m data.prepare", "missing.jsonl")

    @entry_point(prog="prog")
    def rank_local(argv=None):  # one rank's own share of the data: that rank names it
        raise UserError("rank 3's shards are bad", rank_local=True)

    monkeypatch.setenv("RANK", "3")
    assert rank_local() == 2
    assert capsys.readouterr().err == "ERROR prog (rank 3): rank 3's shards are bad\n"
    assert job_rank({"SLURM_PROCID": "2", "SLURM_NTASKS": "4"}) == 2 and job_rank({"SLURM_PROCID": "2"}) == 0


# ------------------------------------------------------------------------------------- one test per entry point


def test_data_check_truncated_shard_subprocess(tmp_path):
    shards = make_shard_set(tmp_path / "set", 12, max_samples=6, max_s=1.0)
    tar = shards / "shard-000001.tar"
    tar.write_bytes(tar.read_bytes()[: tar.stat().st_size // 3])
    config = tmp_path / "data.yaml"
    config.write_text(f"sources:\n  - {{path: {shards}}}\nbatch_size: 2\nnum_workers: 0\n")
    proc = run("-m", "data.check", "--config", str(config), "--batches", "2")
    assert proc.returncode == 2, proc.stderr[-3000:]
    one_error_line(proc.stderr, "python -m data.check", "shard-000001.tar is truncated", "max_bad_fraction")
    assert proc.stdout == ""


def test_data_prepare_missing_manifest(capsys, tmp_path):
    from data.prepare import main

    expect_exit_2(capsys, main, ["manifest", "--manifest", str(tmp_path / "m.jsonl"), "--out", str(tmp_path / "o")],
                  "python -m data.prepare", f"manifest {tmp_path / 'm.jsonl'} not found")


def test_data_synth_output_dir_in_the_way(capsys, tmp_path):
    from data.synth.corpus import main

    (tmp_path / "keep.txt").write_text("x")
    expect_exit_2(capsys, main, ["--out", str(tmp_path), "--hours", "0.001", "--langs", "en", "--workers", "1"],
                  "python -m data.synth", str(tmp_path), "--overwrite")


def test_eval_plots_missing_run_dir(capsys, tmp_path):
    from eval.plots import main

    expect_exit_2(capsys, main, [str(tmp_path / "run")], "python -m eval.plots", "not a directory", str(tmp_path))


def test_eval_report_invalid_results_file(capsys, tmp_path):
    from eval.report import main

    (tmp_path / "results.json").write_text("{not json")
    expect_exit_2(capsys, main, [str(tmp_path)], "python -m eval.report", "results.json: not valid JSON")


def test_eval_run_missing_checkpoint(capsys, tmp_path):
    from eval.run import main

    expect_exit_2(capsys, main, [f"checkpoint={tmp_path / 'ckpt'}", f"test=[{{path: {tmp_path / 'test'}}}]"],
                  "python -m eval.run", f"checkpoint={tmp_path / 'ckpt'}: no projector.safetensors")


def test_eval_transcribe_missing_test_shards(capsys, tmp_path):
    from eval.transcribe import main

    expect_exit_2(capsys, main, ["--test", str(tmp_path / "test"), "--out", str(tmp_path / "t.jsonl")],
                  "python -m eval.transcribe", f"{tmp_path / 'test' / 'index.json'} not found", "data.prepare")


def test_model_kernels_aot_under_the_interpreter(capsys, monkeypatch):
    from model.kernels.aot import main

    monkeypatch.setenv("TRITON_INTERPRET", "1")
    expect_exit_2(capsys, main, [], "python -m model.kernels.aot", "TRITON_INTERPRET is set")


def test_model_pretrained_unknown_spec(capsys, tmp_path):
    from model.pretrained import main

    expect_exit_2(capsys, main, ["pypi:no-such-model", "--cache-dir", str(tmp_path)], "python -m model.pretrained",
                  "unknown model spec 'pypi:no-such-model'")


def test_model_tiny_bad_config_key(capsys, tmp_path):
    from model.tiny import main

    expect_exit_2(capsys, main, ["--out", str(tmp_path), "--text-file", str(tmp_path / "t.txt"), "llm_layerz=2"],
                  "python -m model.tiny", "'llm_layerz'", "did you mean 'llm_layers'")


def test_train_cache_encoder_missing_config_and_encoder(capsys, tmp_path):
    from train.cache_encoder import main

    expect_exit_2(capsys, main, ["--config", str(tmp_path / "none.yaml")], "python -m train.cache_encoder",
                  f"cannot read config file '{tmp_path / 'none.yaml'}'")
    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{sources: [{{path: {tmp_path}}}], encoder_cache: {tmp_path / 'cache'}}}\n"
                      f"encoder: {{name_or_path: {tmp_path / 'no-encoder'}}}\n")
    expect_exit_2(capsys, main, ["--config", str(config)], "python -m train.cache_encoder",
                  f"cannot load speech encoder '{tmp_path / 'no-encoder'}'", "encoder.name_or_path")


def test_train_cache_text_missing_setting_and_llm(capsys, tmp_path):
    from train.cache_text import main

    config = tmp_path / "c.yaml"
    config.write_text(f"data: {{sources: [{{path: {tmp_path}}}]}}\nllm: {{name_or_path: {tmp_path / 'no-llm'}}}\n")
    expect_exit_2(capsys, main, ["--config", str(config)], "python -m train.cache_text", "set data.text_cache=DIR")
    expect_exit_2(capsys, main, ["--config", str(config), f"data.text_cache={tmp_path / 'cache'}"],
                  "python -m train.cache_text", f"cannot load LLM '{tmp_path / 'no-llm'}' from local files")


def test_train_export_not_a_checkpoint(capsys, tmp_path):
    from train.export import main

    expect_exit_2(capsys, main, [str(tmp_path), str(tmp_path / "out")], "python -m train.export",
                  f"{tmp_path} holds no exported projector")
    assert not (tmp_path / "out").exists()


def test_train_finetune_missing_init_projector(capsys, tmp_path):
    from train.finetune import main

    expect_exit_2(capsys, main, [f"init_projector={tmp_path / 'proj'}"], "python -m train.finetune",
                  f"init_projector={tmp_path / 'proj'} holds no projector.json")


def test_train_pretrain_bad_config_key(capsys, tmp_path):
    from train.pretrain import main

    config = tmp_path / "c.yaml"
    config.write_text("optim: {lr: 1.0e-4}\n")
    expect_exit_2(capsys, main, ["--config", str(config), "optim.lrr=3e-4"], "python -m train.pretrain",
                  "'optim.lrr'", "did you mean 'optim.lr'")


def test_train_throughput_missing_recipe(capsys, tmp_path):
    from train.throughput import main

    expect_exit_2(capsys, main, ["--memory", "--config", str(tmp_path / "recipe.yaml")], "python -m train.throughput",
                  f"cannot read config file '{tmp_path / 'recipe.yaml'}'")


def test_train_launch_two_ranks_one_error_line_exit_2(tmp_path):
    """A two-rank job whose ranks all hit the same expected error: rank 0's one ERROR line, status 2 (not 1)."""
    proc = run("-m", "train.launch", "--standalone", "--nproc-per-node", "2", "-m", "eval.plots",
               str(tmp_path / "no-run"), timeout=180)
    assert proc.returncode == 2, proc.stderr[-3000:]
    one_error_line(proc.stderr, "python -m eval.plots", "not a directory", str(tmp_path / "no-run"))
