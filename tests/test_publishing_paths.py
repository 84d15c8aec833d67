"""Every way of publishing, at the `HfApi` boundary: `SimoModel.push_to_hub`, `save_pretrained(push_to_hub=True)`,
`hf-simo push`, `hf-simo merge --push-to-hub` and a recipe's `--push_to_hub` upload the same complete folder with
hf_simo's card; transformers' generic card is replaced, a user's own card kept; and with the Hub unreachable
(offline mode, or a connection error) each says in one line which repo and why, keeps what was saved, never shows
the token.

The real `HfApi` runs, with `create_repo`/`create_branch`/`create_commit`/`hf_hub_download` patched on the class, so
`upload_folder`'s own file selection and commit operations are what is recorded.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from huggingface_hub import CommitInfo, HfApi, ModelCard, ModelCardData
from huggingface_hub.errors import EntryNotFoundError
from huggingface_hub.hf_api import RepoUrl

from helpers.checkpoints import build_sources
from helpers.tiny import tiny_model
from hf_simo import SimoModel
from hf_simo.cards import TRANSFORMERS_GENERIC_TEXT, write_model_card
from hf_simo.cli import main
from hf_simo.publishing import PublishError, push_folder_to_hub


TOKEN = "hf_FAKEtokenThatMustNeverAppear0123"
TASKS = {"segmentation": {"kind": "semantic_segmentation", "num_outputs": 3}, "depth": {"kind": "depth"}}
MODEL_FILES = {"README.md", "config.json", "model.safetensors", "preprocessor_config.json"}
ConnectError = importlib.import_module("httpx2").ConnectError


class Hub:
    """Records what reaches the Hub: one entry per commit with {path_in_repo: bytes}."""

    def __init__(self, monkeypatch, remote_readme: str | None = None, fail: BaseException | None = None):
        self.calls: list[str] = []
        self.commits: list[dict[str, bytes]] = []
        self.remote_readme = remote_readme
        self.fail = fail
        hub = self

        def create_repo(api, repo_id, **kwargs):
            hub.calls.append("create_repo")
            if hub.fail is not None:
                raise hub.fail
            return RepoUrl(f"https://huggingface.co/{repo_id}")

        def create_branch(api, repo_id, **kwargs):
            hub.calls.append("create_branch")

        def create_commit(api, repo_id, operations, **kwargs):
            hub.calls.append("create_commit")
            files = {}
            for op in operations:
                source = op.path_or_fileobj
                files[op.path_in_repo] = source if isinstance(source, bytes) else Path(source).read_bytes()
            hub.commits.append(files)
            return CommitInfo(
                commit_url=f"https://huggingface.co/{repo_id}/commit/{'2' * 40}",
                commit_message=kwargs.get("commit_message"),
                commit_description="",
                oid="2" * 40,
            )

        def hf_hub_download(api, repo_id, filename, **kwargs):
            hub.calls.append("hf_hub_download")
            if hub.fail is not None:
                raise hub.fail
            if hub.remote_readme is None:
                raise EntryNotFoundError(f"{filename} not in {repo_id}")
            path = hub.tmp / "remote_README.md"
            path.write_text(hub.remote_readme, encoding="utf-8")
            return str(path)

        for name, fn in [
            ("create_repo", create_repo),
            ("create_branch", create_branch),
            ("create_commit", create_commit),
            ("hf_hub_download", hf_hub_download),
        ]:
            monkeypatch.setattr(HfApi, name, fn)

    @property
    def files(self) -> set[str]:
        return set(self.commits[-1])

    def front_matter(self) -> dict:
        text = self.commits[-1]["README.md"].decode()
        return yaml.safe_load(text.split("---")[1])


@pytest.fixture
def saved(tmp_path):
    model = tiny_model(TASKS)
    folder = tmp_path / "model"
    model.save_pretrained(folder)
    write_model_card(folder, model, eval_results={"depth": {"abs_err": 0.25}}, dataset_name="toy")
    return model, folder


def test_every_path_uploads_the_same_complete_folder_and_card(saved, tmp_path, monkeypatch, capsys):
    model, folder = saved
    hub = Hub(monkeypatch)
    hub.tmp = tmp_path

    assert main(["push", str(folder), "org/x", "--token", TOKEN]) == 0  # hf-simo push
    cli_files, cli_card = hub.files, hub.front_matter()
    assert cli_files == MODEL_FILES
    assert cli_card["library_name"] == "hf_simo" and cli_card["model-index"][0]["results"]
    assert "pipeline_tag" not in cli_card  # two kinds of task: no single transformers pipeline
    readme = (folder / "README.md").read_bytes()

    model.save_pretrained(folder, push_to_hub=True, repo_id="org/x", token=TOKEN)  # save_pretrained(push_to_hub)
    assert hub.files == cli_files and hub.front_matter() == cli_card  # hf_simo's card of this config: kept
    assert (folder / "README.md").read_bytes() == readme

    hub.remote_readme = readme.decode()  # the repo now holds that card
    result = model.push_to_hub("org/x", token=TOKEN)  # push_to_hub, through a temporary folder
    assert hub.files == cli_files and hub.front_matter() == cli_card
    assert result.commit_url.endswith("2" * 40) and result.files == sorted(MODEL_FILES)
    weights = {c["model.safetensors"] for c in hub.commits}
    assert len(weights) == 1  # the same weights through every path

    sources = build_sources(tmp_path / "sources")  # hf-simo merge --push_to_hub
    argv = ["merge", "--base_model", str(sources[0]), "--output_dir", str(tmp_path / "merged"), "--disable_tqdm"]
    for task_folder in sources[1]:
        argv += ["--task_checkpoints", str(task_folder)]
    assert main([*argv, "--push_to_hub", "--hub_model_id", "org/merged", "--token", TOKEN]) == 0
    assert hub.files == MODEL_FILES and hub.front_matter()["library_name"] == "hf_simo"
    assert "merged" in hub.front_matter()["tags"]
    assert TOKEN not in capsys.readouterr().out


def test_push_to_hub_of_a_new_repo_writes_hf_simo_card_naming_the_repo(tmp_path, monkeypatch):
    hub = Hub(monkeypatch)
    hub.tmp = tmp_path
    model = tiny_model({"depth": {"kind": "depth"}})
    model.push_to_hub("org/depth", token=TOKEN, tags=["nyuv2"])
    card = hub.front_matter()
    assert hub.files == MODEL_FILES and card["library_name"] == "hf_simo" and "nyuv2" in card["tags"]
    assert card["pipeline_tag"] == "depth-estimation"  # a single depth task runs in transformers' pipeline
    assert 'pipeline("simo-dense-prediction", model="org/depth")' in hub.commits[-1]["README.md"].decode()
    assert hub.calls == ["hf_hub_download", "create_repo", "create_commit"]


def test_generic_cards_are_replaced_and_user_cards_kept(saved, tmp_path, monkeypatch):
    model, folder = saved
    generic = str(
        ModelCard.from_template(
            ModelCardData(library_name="transformers"), model_description=TRANSFORMERS_GENERIC_TEXT + "."
        )
    )
    user = "---\nlicense: mit\nlibrary_name: hf_simo\n---\n# My model\n\nHand-written.\n"
    # save_pretrained into a folder holding transformers' generic card: hf_simo's card replaces it
    (folder / "README.md").write_text(generic)
    model.save_pretrained(folder)
    assert ModelCard.load(folder / "README.md").data.library_name == "hf_simo"
    # ... a card the user wrote is kept
    (folder / "README.md").write_text(user)
    model.save_pretrained(folder)
    assert (folder / "README.md").read_text() == user
    # hf_simo's card of another config (a task added) is rewritten, unless someone edited it
    write_model_card(folder, model)
    assert "| `normals` |" not in (folder / "README.md").read_text()
    bigger = tiny_model({**TASKS, "normals": {"kind": "surface_normals"}})
    bigger.save_pretrained(folder)
    assert "| `normals` |" in (folder / "README.md").read_text()
    edited = (folder / "README.md").read_text().replace("## Limitations", "## Limitations\n\n- Mine.", 1)
    (folder / "README.md").write_text(edited)
    model.save_pretrained(folder)
    assert (folder / "README.md").read_text() == edited

    hub = Hub(monkeypatch, remote_readme=generic)
    hub.tmp = tmp_path
    model.push_to_hub("org/x", token=TOKEN)
    assert hub.front_matter()["library_name"] == "hf_simo"
    hub.remote_readme = user
    model.push_to_hub("org/x", token=TOKEN)
    assert hub.commits[-1]["README.md"].decode() == user
    # hf-simo push of a folder whose README is transformers' generic card
    (folder / "README.md").write_text(generic)
    push_folder_to_hub(folder, "org/x", token=TOKEN)
    assert hub.front_matter()["library_name"] == "hf_simo"
    assert ModelCard.load(folder / "README.md").data.library_name == "hf_simo"


def _assert_one_line(message: str, repo_id: str) -> None:
    """One line says it all (stderr may also hold progress bars of the work before)."""
    assert TOKEN not in message
    lines = [line for line in message.splitlines() if "could not reach the Hugging Face Hub" in line]
    assert len(lines) == 1 and repo_id in lines[0] and "Traceback" not in message


@pytest.mark.parametrize("cause", ["offline", "connection"])
def test_unreachable_hub_one_line_keeps_local_files(saved, tmp_path, monkeypatch, capsys, cause):
    model, folder = saved
    if cause == "offline":  # the real HfApi under HF_HUB_OFFLINE=1 (set by conftest): nothing patched
        reason = "offline mode is on (HF_HUB_OFFLINE=1)"
    else:  # the network is down; the library's message even echoes the token: it must be masked
        hub = Hub(monkeypatch, fail=ConnectError(f"[Errno -3] name resolution failed (Bearer {TOKEN})"))
        hub.tmp = tmp_path
        reason = "no connection (ConnectError: [Errno -3] name resolution failed (Bearer ***))"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    assert main(["push", str(folder), "org/x", "--token", TOKEN]) == 1
    err = capsys.readouterr().err
    _assert_one_line(err, "'org/x'")
    assert reason in err and f"the model stays in {folder}" in err and f"hf-simo push {folder} org/x" in err
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before

    with pytest.raises(PublishError) as info:
        model.save_pretrained(folder, push_to_hub=True, repo_id="org/x", token=TOKEN)
    _assert_one_line(str(info.value), "'org/x'")
    assert SimoModel.from_pretrained(folder).task_names == list(TASKS)

    with pytest.raises(PublishError) as info:
        model.push_to_hub("org/x", token=TOKEN)
    _assert_one_line(str(info.value), "'org/x'")
    assert "stays in" not in str(info.value)  # nothing was saved locally by push_to_hub

    sources = build_sources(tmp_path / "sources")
    argv = ["merge", "--base_model", str(sources[0]), "--output_dir", str(tmp_path / "merged"), "--disable_tqdm"]
    for task_folder in sources[1]:
        argv += ["--task_checkpoints", str(task_folder)]
    assert main([*argv, "--push_to_hub", "--hub_model_id", "org/merged", "--token", TOKEN]) == 1
    err = capsys.readouterr().err
    _assert_one_line(err, "'org/merged'")
    assert SimoModel.from_pretrained(tmp_path / "merged").task_names == ["segmentation", "depth", "normals"]
