"""Every exported stage trains in its own trainer's real install: the README's steps, run as written, on CPU.

For each trainer, a venv built from its export README's install line (tests/realrun/venvs.py; .ci/run builds
them) runs the README's steps of a plan in order: the stages for 2 steps, the merges, the helper scripts. What
changes is only what cannot run here: the Hub model becomes a tiny random one of the same family with the shapes
that break real runs (tests/realrun/tiny.py: a base tokenizer without a chat template, more embedding rows than
tokens, Qwen's tied embeddings), and the CPU switches: `max_steps: 2`, fp32 instead of bf16, Axolotl's
Triton LoRA kernels off, and two processes (gloo) where the plan has more GPUs. A probe (probe/sitecustomize.py)
records the first batch each process trains on, so the tests assert on what was trained, not on exit codes:

- chat SFT: the template's end-of-turn token is among the trained labels;
- DPO, ORPO, KTO: the batch is in the chat template (its role markers are in the input ids);
- merge: the merged folder loads with a chat template;
- several GPUs: 2 processes, and the layout the plan chose (DDP, FSDP2, ZeRO-3 with its offload).

Skipped when the venvs are missing (the skip says how to build them); under CI (``CI`` set) that is a failure.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.realrun import venvs

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
PROBE = HERE / "probe"
STEPS = 2
PROCESSES = 2
#: under CI (``CI`` set, as .ci/run does) a missing venv fails instead of skipping
REQUIRED = bool(os.environ.get("CI"))

#: (trainer, export case): every stage each trainer exports, and each multi-GPU layout (tests/reports/export_cases.py)
MATRIX = {
    "axolotl": ["distill_lora", "full_sft", "qlora_70b", "dora", "sft_dpo_lora", "orpo", "kto", "cpt_sft_8gpu",
                "sharded_4gpu", "zero3_4gpu", "zero3_offload", "moe_lora"],
    "llamafactory": ["distill_lora", "full_sft", "qlora_70b", "dora", "sft_dpo_lora", "orpo", "kto", "cpt_sft_8gpu",
                     "sharded_4gpu", "zero3_4gpu", "zero3_offload", "moe_lora"],
    "trl": ["distill_lora", "full_sft", "qlora_70b", "dora", "sft_dpo_lora", "kto", "cpt_sft_8gpu",
            "sharded_4gpu", "zero3_4gpu", "zero3_offload", "moe_lora"],
}
#: the family templates an instruct tokenizer carries (the stand-in keeps their special tokens and layout)
TEMPLATES = {
    "qwen2": ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
              "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}", "<|im_end|>", "<|im_start|>"),
    "llama": ("<|begin_of_text|>{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
              "{{ m['content'] }}<|eot_id|>{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant"
              "<|end_header_id|>\n\n{% endif %}", "<|eot_id|>", "<|start_header_id|>"),
}
# ChatML turns (Qwen3's own templates add thinking blocks around them; the trainers' qwen3 templates are their own)
TEMPLATES["qwen3"] = TEMPLATES["qwen3_moe"] = TEMPLATES["qwen2"]
WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "answer", "ticket", "refund"]


def _sentence(i: int, n: int) -> str:
    return " ".join(WORDS[(i + k) % len(WORDS)] for k in range(n))


def _rows(shape: str, n: int = 40) -> list[dict]:
    if shape == "chat":
        return [{"messages": [{"role": "system", "content": "Answer briefly."},
                              {"role": "user", "content": _sentence(i, 5)},
                              {"role": "assistant", "content": _sentence(i + 3, 4)}]} for i in range(n)]
    if shape == "pairs":
        return [{"prompt": _sentence(i, 5), "chosen": _sentence(i + 2, 4), "rejected": _sentence(i + 7, 3)}
                for i in range(n)]
    if shape == "pairs_messages":
        return [{"prompt": _sentence(i, 5),
                 "chosen": [{"role": "user", "content": _sentence(i, 5)},
                            {"role": "assistant", "content": _sentence(i + 2, 4)}],
                 "rejected": [{"role": "user", "content": _sentence(i, 5)},
                              {"role": "assistant", "content": _sentence(i + 7, 3)}]} for i in range(n)]
    if shape == "kto":
        return [{"prompt": _sentence(i, 5), "completion": _sentence(i + 2, 4), "label": i % 2 == 0} for i in range(n)]
    if shape == "text":
        # a corpus long enough that its held-out 5% still fills one packed block of the stage's length
        return [{"text": _sentence(i, 400)} for i in range(10 * n)]
    raise AssertionError(shape)


def _venv(trainer: str) -> Path:
    py = venvs.python(trainer)
    if not py.exists():
        msg = f"no {trainer} venv: run `python tests/realrun/venvs.py build {trainer}` (about 2 minutes)"
        if REQUIRED:
            pytest.fail(msg)
        pytest.skip(msg)
    return py


def _extensions_dir(trainer: str) -> Path:
    """Where DeepSpeed's CPU ops (shared-memory allreduce, CPU Adam) are JIT-built for this venv.

    One folder per venv: a shared ~/.cache/torch_extensions is rebuilt whenever another venv's sources load it,
    and torch's build lock (torch/utils/file_baton.py) is then waited on forever by every later run if a build
    was killed halfway -- the 900 s timeouts of a CI run."""
    return venvs.python(trainer).parent.parent / "torch-extensions"


def _env(trainer: str, probe_dir: Path, cwd: Path) -> dict[str, str]:
    bin_dir = str(venvs.python(trainer).parent)
    return {**os.environ, "TORCH_EXTENSIONS_DIR": str(_extensions_dir(trainer)),
            "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}", "VIRTUAL_ENV": str(bin_dir)[:-4],
            "PYTHONPATH": str(PROBE), "ADVISE_PROBE_DIR": str(probe_dir), "CUDA_VISIBLE_DEVICES": "",
            "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
            "HF_DATASETS_CACHE": str(cwd / ".hf-datasets"), "HF_HOME": str(cwd / ".hf-home"),
            "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1", "AXOLOTL_DO_NOT_TRACK": "1",
            "DO_NOT_TRACK": "1", "DS_ACCELERATOR": "cpu", "WANDB_DISABLED": "true"}


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """(trainer, family, checkpoint) -> a tiny model folder, built once with that trainer's transformers."""
    from estimators.families import tiny_config

    root = tmp_path_factory.mktemp("tiny-models")
    built: dict[tuple[str, str, str], Path] = {}

    def get(trainer: str, family: str, checkpoint: str) -> Path:
        key = (trainer, family, checkpoint)
        if key not in built:
            out = root / "-".join(key)
            # widths in whole 64-element blocks, as every real checkpoint has (bitsandbytes quantizes in blocks of 64)
            arch = dict(tiny_config(family))
            arch["intermediate_size"] = -(-arch["intermediate_size"] // 64) * 64
            cfg = json.dumps(arch)
            proc = subprocess.run([str(venvs.python(trainer)), str(HERE / "tiny.py"), str(out), cfg],
                                  capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr[-3000:]
            shapes = json.loads(proc.stdout.strip().splitlines()[-1])
            assert shapes["rows"] > shapes["tokenizer_len"] and shapes["tied"] is arch["tie_word_embeddings"]
            if checkpoint == "instruct":  # an instruct tokenizer ships its template and stops on the turn end
                template, eot, _ = TEMPLATES[family]
                cfg_path = out / "tokenizer_config.json"
                tc = json.loads(cfg_path.read_text())
                tc["eos_token"] = eot
                cfg_path.write_text(json.dumps(tc))
                (out / "chat_template.jinja").write_text(template)
            built[key] = out
        return built[key]

    return get


def _readme_steps(readme: str, title: str) -> list[str]:
    section = readme.split(f"### {title}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    return re.findall(r"^\d+\. `(.+?)` -> ", section, flags=re.MULTILINE)


def _patch_yaml(path: Path, edit) -> None:
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def _cpu_switches(trainer: str, path: Path, hub_id: str, tiny: Path) -> None:
    """The exported stage config with only the model, the step count and the CPU switches changed."""
    def edit(c: dict) -> None:
        model_key = {"axolotl": "base_model", "llamafactory": "model_name_or_path", "trl": "model_name_or_path"}[trainer]
        if c[model_key] == hub_id:
            c[model_key] = str(tiny)
        c["max_steps"] = STEPS
        c["bf16"] = False
        if trainer == "axolotl":
            # Axolotl's LoRA kernels are Triton (CUDA only)
            c.update(lora_mlp_kernel=False, lora_qkv_kernel=False, lora_o_kernel=False, dataset_processes=1)
        elif trainer == "llamafactory":
            c.pop("pure_bf16", None)
            c["preprocessing_num_workers"] = 1
        else:
            c["dtype"] = "float32"
    _patch_yaml(path, edit)


def _processes(plan: dict) -> int:
    """Processes a multi-GPU plan runs with here. DDP: 2 (gloo). DeepSpeed: 1, since accelerate's backend detection
    knows no CPU accelerator under DeepSpeed: it counts one process while DeepSpeed (DS_ACCELERATOR=cpu) joins
    them all, and DeepSpeed refuses the batch arithmetic ("train_batch_size is not equal to micro_batch_per_gpu *
    gradient_acc_step * world_size"); ZeRO-3's partitioning, offload and 16-bit gather still run."""
    t = plan["estimates"]["training"]
    if t["gpu_count"] == 1:
        return 1
    return 1 if t["sharding"] == "zero3" else PROCESSES


def _set_processes(export: Path, n: int) -> None:
    for acc in (export / "accelerate").glob("*.yaml"):
        _patch_yaml(acc, lambda c: c.update(num_processes=n))


def _run(step: str, trainer: str, cwd: Path, probe_dir: Path, plan: dict) -> str:
    probe_dir.mkdir(parents=True, exist_ok=True)
    env = _env(trainer, probe_dir, cwd)
    t = plan["estimates"]["training"]
    if t["gpu_count"] > 1 and t["sharding"] == "none":
        # DDP on CPU processes: accelerate starts them as MULTI_CPU over gloo only when told it runs on CPU
        # (accelerate/state.py _prepare_backend); otherwise each process trains alone
        env["ACCELERATE_USE_CPU"] = "true"
    # the runs are sequential and each one's process group is gone when it returns: a lock left now is stale
    for lock in _extensions_dir(trainer).glob("*/lock"):
        lock.unlink()
    rc, out = _bounded(["bash", "-c", step], cwd=cwd, env=env, timeout_s=900)
    assert rc == 0, f"`{step}` failed ({trainer}):\n{out[-6000:]}"
    return out


def _bounded(args: list[str], *, cwd: Path, env: dict[str, str], timeout_s: int) -> tuple[int, str]:
    """Run in a session of its own; past the timeout the whole group is killed, not only bash: torchrun's and
    accelerate's workers left behind would hold the CPUs (and build locks) through every later test."""
    proc = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"`{args[-1]}` ran past {timeout_s} s:\n{out[-6000:]}")
    finally:
        try:  # workers that outlive their launcher (a crashed rank's siblings)
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return proc.returncode, out


def _probes(probe_dir: Path) -> list[dict]:
    errors = list(probe_dir.glob("probe-error-*.txt"))
    assert not errors, errors[0].read_text()
    return [json.loads(p.read_text()) for p in sorted(probe_dir.glob("step-*.json"))]


def _ids_in(rows: dict, key_part: str) -> list[int]:
    return [i for k, v in rows.items() if key_part in k for i in v["ids"]]


def _check_training(step_no: int, records: list[dict], stage: dict, plan: dict, family: str, trainer: str) -> None:
    t = plan["estimates"]["training"]
    want_world = _processes(plan)
    assert records, f"step {step_no}: the probe saw no training step"
    assert {r["world_size"] for r in records} == {want_world}, records[0]["layout"]
    assert len({r["rank"] for r in records}) == want_world
    layout = records[0]["layout"]
    if t["gpu_count"] > 1 and t["sharding"] == "fsdp":
        assert layout["fsdp_version"] == 2, layout
    elif t["gpu_count"] > 1 and t["sharding"] == "zero3":
        assert layout["zero_stage"] == 3, layout
        assert layout["offload_param"] == ("cpu" if t["offload"] == "params" else "none"), layout
    elif t["gpu_count"] > 1:
        assert layout["fsdp_version"] is None and layout["zero_stage"] is None, layout
        assert "MULTI" in layout["distributed_type"], layout
    _, eot, marker = TEMPLATES[family]
    rec = records[0]
    special = rec["special"]
    batch = rec["batch"]
    objective = stage["objective"]
    if objective == "sft":
        eot_id = special.get(eot)
        assert eot_id is not None, f"{eot} is not a special token of the trained tokenizer"
        labels = [i for i in _ids_in(batch, "labels") if i >= 0]
        assert labels, f"no labels in the batch: {list(batch)}"
        assert eot_id in labels, f"{trainer}: the end-of-turn token {eot} is not trained (labels {labels[:40]}...)"
    elif objective in ("dpo", "orpo", "kto"):
        ids = _ids_in(batch, "input_ids")
        assert ids, f"no input ids in the batch: {list(batch)}"
        assert special.get(marker) in ids, f"{trainer} {objective}: the batch is not in the chat template " \
                                           f"({marker} missing from {list(batch)})"
    elif objective == "cpt":
        ids = _ids_in(batch, "input_ids")
        assert ids and special.get(marker) not in ids  # raw text, no chat template


def _check_trainable(records: list[dict], plan: dict, stage: dict, tiny: Path, trainer: str) -> None:
    """What the trainer's optimizer trains is what the estimate counts on the same model: peft's adapters at the
    plan's rank and targets (an MoE's fused experts included), or every parameter for full fine-tuning."""
    from estimators.anatomy import (
        compute_anatomy,
        lora_trainable_params,
        select_lora_targets,
    )

    t = plan["estimates"]["training"]
    anatomy = compute_anatomy(json.loads((tiny / "config.json").read_text()))
    if t["lora"] is not None and t["technique"] != "full":
        targets = t["lora"]["targets"]
        if trainer == "llamafactory" and t["lora"]["adapted_parameters"]:
            # LLaMA-Factory passes module names only: the linears, not the experts (its README note says so)
            targets = sorted({g.name for g in select_lora_targets(anatomy, targets)})
        want = lora_trainable_params(anatomy, t["lora"]["r"], targets, dora=t["technique"] == "dora")
    else:
        want = anatomy.params_total - anatomy.frozen_vision_params
    trainable = records[0]["trainable"]
    got = sum(trainable.values())
    assert got == want, (f"{trainer} {stage['objective']}: trains {got:,} parameters, the estimate counts {want:,} "
                         f"({sorted({n.split('.')[-2] if n.count('.') else n for n in trainable})})")


def _stop_ids(folder: Path) -> set[int]:
    """The token ids a server stops on for this folder: vLLM stops on the tokenizer's eos and every id in
    generation_config.json's eos_token_id (vllm/transformers_utils: the generation config's eos list)."""
    tok = json.loads((folder / "tokenizer.json").read_text())
    vocab = {t["content"]: t["id"] for t in tok.get("added_tokens", [])}
    eos = json.loads((folder / "tokenizer_config.json").read_text()).get("eos_token")
    eos = eos.get("content") if isinstance(eos, dict) else eos
    ids = {vocab[eos]} if eos in vocab else set()
    gen = folder / "generation_config.json"
    if gen.is_file():
        g = json.loads(gen.read_text()).get("eos_token_id")
        ids |= set(g if isinstance(g, list) else [g] if g is not None else [])
    return ids


def _check_merge(folder: Path, chat: bool, family: str) -> None:
    assert (folder / "config.json").is_file() and any(folder.glob("*.safetensors")), sorted(folder.iterdir())
    if chat:
        has_file = (folder / "chat_template.jinja").is_file()
        tc = json.loads((folder / "tokenizer_config.json").read_text())
        assert has_file or tc.get("chat_template"), f"{folder}: the merged model has no chat template"
        # served as it is, the model must stop at the template's turn end, the token it was trained to end on
        eot = TEMPLATES[family][1]
        vocab = {t["content"]: t["id"] for t in json.loads((folder / "tokenizer.json").read_text())["added_tokens"]}
        assert vocab[eot] in _stop_ids(folder), f"{folder}: a server would not stop at {eot} " \
                                                f"(stop ids {sorted(_stop_ids(folder))}, {eot} is {vocab[eot]})"


@pytest.mark.parametrize("trainer, case", [(t, c) for t, cases in MATRIX.items() for c in cases])
def test_the_readme_steps_train_in_the_trainers_own_install(trainer, case, tmp_path, tiny_models):
    from reports.export import FORMATS, as_plan, export_configs
    from reports.export.context import build_context
    from tests.reports.export_cases import plans

    _venv(trainer)
    plan = plans()[case]
    base = plan["estimates"]["base_model"]
    family = base["model_type"]
    tiny = tiny_models(trainer, family, base["checkpoint"])
    export = tmp_path / "export"
    export_configs(plan, export, formats=[trainer])
    readme = (export / "README.md").read_text()
    steps = _readme_steps(readme, FORMATS[trainer].title)
    assert steps, readme
    ctx = build_context(as_plan(plan), {})
    for d in ctx["data_files"]:
        (export / d["path"]).parent.mkdir(parents=True, exist_ok=True)
        (export / d["path"]).write_text("".join(json.dumps(r) + "\n" for r in _rows(d["shape"])))
    if trainer == "axolotl" and any(s["objective"] == "orpo" for s in ctx["stages"]):
        (export / "data/preference_messages.jsonl").write_text(
            "".join(json.dumps(r) + "\n" for r in _rows("pairs_messages")))
    if plan["estimates"]["training"]["gpu_count"] > 1:
        if trainer == "axolotl":
            pytest.skip("Axolotl's several-process start cannot run on a CPU-only machine: ZeRO-3 initialises "
                        "DeepSpeed with dist_backend=\"nccl\" (axolotl/utils/trainer.py setup_deepspeed_env) and "
                        "each DDP rank loads its model onto its accelerator device (transformers' "
                        "caching_allocator_warmup: \"Cannot access accelerator device\"); TRL and LLaMA-Factory "
                        "run these layouts here")
        if plan["estimates"]["training"]["sharding"] == "fsdp":
            pytest.skip("FSDP2 cannot start on a CPU-only machine: accelerate turns FSDP on only for a multi-"
                        "accelerator layout (MULTI_GPU and kin, not MULTI_CPU: accelerate/state.py "
                        "AcceleratorState.__init__); its launch files are checked by accelerate's own config "
                        "class in tests/reports")
        _set_processes(export, _processes(plan))
    stages = iter(ctx["stages"])
    for n, step in enumerate(steps, 1):
        words = shlex.split(step)
        if step.startswith("python -c "):  # TRL: the instruct template, from a local stand-in of the Hub repo
            step = re.sub(r'from_pretrained\("[^"]+"\)', f'from_pretrained("{tiny_models(trainer, family, "instruct")}")',
                          step)
        step = re.sub(r"NPROC_PER_NODE=\d+", f"NPROC_PER_NODE={_processes(plan)}", step)
        config = next((export / w for w in reversed(words) if w.endswith((".yml", ".yaml"))
                       and not w.startswith("accelerate/") and (export / w).is_file()), None)
        trains = any(w in ("train", "sft", "dpo", "kto", "-m") for w in words) and config is not None \
            and "export" not in words and "merge-lora" not in words
        if trains:
            _cpu_switches(trainer, config, base["hub_id"], tiny)
            stage = next(stages)
        elif config is not None and trainer == "llamafactory":  # export config: the merge loads the tiny base
            _patch_yaml(config, lambda c: c.update(model_name_or_path=str(tiny)) if c.get(
                "model_name_or_path") == base["hub_id"] else None)
        probe_dir = tmp_path / f"probe-{n}"
        _run(step, trainer, export, probe_dir, plan)
        if trains:
            _check_training(n, _probes(probe_dir), stage, plan, family, trainer)
            _check_trainable(_probes(probe_dir), plan, stage, tiny, trainer)
    for s in ctx["stages"]:
        merged = [w for w in steps if "merged" in w and s["name"] in w]
        if merged:
            folder = export / f"outputs/{trainer}/{s['name']}/merged"
            _check_merge(folder, s["objective"] != "cpt", family)
