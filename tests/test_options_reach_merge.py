"""Every option of ``hf-simo merge`` / ``recipes/merge.py`` takes effect or is refused (issue 11, item 1).

One table, option -> (command line, what it must change): the merge options are observed where the command hands
them to the library (`hf_simo.merging.api.merge_to_folder`, spied where `merge_from_arguments` looks it up), the push
options where the command publishes (`hf_simo.publishing.push_folder_to_hub`, spied where `run` looks it up).
`assert_every_field_covered` fails when an option of the command's dataclasses is not in the table, so a new option
cannot be accepted and silently dropped. Each spy is checked to be called (a spy at the wrong name never fires).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers.checkpoints import build_sources
from helpers.options import assert_every_field_covered
from hf_simo.cli import merge as merge_verb
from hf_simo.hub import HubOptions


def _method(**expected):
    return lambda call, push: all(call["options"].get(k) == v for k, v in expected.items())


def _kw(name, value):
    return lambda call, push: call[name] == value


def _hub(name, value):
    return lambda call, push: isinstance(call["hub"], HubOptions) and getattr(call["hub"], name) == value


def _push(name, value):
    return lambda call, push: push is not None and push[name] == value


PUSH = ["--push_to_hub", "--hub_model_id", "me/merged"]
# option -> (extra command line, predicate on (merge_to_folder call, push_folder_to_hub call))
TABLE = {
    "task_checkpoints": ([], lambda call, push: call["tasks"] == ["seg=TASK0", "TASK1"]),
    "base_model": ([], lambda call, push: call["base"] == "BASE"),
    "max_relative_distance": (["--max_relative_distance", "0.5"], _kw("max_relative_distance", 0.5)),
    "allow_distant": (["--allow_distant"], _kw("max_relative_distance", None)),
    "merge_method": (["--merge_method", "ties"], _kw("method", "ties")),
    "alpha": (["--alpha", "0.7"], _kw("alpha", 0.7)),
    "density": (["--density", "0.3"], _method(density=0.3)),
    "scope": (["--scope", "tensor"], _method(scope="tensor")),
    "aggregate": (["--aggregate", "sum"], _method(aggregate="sum")),
    "dare_seed": (["--dare_seed", "5"], _method(seed=5)),
    "rescale": (["--rescale", "false"], _method(rescale=False)),
    "sign_election": (["--sign_election", "true"], _method(sign_election=True)),
    "gamma": (["--gamma", "0.05"], _method(gamma=0.05)),
    "tall_lambda": (["--tall_lambda", "0.6"], _method(tall_lambda=0.6)),
    "min_agreement": (["--min_agreement", "3"], _method(min_agreement=3)),
    "base_method": (["--base_method", "ties"], _method(base_method="ties")),
    "beta": (["--beta", "0.25"], _method(beta=0.25)),
    "lines_alpha": (["--lines_alpha", "0.4"], _method(lines_alpha=0.4)),
    "coefficients": (["--coefficients", "[1, 2]"], _kw("coefficients", "[1, 2]")),
    "merge_options": (["--merge_options", '{"density": 0.4}'], _method(density=0.4)),
    "output_dir": ([], lambda call, push: call["output_dir"].endswith("out")),
    "dtype": (["--dtype", "float16"], _kw("dtype", "float16")),
    "max_shard_size": (["--max_shard_size", "1MB"], _kw("max_shard_size", "1MB")),
    "overwrite_output_dir": (["--overwrite_output_dir"], _kw("overwrite", True)),
    "wait_for_lock": (["--wait_for_lock"], _kw("wait_for_lock", True)),
    "num_threads": (["--num_threads", "3"], _kw("num_threads", 3)),
    "push_to_hub": (PUSH, lambda call, push: push is not None and push["folder"] == call["output_dir"]),
    "token": (["--token", "tok", *PUSH], lambda call, push: call["hub"].token == "tok" and push["token"] == "tok"),
    "cache_dir": (["--cache_dir", "CACHE"], _hub("cache_dir", "CACHE")),
    "local_files_only": (["--local_files_only"], _hub("local_files_only", True)),
    "allow_pickle": (["--allow_pickle"], _hub("allow_pickle", True)),
    "hub_model_id": (PUSH, _push("repo_id", "me/merged")),
    "hub_private_repo": ([*PUSH, "--hub_private_repo"], _push("private", True)),
    "hub_revision": ([*PUSH, "--hub_revision", "dev"], _push("revision", "dev")),
    "commit_message": ([*PUSH, "--commit_message", "v2"], _push("commit_message", "v2")),
    "create_pr": ([*PUSH, "--create_pr"], _push("create_pr", True)),
}


@pytest.fixture(scope="module")
def merged(tmp_path_factory):
    """A real merged folder (what the spied merge copies to the output, so the command can print its summary)."""
    from hf_simo.merging import merge_to_folder

    base, tasks = build_sources(tmp_path_factory.mktemp("reach"))
    return base, tasks, merge_to_folder(tmp_path_factory.mktemp("out") / "merged", tasks[:2], base)


@pytest.fixture
def spies(monkeypatch, merged):
    import hf_simo.merging.api
    import hf_simo.publishing

    calls = {"merge": [], "push": []}

    def fake_merge(output_dir, tasks, base=None, method="task_arithmetic", options=None, **kwargs):
        calls["merge"].append(
            {"output_dir": str(output_dir), "tasks": list(tasks), "base": base, "method": method, "options": options}
            | kwargs
        )
        shutil.copytree(merged[2], output_dir, dirs_exist_ok=True)  # what the real merge returns: the folder asked for
        return Path(output_dir)

    def fake_push(folder, repo_id, **kwargs):
        calls["push"].append({"folder": str(folder), "repo_id": repo_id, **kwargs})

        class Info:
            url = f"https://huggingface.co/{repo_id}"

        return Info()

    monkeypatch.setattr(hf_simo.merging.api, "merge_to_folder", fake_merge)
    monkeypatch.setattr(hf_simo.publishing, "push_folder_to_hub", fake_push)
    return calls


def test_the_table_covers_every_option_of_the_verb_and_the_recipe():
    assert_every_field_covered(merge_verb.COMMAND, TABLE)
    assert_every_field_covered(merge_verb.RECIPE, TABLE)


@pytest.mark.parametrize("option", sorted(TABLE))
def test_every_option_reaches_the_merge_or_the_push(option, spies, tmp_path, capsys):
    extra, reached = TABLE[option]
    argv = ["--task_checkpoints", "seg=TASK0", "TASK1", "--base_model", "BASE", "--output_dir", str(tmp_path / "out")]
    assert merge_verb.main([*argv, *extra]) == 0, capsys.readouterr().err
    assert len(spies["merge"]) == 1  # the spy sits where the command looks the merge up
    call, push = spies["merge"][0], (spies["push"][0] if spies["push"] else None)
    assert reached(call, push), (option, call, push)
    if "--push_to_hub" not in extra:
        assert spies["push"] == []  # nothing is pushed unless asked


def test_defaults_reach_the_merge_unchanged(spies, tmp_path):
    argv = ["--task_checkpoints", "a", "--output_dir", str(tmp_path / "out")]
    assert merge_verb.main(argv) == 0
    [call] = spies["merge"]
    assert call["method"] == "task_arithmetic" and call["options"] == {} and call["alpha"] == 1.0
    assert call["base"] is None and call["max_relative_distance"] == 1.0 and call["dtype"] == "auto"
    assert call["hub"] == HubOptions() and call["overwrite"] is False and call["wait_for_lock"] is False
    assert spies["push"] == []


def test_the_real_merge_honours_the_forwarded_options(merged, tmp_path):
    """Positive control without spies: the options the table observes change the merged folder."""
    base, tasks, _ = merged
    argv = ["--task_checkpoints", str(tasks[0]), str(tasks[1]), "--base_model", str(base)]
    argv += ["--merge_method", "dare", "--density", "0.5", "--dare_seed", "3", "--rescale", "false", "--alpha", "0.8"]
    argv += ["--dtype", "float16", "--disable_tqdm", "--output_dir", str(tmp_path / "real")]
    assert merge_verb.main(argv) == 0
    config = json.loads((tmp_path / "real" / "config.json").read_text())
    assert config["dtype"] == "float16" and config["merge"]["alpha"] == 0.8
    assert config["merge"]["options"] == {
        "density": 0.5,
        "seed": 3,
        "rescale": False,
        "sign_election": False,
        "aggregate": "mean",
    }
