"""``advise profile`` on the CPU: real child processes, real tiny models, real peft and bitsandbytes.

Budget: child processes are forked from one forkserver that imports torch once (~5 s), then cost about a
second each; one test starts fresh interpreters (the CUDA path's ``spawn``) and pays the imports twice. Two
module-scoped runs (llama through the API, qwen2 through the CLI) are shared by most assertions.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from advisor.cli import main
from advisor.contract.errors import AdviseError
from estimators.activations import trace_activations
from estimators.catalog import Catalog
from estimators.families import tiny_config
from estimators.memory import model_states
from profiler.run import (
    ProfileRequest,
    linear_in_depth,
    run_profile,
    search_max_batch,
    truncated_config,
)
from profiler.schema import load_profile, measured_entry, profile_json

pytestmark = pytest.mark.slow  # real child processes with torch (~20 s)

METHODS = ("full", "lora", "qlora")
SEQ, BATCH, STEPS, WARMUP = 32, 2, 2, 1
LLAMA = {**tiny_config("llama"), "num_hidden_layers": 4}  # 4 layers: extrapolate from 1 and 2
#: wide vocabulary: the logits dominate, so the allocation that fails under a memory limit is a large tensor
BIG_VOCAB = {**tiny_config("llama"), "vocab_size": 8192}


def _model_dir(root: Path, cfg: dict) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(json.dumps(cfg))
    return root


def _request(model_dir: Path, out: Path, **kw) -> ProfileRequest:
    fields = {"methods": METHODS, "seq_lens": (SEQ,), "micro_batches": (BATCH,), "device": "cpu", "steps": STEPS,
              "warmup_steps": WARMUP, **kw}
    return ProfileRequest(model=Catalog.load().resolve_model(str(model_dir)), out=out, **fields)


@pytest.fixture(scope="module")
def llama_run(tmp_path_factory):
    """llama through full, LoRA and QLoRA; a copy of the file is taken at every finished measurement."""
    root = tmp_path_factory.mktemp("llama")
    model_dir = _model_dir(root / "model", LLAMA)
    out = root / "profile.json"
    events, snapshots = [], []

    def progress(ev):
        events.append(ev)
        if ev.kind == "done":
            snapshots.append(out.read_text())

    req = _request(model_dir, out)
    profile = run_profile(req, progress)
    return SimpleNamespace(model_dir=model_dir, out=out, req=req, profile=profile, events=events, snapshots=snapshots)


@pytest.fixture(scope="module")
def qwen_cli_run(tmp_path_factory):
    """qwen2 through the three methods with the command line, as a user runs it."""
    root = tmp_path_factory.mktemp("qwen2")
    model_dir = _model_dir(root / "model", tiny_config("qwen2"))
    out = root / "profile.json"
    result = CliRunner().invoke(main, ["profile", "--model", str(model_dir), "--device", "cpu", "--methods",
                                       ",".join(METHODS), "--seq-len", str(SEQ), "--batch-size", str(BATCH),
                                       "--steps", str(STEPS), "--warmup", str(WARMUP), "--out", str(out)])
    return SimpleNamespace(model_dir=model_dir, out=out, result=result)


# ---- two families, three methods ----------------------------------------------------------------
def test_two_families_through_full_lora_and_qlora(llama_run, qwen_cli_run):
    assert qwen_cli_run.result.exit_code == 0, qwen_cli_run.result.output
    for out, cfg in ((llama_run.out, LLAMA), (qwen_cli_run.out, tiny_config("qwen2"))):
        profile = load_profile(out)
        assert profile.device.kind == "cpu" and any("CPU" in n for n in profile.notes)
        assert profile.model.num_layers == cfg["num_hidden_layers"]
        assert [(e.technique, e.source, e.layers) for e in profile.entries] == [
            (m, "measured", cfg["num_hidden_layers"]) for m in METHODS]
        anatomy = Catalog.load().resolve_model(str(out.parent / "model")).anatomy
        for e in profile.entries:
            assert (e.status, e.fits, e.oom, e.error) == ("ok", True, None, None), e
            assert e.tokens_per_step == SEQ * BATCH and e.tokens_per_s > 0 and e.step_time_s > 0
            assert e.step_time_min_s <= e.step_time_s <= e.step_time_max_s
            assert e.achieved_tflops > 0 and e.mfu is None  # no MFU on a CPU
            assert e.peak_allocated_bytes is None and e.device_peak_bytes > e.device_baseline_bytes > 0
            assert "RSS" in e.device_peak_source
            # the profiler builds the setup the plan estimates: model states equal the estimator's to the byte
            setup = llama_run.req.setup(e.technique, SEQ, BATCH)
            est = model_states(anatomy, setup)
            assert e.state.frozen_weights_bytes + e.state.trainable_weights_bytes == \
                est.weights_bytes + est.trainable_weights_bytes
            assert (e.state.gradients_bytes, e.state.optimizer_bytes, e.state.quant_constants_bytes) == \
                (est.gradients_bytes, est.optimizer_bytes, est.quant_constants_bytes)
            assert e.trainable_params == est.trainable_params
            # and what autograd saves is the traced activations (the estimator's 5% contract)
            traced = trace_activations(anatomy, setup, device="cpu").total_bytes
            assert abs(e.saved_for_backward_bytes - traced) <= 0.05 * traced
        by = {e.technique: e for e in profile.entries}
        assert by["qlora"].state.quant_constants_bytes > 0
        assert by["qlora"].state.frozen_weights_bytes < by["lora"].state.frozen_weights_bytes  # NF4
        assert by["lora"].trainable_params < by["full"].trainable_params


#: the families added for current models (MoE, Gemma 3 with its vision tower, gpt-oss): every one through the three
#: methods, each measurement's model states equal to the estimator's and its saved tensors within the 5% contract
NEW_FAMILIES = ("qwen3", "qwen3_moe", "mixtral", "gemma3_text", "gemma3", "gpt_oss")


@pytest.mark.slow
@pytest.mark.parametrize("fam", NEW_FAMILIES)
def test_tiny_models_of_the_new_families_profile_like_the_estimate(tmp_path, fam):
    model_dir = _model_dir(tmp_path / "model", tiny_config(fam))
    req = _request(model_dir, tmp_path / "profile.json", steps=1, warmup_steps=0)
    profile = run_profile(req, lambda ev: None)
    anatomy = req.model.anatomy
    assert [(e.technique, e.status) for e in profile.entries] == [(m, "ok") for m in METHODS], profile.entries
    for e in profile.entries:
        setup = req.setup(e.technique, SEQ, BATCH)
        est = model_states(anatomy, setup)
        assert e.state.frozen_weights_bytes + e.state.trainable_weights_bytes == \
            est.weights_bytes + est.trainable_weights_bytes, e.technique
        assert (e.state.gradients_bytes, e.state.optimizer_bytes, e.state.quant_constants_bytes) == \
            (est.gradients_bytes, est.optimizer_bytes, est.quant_constants_bytes), e.technique
        assert e.trainable_params == est.trainable_params
        traced = trace_activations(anatomy, setup, device="cpu").total_bytes
        assert abs(e.saved_for_backward_bytes - traced) <= 0.05 * traced, e.technique


def test_cli_prints_progress_for_every_step_and_a_table(qwen_cli_run):
    out = qwen_cli_run.result.output
    for m in METHODS:
        assert f"[{METHODS.index(m) + 1}/3] {m} seq {SEQ} x batch {BATCH}: timed step {STEPS}/{STEPS}" in out
        assert f"[{METHODS.index(m) + 1}/3] {m} seq {SEQ} x batch {BATCH}: warm-up step 1/1" in out
    assert "ETA" in out and "run ETA" in out
    assert "peak RSS" in out and "on CPU" in out and "indicative only" in out
    assert f"profile written to {qwen_cli_run.out}" in out


# ---- files: atomic after each measurement, resume -----------------------------------------------
def test_the_file_is_a_valid_profile_after_every_measurement(llama_run, tmp_path):
    assert len(llama_run.snapshots) == len(METHODS)
    for i, text in enumerate(llama_run.snapshots):
        snap = tmp_path / f"snap{i}.json"
        snap.write_text(text)
        assert [e.technique for e in load_profile(snap).entries] == list(METHODS[: i + 1])
    assert not [p for p in llama_run.out.parent.iterdir() if p.name.endswith(".tmp")]  # no temporary left
    # deterministic serialisation: reading and writing back gives the same bytes
    assert profile_json(load_profile(llama_run.out)) == llama_run.out.read_text()


def test_a_rerun_measures_nothing_already_measured(llama_run):
    before = llama_run.out.read_text()
    events = []
    run_profile(llama_run.req, events.append)
    assert [e.kind for e in events] == ["skip"] * len(METHODS)
    assert llama_run.out.read_text() == before


def test_a_crashed_child_is_recorded_the_others_go_on_and_a_rerun_retries_it(tmp_path):
    model_dir = _model_dir(tmp_path / "model", LLAMA)
    req = _request(model_dir, tmp_path / "p.json", methods=("lora", "full"), micro_batches=(1,), steps=3)
    pids = {}

    def kill_lora(ev):  # a hard crash (as a segfault or the kernel's OOM killer would do) of the first child
        if ev.kind == "build":
            pids[ev.label] = ev.pid
        if ev.kind == "step" and ev.label.startswith("lora") and ev.phase == "warmup":
            os.kill(pids[ev.label], signal.SIGKILL)

    profile = run_profile(req, kill_lora)
    by = {e.technique: e for e in profile.entries}
    assert by["lora"].status == "error" and by["lora"].fits is None and "SIGKILL" in by["lora"].error
    assert by["full"].status == "ok"
    assert measured_entry(profile, str(model_dir), "lora", SEQ, 1) is None  # failures are not figures
    events = []
    again = run_profile(req, events.append)
    assert [(e.kind, e.label.split()[0]) for e in events if e.kind in ("skip", "done")] == [("done", "lora"),
                                                                                          ("skip", "full")]
    assert all(e.status == "ok" for e in again.entries)


def test_a_file_of_another_model_is_refused(llama_run, qwen_cli_run):
    r = CliRunner().invoke(main, ["profile", "--model", str(qwen_cli_run.model_dir), "--device", "cpu",
                                  "--out", str(llama_run.out)])
    assert r.exit_code == 2 and "holds a profile of" in r.output and "choose another --out" in r.output
    assert "Traceback" not in r.output


# ---- out of memory, largest micro-batch ---------------------------------------------------------
def test_out_of_memory_is_a_result_in_a_fresh_interpreter(tmp_path):
    """The CUDA path's start method (spawn: a fresh interpreter per child), here with a CPU memory limit."""
    model_dir = _model_dir(tmp_path / "model", BIG_VOCAB)
    req = _request(model_dir, tmp_path / "p.json", methods=("lora",), seq_lens=(128,), micro_batches=(16,),
                   steps=1, memory_limit_bytes=32 << 20, start_method="spawn")
    profile = run_profile(req)
    (e,) = profile.entries
    assert (e.status, e.fits, e.error) == ("oom", False, None)
    assert e.oom.phase in ("build", "warmup", "timed") and "allocate" in e.oom.message
    assert e.oom.requested_bytes > 0 and e.memory_limit_bytes == 32 << 20
    assert measured_entry(profile, str(model_dir), "lora", 128, 16).fits is False


def test_find_max_batch_grows_then_bisects_under_a_memory_limit(tmp_path):
    model_dir = _model_dir(tmp_path / "model", BIG_VOCAB)
    req = _request(model_dir, tmp_path / "p.json", methods=("lora",), seq_lens=(128,), micro_batches=(1,),
                   steps=1, memory_limit_bytes=64 << 20, find_max_batch=True)
    profile = run_profile(req)
    (m,) = profile.max_batch
    assert m.error is None and m.max_micro_batch >= 1 and m.first_failing_micro_batch == m.max_micro_batch + 1
    assert m.probes[:2] == [1, 2]
    fits = {e.micro_batch: e.fits for e in profile.entries}
    assert set(fits) == set(m.probes)
    assert fits[m.max_micro_batch] is True and fits[m.first_failing_micro_batch] is False


@pytest.mark.parametrize("threshold,start,limit", [(1, 1, 64), (5, 1, 64), (12, 1, 64), (0, 1, 64), (0, 4, 64),
                                                   (3, 8, 64), (64, 1, 64), (1000, 1, 64), (37, 3, 1024)])
def test_search_max_batch_finds_the_boundary(threshold, start, limit):
    seen = []
    found = search_max_batch(lambda b: seen.append(b) or b <= threshold, start, limit)
    assert found.max_micro_batch == min(threshold, limit)
    assert found.first_failing_micro_batch == (threshold + 1 if threshold < limit else None)
    assert list(found.probes) == seen and len(set(seen)) == len(seen)  # no size measured twice


def test_search_max_batch_stops_on_a_failed_measurement():
    found = search_max_batch(lambda b: None if b == 4 else True, 1, 64)
    assert (found.max_micro_batch, found.probes, found.error) == (2, (1, 2, 4),
                                                                  "the measurement at micro-batch 4 failed")


# ---- extrapolation in depth ---------------------------------------------------------------------
def test_extrapolation_from_k_and_2k_layers_against_the_full_depth(llama_run, tmp_path):
    """K=1 and 2K=2 layers extrapolated to 4, against the 4-layer run of the shared fixture.

    Model states and saved activations are exactly linear in depth (every decoder layer holds the same
    tensors and saves the same activations; embeddings, lm_head, norm and loss are the fixed part), so their
    error is zero up to the 6-significant-digit rounding of the file (1e-6). Step time and peak RSS on a
    shared CPU are noise-dominated at this size and are only checked to be reported.
    """
    out = tmp_path / "p.json"
    shutil.copy(llama_run.out, out)
    profile = run_profile(_request(llama_run.model_dir, out, methods=("lora",), layers=1))
    assert {(e.layers, e.source) for e in profile.entries if e.technique == "lora"} == {
        (1, "measured"), (2, "measured"), (4, "measured"), (4, "extrapolated")}
    ext = profile.entry(("lora", SEQ, BATCH, 4, "extrapolated"))
    meas = profile.entry(("lora", SEQ, BATCH, 4, "measured"))
    assert ext.extrapolated_from_layers == [1, 2] and ext.fits is True and ext.status == "ok"
    exact = ["saved_for_backward_bytes", "trainable_params", "state.frozen_weights_bytes",
             "state.trainable_weights_bytes", "state.gradients_bytes", "state.optimizer_bytes"]
    for name in exact:
        assert abs(ext.extrapolation_error[name]) <= 1e-6, (name, ext.extrapolation_error)
    assert ext.state == meas.state and ext.saved_for_backward_bytes == meas.saved_for_backward_bytes
    assert {"step_time_s", "device_peak_bytes", "tokens_per_s"} <= set(ext.extrapolation_error)
    assert ext.flops_per_token == meas.flops_per_token  # FLOPs are counted for the full model, not extrapolated
    # the planner prefers the measured full-depth entry, and takes the extrapolated one where it is alone
    assert measured_entry(profile, str(llama_run.model_dir), "lora", SEQ, BATCH).source == "measured"
    alone = profile.model_copy(update={"entries": [e for e in profile.entries if e.source != "measured"]})
    assert measured_entry(alone, str(llama_run.model_dir), "lora", SEQ, BATCH).source == "extrapolated"


def test_linear_in_depth_and_truncated_configs():
    assert linear_in_depth(10.0, 14.0, 2, 32) == 10.0 + 2.0 * 30
    assert linear_in_depth(10.0, 9.0, 2, 32) == 10.0  # a negative per-layer part is noise: taken as 0
    cfg = {"model_type": "qwen2", "num_hidden_layers": 4, "layer_types": ["full_attention"] * 4,
           "architectures": ["Qwen2ForCausalLM"]}
    cut = truncated_config(cfg, 2)
    assert cut["num_hidden_layers"] == 2 and cut["layer_types"] == ["full_attention"] * 2
    assert cfg["num_hidden_layers"] == 4 and cut["architectures"] == cfg["architectures"]
    with pytest.raises(AdviseError, match="no num_hidden_layers"):
        truncated_config({"model_type": "x"}, 1)


# ---- reading profiles ---------------------------------------------------------------------------
def test_measured_entry_matches_model_shape_and_setup(llama_run):
    p = llama_run.profile
    name = str(llama_run.model_dir)
    e = measured_entry(p, name, "qlora", SEQ, BATCH)
    assert e.technique == "qlora" and e.source == "measured"
    assert measured_entry(p, name, "qlora", SEQ, BATCH, setup=llama_run.req.setup("qlora", SEQ, BATCH)) == e
    from estimators.setup import TrainingSetup

    other = TrainingSetup(technique="qlora", seq_len=SEQ, micro_batch=BATCH, lora_r=8)
    assert measured_entry(p, name, "qlora", SEQ, BATCH, setup=other) is None
    assert measured_entry(p, name, "qlora", SEQ, BATCH + 1) is None
    assert measured_entry(p, "llama-3.1-8b", "qlora", SEQ, BATCH) is None


@pytest.mark.parametrize("mutate,message", [
    (None, "does not exist"),
    (lambda d: "{not json", "line 1: not valid JSON"),
    (lambda d: json.dumps(d)[:-1] + ', "device": {}}', "duplicate key \"device\""),
    (lambda d: {**d, "schema_version": 99}, "schema_version is 99"),
    (lambda d: {k: v for k, v in d.items() if k != "device"}, "device: Field required"),
    (lambda d: {**d, "entries": [{**d["entries"][0], "fits": "maybe"}]}, "entries.0.fits:"),
    (lambda d: {**d, "model": {**d["model"], "layerz": 3}}, "model.layerz: unknown field"),
])
def test_load_profile_names_the_bad_field_in_one_line(llama_run, tmp_path, mutate, message):
    path = tmp_path / "p.json"
    if mutate is not None:
        d = json.loads(llama_run.out.read_text())
        new = mutate(d)
        path.write_text(new if isinstance(new, str) else json.dumps(new))
    with pytest.raises(AdviseError, match=None) as info:
        load_profile(path)
    assert message in str(info.value) and "\n" not in str(info.value)


# ---- command-line errors ------------------------------------------------------------------------
@pytest.mark.parametrize("args,message", [
    (["--model", "llama-3.1-8b"], "sees no CUDA GPU"),
    (["--model", "llama-3.1-8b", "--device", "cpu", "--layers", "16"], "--layers 16: K and 2K layers"),
    (["--model", "llama-3.1-8b", "--device", "cpu", "--methods", "full,lorax"], "--methods: 'lorax'"),
    (["--model", "llama-3.1-8b", "--device", "cpu", "--seq-len", "2048,x"], "Invalid value for '--seq-len'"),
    (["--model", "llama-3.1-8b", "--device", "cpu", "--find-max-batch", "--batch-size", "1,4"],
     "--find-max-batch starts from one --batch-size"),
    (["--model", "llama-3.1-8b", "--device", "cpu", "--out", "/nonexistent/dir/p.json"], "does not exist"),
    (["--model", "llama-3.1-8b", "--device", "cpu", "--gpu", "h100-sxm4"], "is not a known gpu"),
])
def test_profile_user_errors_exit_2_with_one_line(args, message):
    import torch

    if torch.cuda.is_available() and args == ["--model", "llama-3.1-8b"]:
        pytest.skip("this machine has a GPU")
    r = CliRunner().invoke(main, ["profile", *args])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output
    assert len([line for line in r.output.splitlines() if line.startswith("Error:")]) == 1
