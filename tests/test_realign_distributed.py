"""Re-alignment that scales out (issue 12): two real CPU processes (gloo) through `accelerate launch` share out the
α search and the feature cache, and end with what one process computes on everything: the same chosen α and score
table, the same cache (same rows in the same order), the same re-aligned model. Slow (process start-up dominates):
run with `pytest -m slow`."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from helpers.recipes import RECIPES, load_recipe
from hf_simo import SimoModel
from hf_simo.testing_utils import TINY_TASK_SPECS, save_tiny_dataset, save_tiny_encoder
from test_training_distributed import launch


pytestmark = pytest.mark.slow

ALPHAS = [0.0, 0.4, 1.0]
GRID = {"density": [0.3, 0.8]}
BATCH = 4  # 16 validation images: shards of 8 = two batches of 4 each, the very batches one process encodes

WORKER = textwrap.dedent(
    """
    import json, sys
    import torch
    from datasets import load_from_disk
    from safetensors.torch import save_file
    from hf_simo.evaluation import process_shard, simo_batches
    from hf_simo.merging import merge, search
    from hf_simo.realign import compute_feature_cache
    from hf_simo.training import make_accelerator

    sources, data_dir, out, alphas, grid, batch = sys.argv[1], sys.argv[2], sys.argv[3], *map(json.loads, sys.argv[4:])
    sources = json.loads(sources)
    torch.set_num_threads(1)
    accelerator = make_accelerator(out, report_to=None)
    validation = load_from_disk(data_dir)["validation"]
    tasks = [f"{t}={p}" for t, p in sources.items()]
    shard = process_shard(validation, accelerator)
    batches = simo_batches(shard, list(sources), batch)
    result = search(tasks, batches, None, "ties", alphas=alphas, grid=grid, accelerator=accelerator)
    model = merge(tasks, None, "ties", result.best.options, alpha=result.best.alpha)
    disk = compute_feature_cache(
        model, batches, data_fingerprint="tiny-validation", cache_dir=out + "/cache", accelerator=accelerator
    )
    memory = compute_feature_cache(model, batches, dtype="bfloat16", accelerator=accelerator)
    rank = accelerator.process_index
    tensors = {f"features.{k}": v.contiguous() for k, v in memory.features.items()}
    tensors |= {f"labels.{k}": v.contiguous() for k, v in memory.labels.items()}
    save_file(tensors, f"{out}/memory-{rank}.safetensors")
    record = {
        "processes": accelerator.num_processes,
        "shard": len(shard),
        "best": [result.best.options, result.best.alpha],
        "scores": [[c.label, c.score] for c in result.candidates],
        "values": [[c.label, c.values] for c in result.candidates],
        "baselines": result.baselines,
        "table": result.table(),
        "disk": [disk.key, list(disk.grid), list(disk.padding), len(disk)],
    }
    json.dump(record, open(f"{out}/result-{rank}.json", "w"))
    """
)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """Three single-task checkpoints of one tiny encoder (encoder nudged, heads random) and a dataset."""
    root = tmp_path_factory.mktemp("realign-distributed")
    data = save_tiny_dataset(root / "data", train=8, validation=16, test=10)
    encoder = save_tiny_encoder(root / "encoder")
    sources = {}
    for index, (task, spec) in enumerate(TINY_TASK_SPECS.items()):
        torch.manual_seed(index)
        model = SimoModel.from_backbone(str(encoder), tasks={task: spec})
        with torch.no_grad():
            for param in model.dinov2.parameters():
                param.add_(0.01 * torch.randn_like(param))
        model.save_pretrained(root / task)
        sources[task] = str(root / task)
    return {"root": root, "data": data, "sources": sources}


def _cache_tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))  # safetensors' own reader: the assembled file is a valid safetensors file


def test_two_processes_search_and_cache_as_one(setup, tmp_path):
    from datasets import load_from_disk

    from hf_simo.evaluation import simo_batches
    from hf_simo.merging import merge, search
    from hf_simo.realign import compute_feature_cache

    sources, out = setup["sources"], tmp_path / "two"
    out.mkdir()
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    launch(
        [str(script), json.dumps(sources), str(setup["data"]), str(out), *map(json.dumps, (ALPHAS, GRID, BATCH))],
        tmp_path,
    )
    ranks = [json.loads((out / f"result-{r}.json").read_text()) for r in range(2)]
    assert [r["processes"] for r in ranks] == [2, 2] and [r["shard"] for r in ranks] == [8, 8]
    assert ranks[0]["table"] == ranks[1]["table"] and ranks[0]["best"] == ranks[1]["best"]  # one choice everywhere

    # the same search and caches on one process, on all the images
    torch.set_num_threads(1)
    tasks = [f"{t}={p}" for t, p in sources.items()]
    batches = simo_batches(load_from_disk(str(setup["data"]))["validation"], list(sources), BATCH)
    single = search(tasks, batches, None, "ties", alphas=ALPHAS, grid=GRID)
    two = ranks[0]
    assert two["best"] == [single.best.options, single.best.alpha]
    assert [label for label, _ in two["scores"]] == [c.label for c in single.candidates]
    for (label, score), candidate in zip(two["scores"], single.candidates):
        assert score == pytest.approx(candidate.score, rel=1e-6, abs=1e-9), label
    for (label, values), candidate in zip(two["values"], single.candidates):
        assert values == pytest.approx(candidate.values, rel=1e-6, abs=1e-9), label
    assert two["baselines"] == pytest.approx(single.baselines, rel=1e-6, abs=1e-9)  # measured on the shares too
    assert two["table"] == single.table()

    model = merge(tasks, None, "ties", single.best.options, alpha=single.best.alpha)
    disk = compute_feature_cache(model, batches, data_fingerprint="tiny-validation", cache_dir=tmp_path / "one")
    assert two["disk"] == [disk.key, list(disk.grid), list(disk.padding), 16]
    files = list((out / "cache").iterdir())
    assert [f.name for f in files] == [f"features-{disk.key}.safetensors"]  # the shares' parts are gone
    two_processes = _cache_tensors(files[0])
    one_process = _cache_tensors(tmp_path / "one" / f"features-{disk.key}.safetensors")
    assert sorted(two_processes) == sorted(one_process)
    for name, tensor in one_process.items():
        assert torch.equal(two_processes[name], tensor), name

    memory = compute_feature_cache(model, batches, dtype="bfloat16")
    for rank in range(2):  # in memory: every process gathered every share, in order
        gathered = _cache_tensors(out / f"memory-{rank}.safetensors")
        for layer, tensor in memory.features.items():
            assert gathered[f"features.{layer}"].dtype == torch.bfloat16
            assert torch.equal(gathered[f"features.{layer}"], tensor), (rank, layer)
        for task, tensor in memory.labels.items():
            assert torch.equal(gathered[f"labels.{task}"], tensor), (rank, task)


def test_two_process_head_realignment_job_equals_one_process(setup, tmp_path):
    """`recipes/realign.py --mode head` with α searched: 2 processes give the model 1 process gives."""
    argv = [
        "--task_checkpoints", *(f"{t}={p}" for t, p in setup["sources"].items()),
        "--dataset", str(setup["data"]), "--mode", "head", "--alpha_grid", "0.3", "1.0", "--head_epochs", "3",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", str(BATCH), "--disable_tqdm",
    ]  # fmt: skip
    launch([str(RECIPES / "realign.py"), *argv, "--output_dir", str(tmp_path / "two")], tmp_path)
    torch.set_num_threads(1)
    load_recipe("realign").main([*argv, "--output_dir", str(tmp_path / "one")])
    two = load_file(str(tmp_path / "two" / "model" / "model.safetensors"))
    one = load_file(str(tmp_path / "one" / "model" / "model.safetensors"))
    assert sorted(two) == sorted(one)
    for name, tensor in one.items():
        assert torch.equal(two[name], tensor), name
    results = {k: json.loads((tmp_path / k / "results.json").read_text()) for k in ("one", "two")}
    assert results["two"]["record"]["alpha"] == results["one"]["record"]["alpha"]
    for row, tasks in results["one"]["results"].items():
        for task, values in tasks.items():
            assert results["two"]["results"][row][task] == pytest.approx(values, rel=1e-6, abs=1e-9), (row, task)
    assert not (tmp_path / "two" / "feature_cache").exists() and not (tmp_path / "one" / "feature_cache").exists()
