"""Helpers shared by the test modules (importable as `helpers`: pytest puts `tests/` on `sys.path` for the rootdir
conftest). Test modules import builders from here, never from `conftest` or from another test module.

- `helpers.tiny`: tiny DINOv2 configs and SimoModels, random labels;
- `helpers.hub`: the offline Hub cache, a fake `HfApi`, and `forbid_hub_calls`;
- `helpers.checkpoints`: a tiny base and single-task checkpoints fine-tuned from it (the merge tests' sources);
- `helpers.processes`: a subprocess held at a `hf_simo.crashpoints` pause point (crash tests);
- `helpers.relationships`, `helpers.recipes`: a hand-made relationship result; loading a recipe script;
- `helpers.options`: the check that every option of a verb is covered by an options-reach table;
- `helpers.import_graph`, `helpers.vocabulary`: the architecture test's import graph and issue 11's vocabulary.
"""
