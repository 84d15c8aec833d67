"""`hf-simo demo` end to end at a tiny scale: every stage runs, writes its files, and a second run reuses them."""

import json

from huggingface_hub import ModelCard

from hf_simo.cli import main


TINY = [
    "--image_size", "32",
    "--train_samples", "64",
    "--validation_samples", "20",
    "--test_samples", "8",
    "--alpha_grid", "0.5", "1.0",
    "--realign_epochs", "2",
    "--head_epochs", "2",
    "--relationship_lambdas", "0", "1",
    "--coefficient_steps", "3",
    "--qualitative_samples", "2",
    "--disable_tqdm",
]  # fmt: skip

ROWS = [
    "Single-task",
    "MTL",
    "TA",
    "TA + head re-align",
    "TA + repr. re-align",
    "TIES",
    "TIES + head re-align",
    "TIES + repr. re-align",
]


def test_demo_runs_every_stage_then_reuses_them(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--output_dir", str(out), *TINY]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert list(results["results"]) == ROWS
    table = (out / "results.md").read_text()
    for row in ROWS:
        assert f"| {row} |" in table
    assert "steps" in table and "trained params" in table and "samples" in table  # Table 4's columns
    for name in ("relationships", "relationship_matrix", "combinations", "layer_coefficients", "qualitative"):
        for suffix in (".png", ".svg"):
            assert (out / "figures" / f"{name}{suffix}").stat().st_size > 0
    vectors = results["task_vectors"]  # ‖τ‖/‖θ0‖ and cosines of every fine-tuned encoder, shown in the output
    assert set(vectors["tau_ratio"]) == {"segmentation", "depth", "normals", "MTL"}
    assert all(v > 0 for v in vectors["tau_ratio"].values())
    assert abs(vectors["cosine"]["depth"]["depth"] - 1) < 1e-9 and abs(vectors["cosine"]["depth"]["normals"]) < 1
    assert "‖τ‖/‖θ0‖" in printed and "‖τ‖/‖θ0‖" in (out / "task_vectors.md").read_text()
    combinations = json.loads((out / "combinations.json").read_text())  # Figure 1: every k-task combination
    assert [len(c["tasks"]) for c in combinations["combinations"]] == [1, 1, 1, 2, 2, 2, 3]
    assert all(c["alpha"] in (0.5, 1.0) for c in combinations["combinations"])
    assert combinations["baselines"] == {
        t: results["results"]["Single-task"][t][m] for t, m in combinations["metric_names"].items()
    }  # normalized against the single-task models on the test split
    assert "Figure 1" in printed and "| 3 | 1 |" in (out / "combinations.md").read_text()
    coefficients = json.loads((out / "layer_coefficients.json").read_text())
    assert set(coefficients["coefficients"]) == {"segmentation", "depth", "normals"}
    card = ModelCard.load(out / "models" / "ta-representation" / "model" / "README.md")
    assert card.data.eval_results and "re-aligned" in card.text.lower()
    assert "Files written:" in printed and str(out / "results.md") in printed

    first = results["timings"]
    assert main(["demo", "--output_dir", str(out), *TINY]) == 0
    again = json.loads((out / "results.json").read_text())
    assert again["results"] == results["results"]  # same numbers, from the cached stages
    second = again["timings"]
    assert second["TA + repr. re-align"] < first["TA + repr. re-align"]  # not retrained


def test_demo_refuses_what_is_not_an_embedded_preset_or_a_head(tmp_path, capsys):
    assert main(["demo", "--output_dir", str(tmp_path / "d"), "--dataset", "nyuv2_real"]) == 1
    err = capsys.readouterr().err
    assert "--dataset must be an embedded benchmark preset (nyuv2, taskonomy)" in err and "nyuv2_real" in err
    assert main(["demo", "--output_dir", str(tmp_path / "d"), "--head", "mlp"]) == 1
    assert "--head must be linear or dpt, got 'mlp'" in capsys.readouterr().err
    assert main(["demo", "--output_dir", str(tmp_path / "d"), "--head", "dpt", "--head_options", "{fusion: 8"]) == 1
    assert "--head_options must be a JSON object" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()  # refused before anything is written
