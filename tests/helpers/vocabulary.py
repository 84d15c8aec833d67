"""The one vocabulary of issue 11: every option of every `hf-simo` verb and recipe before issue 11 -> its single
name, the argument dataclass that owns it, and what happens to the old spelling (from plan-11/vocabulary.py, with
the rows issues 10 and 15 added: predict's options, --wait-for-lock).

`MAPPING` keys are (the owner before issue 11 — a hand-written verb such as "hf-simo merge", or a dataclass such as
"RunArguments" — and the option's dest); values are (the one name, its owner after issue 11, the change, a note).
Changes: "same", "moved" (same name, new owner), "renamed" (the old spelling exits 2 naming the new one: the verb's
`renamed` table), "removed" (exits 2 with the replacement) and "new behaviour" (it was accepted and dropped).

`tests/test_vocabulary.py` checks that every option the code accepts *today* is covered: either by its old row
(not moved yet) or as the target of a row (moved), or as a new option; each work package updates its rows' code,
not this table. `python tests/helpers/vocabulary.py` prints the table (Markdown).
"""

from __future__ import annotations

import dataclasses
import importlib
import sys
from collections.abc import Iterator


MAPPING: dict[tuple[str, str], tuple[str, str, str, str]] = {
    # ------------------------------------------------------------------ hf-simo merge (hand-written argparse today)
    ("hf-simo merge", "tasks"): (
        "--task_checkpoints",
        "SourceArguments",
        "renamed",
        "`--task` repeated; now `--task_checkpoints A B` (repeatable, extends); `--task` means a task *name* in finetune",
    ),
    ("hf-simo merge", "base"): (
        "--base_model",
        "SourceArguments",
        "renamed",
        "mergekit's `base_model`; `NAME@REV` for its revision",
    ),
    ("hf-simo merge", "base_revision"): (
        "--base_model NAME@REV",
        "SourceArguments",
        "removed",
        "`--revision` meant the base's revision here; inline `@REV` like every source",
    ),
    ("hf-simo merge", "token"): (
        "--token",
        "HubOptions",
        "moved",
        "also reaches a push (was passed to push only here)",
    ),
    ("hf-simo merge", "cache_dir"): (
        "--cache_dir",
        "HubOptions",
        "moved",
        "dashed `--cache-dir` still accepted (HfArgumentParser alias)",
    ),
    ("hf-simo merge", "local_files_only"): ("--local_files_only", "HubOptions", "moved", ""),
    ("hf-simo merge", "allow_pickle"): ("--allow_pickle", "HubOptions", "moved", ""),
    ("hf-simo merge", "max_relative_distance"): (
        "--max_relative_distance",
        "SourceArguments",
        "moved",
        "now also on realign and relationships",
    ),
    ("hf-simo merge", "allow_distant"): (
        "--allow_distant",
        "SourceArguments",
        "moved",
        "sets max_relative_distance=None",
    ),
    ("hf-simo merge", "method"): (
        "--merge_method",
        "MergeMethodArguments",
        "renamed",
        "mergekit's `merge_method`, realign's name",
    ),
    ("hf-simo merge", "alpha"): (
        "--alpha",
        "MergeMethodArguments",
        "same",
        "default None: 1.0 for merge, tuned on validation for realign",
    ),
    ("hf-simo merge", "density"): (
        "--density",
        "MergeMethodArguments",
        "same",
        "now also a flat option of realign (was JSON only)",
    ),
    ("hf-simo merge", "scope"): ("--scope", "MergeMethodArguments", "same", ""),
    ("hf-simo merge", "aggregate"): ("--aggregate", "MergeMethodArguments", "same", ""),
    ("hf-simo merge", "seed"): (
        "--dare_seed",
        "MergeMethodArguments",
        "renamed",
        "`--seed` is the run seed of every recipe; DARE's mask seed is another concept",
    ),
    ("hf-simo merge", "rescale"): (
        "--rescale / --no_rescale",
        "MergeMethodArguments",
        "same",
        "bool | None: HfArgumentParser gives --rescale [true|false]",
    ),
    ("hf-simo merge", "sign_election"): ("--sign_election", "MergeMethodArguments", "same", ""),
    ("hf-simo merge", "gamma"): ("--gamma", "MergeMethodArguments", "same", ""),
    ("hf-simo merge", "tall_lambda"): ("--tall_lambda", "MergeMethodArguments", "same", ""),
    ("hf-simo merge", "min_agreement"): ("--min_agreement", "MergeMethodArguments", "same", ""),
    ("hf-simo merge", "base_method"): ("--base_method", "MergeMethodArguments", "same", ""),
    ("hf-simo merge", "beta"): ("--beta", "MergeMethodArguments", "same", ""),
    ("hf-simo merge", "lines_alpha"): ("--lines_alpha", "MergeMethodArguments", "same", ""),
    ("hf-simo merge", "extra_options"): (
        "--merge_options '{json}'",
        "MergeMethodArguments",
        "removed",
        "`--option K=V` -> realign's `--merge_options` JSON (a mapping in YAML)",
    ),
    ("hf-simo merge", "coefficients"): ("--coefficients", "MergeMethodArguments", "same", ""),
    ("hf-simo merge", "output_dir"): (
        "--output_dir",
        "MergeOutputArguments",
        "renamed",
        "`--output` refused (abbreviations off: allow_abbrev=False)",
    ),
    ("hf-simo merge", "dtype"): ("--dtype", "MergeOutputArguments", "same", "transformers 5 spelling"),
    ("hf-simo merge", "max_shard_size"): (
        "--max_shard_size",
        "MergeOutputArguments",
        "same",
        "save_pretrained spelling",
    ),
    ("hf-simo merge", "overwrite"): (
        "--overwrite_output_dir",
        "MergeOutputArguments",
        "renamed",
        "one name with the recipes",
    ),
    ("hf-simo merge", "push_to_hub"): (
        "--push_to_hub + --hub_model_id ORG/NAME",
        "MergeOutputArguments + PushOptions",
        "renamed",
        "transformers: push_to_hub is a flag, hub_model_id the repo; `--push_to_hub ORG/NAME` refused with that hint",
    ),
    ("hf-simo merge", "private"): ("--hub_private_repo", "PushOptions", "renamed", "TrainingArguments spelling"),
    ("hf-simo merge", "commit_message"): ("--commit_message", "PushOptions", "moved", "now on every verb that pushes"),
    ("hf-simo merge", "progress"): (
        "--disable_tqdm",
        "CommonArguments",
        "renamed",
        "`--no-progress`; also HF_HUB_DISABLE_PROGRESS_BARS=1",
    ),
    ("hf-simo merge", "wait_for_lock"): (
        "--wait_for_lock",
        "MergeOutputArguments",
        "same",
        "issue 15: wait for another merge writing the same output; dashed --wait-for-lock kept",
    ),
    # ------------------------------------------------------------------ hf-simo evaluate
    ("hf-simo evaluate", "model"): (
        "MODEL (positional) = model_name_or_path",
        "EvaluateArguments",
        "same",
        "positional declared by the verb; `model_name_or_path:` in YAML",
    ),
    ("hf-simo evaluate", "revision"): (
        "--model_revision",
        "EvaluateArguments",
        "renamed",
        "TRL/transformers-examples spelling of the revision read; bare --revision retired",
    ),
    ("hf-simo evaluate", "tasks"): ("--tasks", "EvaluateArguments", "same", "task names"),
    ("hf-simo evaluate", "dataset"): ("--dataset", "DataArguments", "moved", ""),
    ("hf-simo evaluate", "dataset_path"): ("--dataset_path", "DataArguments", "moved", ""),
    ("hf-simo evaluate", "image_size"): ("--image_size", "DataArguments", "moved", ""),
    ("hf-simo evaluate", "batch_size"): (
        "--per_device_eval_batch_size",
        "EvaluateArguments",
        "renamed",
        "transformers spelling, as RunArguments",
    ),
    ("hf-simo evaluate", "split"): ("--split", "EvaluateArguments", "same", ""),
    ("hf-simo evaluate", "samples"): (
        "--test_samples / --validation_samples",
        "DataArguments",
        "removed",
        "`--samples` sized whichever split was asked; the split sizes have one name each",
    ),
    ("hf-simo evaluate", "output"): ("--output_file", "EvaluateArguments", "renamed", "a JSON file, not a folder"),
    # ------------------------------------------------------------------ hf-simo relationships
    ("hf-simo relationships", "task"): ("--task_checkpoints", "SourceArguments", "renamed", "as merge"),
    ("hf-simo relationships", "base"): ("--base_model", "SourceArguments", "renamed", ""),
    ("hf-simo relationships", "allow_distant"): ("--allow_distant", "SourceArguments", "moved", ""),
    ("hf-simo relationships", "dataset"): ("--dataset", "DataArguments", "moved", ""),
    ("hf-simo relationships", "dataset_path"): ("--dataset_path", "DataArguments", "moved", ""),
    ("hf-simo relationships", "image_size"): ("--image_size", "DataArguments", "moved", ""),
    ("hf-simo relationships", "batch_size"): ("--per_device_eval_batch_size", "RelationshipsArguments", "renamed", ""),
    ("hf-simo relationships", "samples"): (
        "--validation_samples",
        "DataArguments",
        "renamed",
        "size of (and limit on) the validation split evaluated per point",
    ),
    ("hf-simo relationships", "lambdas"): ("--lambdas", "RelationshipsArguments", "same", ""),
    ("hf-simo relationships", "matrix_lambda"): ("--matrix_lambda", "RelationshipsArguments", "same", ""),
    ("hf-simo relationships", "output_dir"): ("--output_dir", "RelationshipsArguments", "same", "dashed alias kept"),
    ("hf-simo relationships", "no_progress"): ("--disable_tqdm", "CommonArguments", "renamed", ""),
    # ------------------------------------------------------------------ hf-simo card
    ("hf-simo card", "folder"): ("FOLDER (positional)", "CardArguments", "same", ""),
    ("hf-simo card", "results"): (
        "--results",
        "CardArguments",
        "same",
        "a realign results.json or an evaluate --output_file",
    ),
    ("hf-simo card", "dataset_name"): ("--dataset_name", "CardArguments", "same", "dashed alias kept"),
    ("hf-simo card", "repo_id"): ("--hub_model_id", "PushOptions", "renamed", "the repo id the usage snippet names"),
    ("hf-simo card", "print"): ("--print", "CardArguments", "same", ""),
    # ------------------------------------------------------------------ hf-simo push
    ("hf-simo push", "folder"): ("FOLDER (positional)", "PushArguments", "same", ""),
    ("hf-simo push", "repo_id"): (
        "REPO_ID (positional) = hub_model_id",
        "PushOptions",
        "same",
        "positional declared by the verb",
    ),
    ("hf-simo push", "token"): ("--token", "HubOptions", "moved", ""),
    ("hf-simo push", "private"): ("--hub_private_repo", "PushOptions", "renamed", ""),
    ("hf-simo push", "revision"): (
        "--hub_revision",
        "PushOptions",
        "renamed",
        "TrainingArguments.hub_revision: the branch written; bare --revision retired",
    ),
    ("hf-simo push", "commit_message"): ("--commit_message", "PushOptions", "moved", ""),
    ("hf-simo push", "create_pr"): ("--create_pr", "PushOptions", "moved", "now on every verb that pushes"),
    ("hf-simo push", "dry_run"): ("--dry_run", "PushArguments", "same", ""),
    # ------------------------------------------------------------------ DemoArguments (hf-simo demo)
    ("DemoArguments", "output_dir"): ("--output_dir", "DemoArguments", "same", ""),
    ("DemoArguments", "dataset"): ("--dataset", "DemoArguments", "same", "embedded presets only"),
    ("DemoArguments", "model_name_or_path"): (
        "--model_name_or_path",
        "DemoArguments",
        "same",
        "issue 14a: θ_0 of the fine-tunes (default the shipped encoder); forwards to Finetune/MTLArguments",
    ),
    ("DemoArguments", "pretrain_encoder"): (
        "--pretrain_encoder",
        "DemoArguments",
        "same",
        "issue 14a: pre-train a quick encoder instead of the shipped one; forwards to Finetune/MTLArguments",
    ),
    ("DemoArguments", "image_size"): ("--image_size", "DemoArguments", "same", ""),
    ("DemoArguments", "train_samples"): ("--train_samples", "DemoArguments", "same", ""),
    ("DemoArguments", "validation_samples"): ("--validation_samples", "DemoArguments", "same", ""),
    ("DemoArguments", "test_samples"): ("--test_samples", "DemoArguments", "same", ""),
    ("DemoArguments", "stage1_epochs"): (
        "--stage1_epochs",
        "DemoArguments",
        "same",
        "forwards to finetune and MTL stage1_epochs",
    ),
    ("DemoArguments", "finetune_epochs"): (
        "--finetune_epochs",
        "DemoArguments",
        "same",
        "forwards to FinetuneArguments.stage2_epochs (rule: <recipe>_<short> when the bare name is ambiguous)",
    ),
    ("DemoArguments", "mtl_epochs"): (
        "--mtl_epochs",
        "DemoArguments",
        "same",
        "forwards to MTLArguments.stage2_epochs",
    ),
    ("DemoArguments", "patience"): (
        "--stage2_patience",
        "DemoArguments",
        "renamed",
        "it is stage 2's patience of both recipes",
    ),
    ("DemoArguments", "methods"): ("--merge_methods", "DemoArguments", "renamed", "plural of merge_method"),
    ("DemoArguments", "ties_density"): (
        "--ties_density",
        "DemoArguments",
        "same",
        "density of the demo's TIES merges",
    ),
    ("DemoArguments", "alpha_grid"): (
        "--alpha_grid",
        "DemoArguments",
        "same",
        "the demo's shorter grid (no 0.7, 0.9) stays its own default, stated in its help",
    ),
    ("DemoArguments", "realign_epochs"): (
        "--realign_epochs",
        "DemoArguments",
        "same",
        "forwards to RealignArguments.num_train_epochs",
    ),
    ("DemoArguments", "realign_learning_rate"): (
        "--realign_learning_rate",
        "DemoArguments",
        "same",
        "forwards to RealignArguments.learning_rate",
    ),
    ("DemoArguments", "head_epochs"): ("--head_epochs", "DemoArguments", "same", ""),
    ("DemoArguments", "rank"): ("--rank", "DemoArguments", "same", ""),
    ("DemoArguments", "relationship_lambdas"): (
        "--relationship_lambdas",
        "DemoArguments",
        "same",
        "forwards to RelationshipsArguments.lambdas",
    ),
    ("DemoArguments", "coefficient_steps"): ("--coefficient_steps", "DemoArguments", "same", ""),
    ("DemoArguments", "qualitative_samples"): ("--qualitative_samples", "DemoArguments", "same", ""),
    ("DemoArguments", "seed"): ("--seed", "DemoArguments", "same", ""),
    ("DemoArguments", "num_threads"): ("--num_threads", "DemoArguments", "same", ""),
    ("DemoArguments", "disable_progress_bar"): ("--disable_tqdm", "CommonArguments", "renamed", ""),
    # ------------------------------------------------------------------ RealignArguments (hf-simo realign, recipes/realign.py)
    ("RealignArguments", "mode"): ("--mode", "RealignArguments", "same", "validated in __post_init__ (OptionError)"),
    ("RealignArguments", "task_checkpoints"): ("--task_checkpoints", "SourceArguments", "moved", ""),
    ("RealignArguments", "base_model"): ("--base_model", "SourceArguments", "moved", ""),
    ("RealignArguments", "merge_method"): ("--merge_method", "MergeMethodArguments", "moved", ""),
    ("RealignArguments", "merge_options"): (
        "--merge_options",
        "MergeMethodArguments",
        "moved",
        "flat --density etc. also accepted; both given = error",
    ),
    ("RealignArguments", "alpha"): ("--alpha", "MergeMethodArguments", "moved", "None = tune over --alpha_grid"),
    ("RealignArguments", "alpha_grid"): (
        "--alpha_grid",
        "RealignArguments",
        "same",
        "default = merging.search.DEFAULT_ALPHA_GRID (one constant)",
    ),
    ("RealignArguments", "allow_distant"): (
        "--allow_distant",
        "SourceArguments",
        "moved",
        "+ --max_relative_distance now",
    ),
    ("RealignArguments", "rank"): ("--rank", "RealignArguments", "same", ""),
    ("RealignArguments", "adapter"): ("--adapter", "RealignArguments", "same", ""),
    ("RealignArguments", "lora_target_modules"): ("--lora_target_modules", "RealignArguments", "same", ""),
    ("RealignArguments", "learning_rate"): ("--learning_rate", "RealignArguments", "same", ""),
    ("RealignArguments", "num_epochs"): ("--num_train_epochs", "RealignArguments", "renamed", "transformers spelling"),
    ("RealignArguments", "patience"): (
        "--early_stopping_patience",
        "RealignArguments",
        "renamed",
        "transformers EarlyStoppingCallback spelling",
    ),
    ("RealignArguments", "head_learning_rate"): ("--head_learning_rate", "RealignArguments", "same", ""),
    ("RealignArguments", "head_epochs"): ("--head_epochs", "RealignArguments", "same", ""),
    ("RealignArguments", "heldout_fraction"): ("--heldout_fraction", "RealignArguments", "same", ""),
    ("RealignArguments", "realign_samples"): (
        "--max_eval_samples",
        "DataArguments",
        "renamed",
        "same concept as DataArguments.max_eval_samples (first N validation samples); was a second name",
    ),
    ("RealignArguments", "test_samples"): (
        "--test_samples",
        "DataArguments",
        "moved",
        "embedded split size lives with train/validation sizes",
    ),
    ("RealignArguments", "eval_batch_size"): (
        "--per_device_eval_batch_size",
        "RunArguments",
        "removed",
        "was a second name next to RunArguments.per_device_eval_batch_size (which realign ignored)",
    ),
    # ------------------------------------------------------------------ EncoderArguments (recipes/pretrain_encoder.py)
    ("EncoderArguments", "hidden_size"): ("--hidden_size", "EncoderArguments", "same", "Dinov2Config spelling"),
    ("EncoderArguments", "num_hidden_layers"): ("--num_hidden_layers", "EncoderArguments", "same", ""),
    ("EncoderArguments", "num_attention_heads"): ("--num_attention_heads", "EncoderArguments", "same", ""),
    ("EncoderArguments", "mlp_ratio"): ("--mlp_ratio", "EncoderArguments", "same", ""),
    ("EncoderArguments", "patch_size"): ("--patch_size", "EncoderArguments", "same", ""),
    ("EncoderArguments", "mask_ratio"): ("--mask_ratio", "EncoderArguments", "same", ""),
    ("EncoderArguments", "mask_patch_size"): ("--mask_patch_size", "EncoderArguments", "same", ""),
    ("EncoderArguments", "norm_pix_loss"): ("--norm_pix_loss", "EncoderArguments", "same", ""),
    ("EncoderArguments", "num_epochs"): ("--num_train_epochs", "EncoderArguments", "renamed", ""),
    ("EncoderArguments", "learning_rate"): ("--learning_rate", "EncoderArguments", "same", ""),
    ("EncoderArguments", "batch_size"): (
        "--per_device_train_batch_size",
        "RunArguments",
        "removed",
        "pretrain overrode RunArguments.per_device_train_batch_size with it (accepted and dropped); RunArguments default becomes None = 16, or 64 for pretrain",
    ),
    # ------------------------------------------------------------------ FinetuneArguments / MTLArguments
    ("FinetuneArguments", "model_name_or_path"): (
        "--model_name_or_path",
        "FinetuneArguments",
        "same",
        "TRL ModelConfig spelling",
    ),
    ("FinetuneArguments", "model_revision"): (
        "--model_revision",
        "FinetuneArguments",
        "same",
        "the one read-revision name",
    ),
    ("FinetuneArguments", "encoder_config"): ("--encoder_config", "FinetuneArguments", "same", ""),
    ("FinetuneArguments", "task"): ("--task", "FinetuneArguments", "same", "a task *name* (not a checkpoint)"),
    ("FinetuneArguments", "head"): ("--head", "FinetuneArguments", "same", ""),
    ("FinetuneArguments", "head_options"): ("--head_options", "FinetuneArguments", "same", ""),
    ("FinetuneArguments", "stage1_epochs"): ("--stage1_epochs", "FinetuneArguments", "same", ""),
    ("FinetuneArguments", "stage1_learning_rate"): ("--stage1_learning_rate", "FinetuneArguments", "same", ""),
    ("FinetuneArguments", "stage1_patience"): ("--stage1_patience", "FinetuneArguments", "same", ""),
    ("FinetuneArguments", "stage2_epochs"): ("--stage2_epochs", "FinetuneArguments", "same", ""),
    ("FinetuneArguments", "stage2_learning_rate"): ("--stage2_learning_rate", "FinetuneArguments", "same", ""),
    ("FinetuneArguments", "stage2_patience"): ("--stage2_patience", "FinetuneArguments", "same", ""),
    ("MTLArguments", "model_name_or_path"): ("--model_name_or_path", "MTLArguments", "same", ""),
    ("MTLArguments", "model_revision"): ("--model_revision", "MTLArguments", "same", ""),
    ("MTLArguments", "encoder_config"): ("--encoder_config", "MTLArguments", "same", ""),
    ("MTLArguments", "tasks"): ("--tasks", "MTLArguments", "same", "task names"),
    ("MTLArguments", "head"): ("--head", "MTLArguments", "same", ""),
    ("MTLArguments", "head_options"): ("--head_options", "MTLArguments", "same", ""),
    ("MTLArguments", "stage1_epochs"): ("--stage1_epochs", "MTLArguments", "same", ""),
    ("MTLArguments", "stage1_learning_rate"): ("--stage1_learning_rate", "MTLArguments", "same", ""),
    ("MTLArguments", "stage1_patience"): ("--stage1_patience", "MTLArguments", "same", ""),
    ("MTLArguments", "stage2_epochs"): ("--stage2_epochs", "MTLArguments", "same", ""),
    ("MTLArguments", "stage2_learning_rate"): ("--stage2_learning_rate", "MTLArguments", "same", ""),
    ("MTLArguments", "stage2_patience"): ("--stage2_patience", "MTLArguments", "same", ""),
    # ------------------------------------------------------------------ DataArguments
    ("DataArguments", "dataset"): ("--dataset", "DataArguments", "same", ""),
    ("DataArguments", "dataset_path"): ("--dataset_path", "DataArguments", "same", ""),
    ("DataArguments", "image_size"): ("--image_size", "DataArguments", "same", ""),
    ("DataArguments", "train_samples"): (
        "--train_samples",
        "DataArguments",
        "same",
        "refused where no training split is built (evaluate, relationships)",
    ),
    ("DataArguments", "validation_samples"): ("--validation_samples", "DataArguments", "same", ""),
    ("DataArguments", "data_seed"): ("--data_seed", "DataArguments", "same", "TrainingArguments spelling"),
    ("DataArguments", "max_train_samples"): (
        "--max_train_samples",
        "DataArguments",
        "same",
        "realign: refused unless it trains its own single-task checkpoints",
    ),
    ("DataArguments", "max_eval_samples"): (
        "--max_eval_samples",
        "DataArguments",
        "same",
        "realign: the re-alignment set (was --realign_samples; was dropped)",
    ),
    ("DataArguments", "augment"): (
        "--augment",
        "DataArguments",
        "same",
        "realign: refused unless it trains its own single-task checkpoints",
    ),
    ("DataArguments", "dataset_cache_dir"): ("--dataset_cache_dir", "DataArguments", "same", ""),
    # ------------------------------------------------------------------ RunArguments
    ("RunArguments", "output_dir"): ("--output_dir", "RunArguments", "same", ""),
    ("RunArguments", "overwrite_output_dir"): (
        "--overwrite_output_dir",
        "RunArguments",
        "same",
        "realign: now the run-identity check (was: only model/ existence)",
    ),
    ("RunArguments", "seed"): ("--seed", "RunArguments", "same", ""),
    ("RunArguments", "per_device_train_batch_size"): (
        "--per_device_train_batch_size",
        "RunArguments",
        "new behaviour",
        "default None = 16 (64 for pretrain_encoder); pretrain no longer drops it",
    ),
    ("RunArguments", "per_device_eval_batch_size"): (
        "--per_device_eval_batch_size",
        "RunArguments",
        "new behaviour",
        "realign: now used (was dropped for --eval_batch_size)",
    ),
    ("RunArguments", "gradient_accumulation_steps"): (
        "--gradient_accumulation_steps",
        "RunArguments",
        "new behaviour",
        "default None = accelerate launch's, else 1; realign: reaches the loop; head mode refuses >1; conflict with launch = error",
    ),
    ("RunArguments", "mixed_precision"): (
        "--mixed_precision",
        "RunArguments",
        "new behaviour",
        "default None = accelerate launch's (bf16 launch now runs bf16), else 'no'; conflict = error; head mode refuses",
    ),
    ("RunArguments", "max_grad_norm"): (
        "--max_grad_norm",
        "RunArguments",
        "new behaviour",
        "realign: reaches TrainerConfig and realign_heads (was fixed 25)",
    ),
    ("RunArguments", "weight_decay"): (
        "--weight_decay",
        "RunArguments",
        "new behaviour",
        "realign representation: reaches the Stage (same 0.01 default); head mode keeps its 1e-4 as RealignArguments.head_weight_decay",
    ),
    ("RunArguments", "warmup_ratio"): (
        "--warmup_ratio",
        "RunArguments",
        "new behaviour",
        "realign: reaches the Stage and realign_heads (same 0.05 default)",
    ),
    ("RunArguments", "early_stopping_min_delta"): (
        "--early_stopping_threshold",
        "RunArguments",
        "renamed",
        "transformers EarlyStoppingCallback spelling; realign: now reaches the Stage",
    ),
    ("RunArguments", "eval_steps"): (
        "--eval_steps",
        "RunArguments",
        "new behaviour",
        "realign representation: reaches the Stage; head mode refuses",
    ),
    ("RunArguments", "checkpointing_steps"): (
        "--save_steps",
        "RunArguments",
        "renamed",
        "TrainingArguments spelling; realign: reaches the loop (issue 15 makes it save); head mode refuses a non-default",
    ),
    ("RunArguments", "checkpoints_total_limit"): (
        "--save_total_limit",
        "RunArguments",
        "renamed",
        "TrainingArguments spelling",
    ),
    ("RunArguments", "keep_checkpoints"): (
        "--keep_checkpoints",
        "RunArguments",
        "new behaviour",
        "realign: honoured (checkpoints were always deleted)",
    ),
    ("RunArguments", "logging_steps"): (
        "--logging_steps",
        "RunArguments",
        "new behaviour",
        "realign: reaches TrainerConfig",
    ),
    ("RunArguments", "log_with"): (
        "--report_to",
        "RunArguments",
        "renamed",
        "TrainingArguments spelling; realign: honoured (was hard-wired 'none')",
    ),
    ("RunArguments", "stop_after_steps"): (
        "--stop_after_steps",
        "RunArguments",
        "new behaviour",
        "realign: reaches the loop (issue 15 item 6)",
    ),
    ("RunArguments", "num_threads"): ("--num_threads", "RunArguments", "same", ""),
    ("RunArguments", "dataloader_num_workers"): (
        "--dataloader_num_workers",
        "RunArguments",
        "new behaviour",
        "realign: reaches TrainerConfig",
    ),
    ("RunArguments", "disable_progress_bar"): (
        "--disable_tqdm",
        "CommonArguments",
        "renamed",
        "TrainingArguments spelling; one switch + HF_HUB_DISABLE_PROGRESS_BARS",
    ),
    ("RunArguments", "push_to_hub"): (
        "--push_to_hub (flag) + --hub_model_id",
        "RunArguments + PushOptions",
        "renamed",
        "transformers meaning; `--push_to_hub ORG/NAME` refused with the hint",
    ),
    ("RunArguments", "hub_private_repo"): ("--hub_private_repo", "PushOptions", "moved", ""),
    # ------------------------------------------------------------------ MergeArguments (recipes/merge.py)
    ("MergeArguments", "output_dir"): ("--output_dir", "MergeOutputArguments", "moved", ""),
    ("MergeArguments", "tasks"): (
        "--task_checkpoints",
        "SourceArguments",
        "renamed",
        "`tasks` means task names elsewhere",
    ),
    ("MergeArguments", "base"): ("--base_model", "SourceArguments", "renamed", ""),
    ("MergeArguments", "base_revision"): ("--base_model NAME@REV", "SourceArguments", "removed", ""),
    ("MergeArguments", "method"): ("--merge_method", "MergeMethodArguments", "renamed", ""),
    ("MergeArguments", "alpha"): ("--alpha", "MergeMethodArguments", "moved", ""),
    ("MergeArguments", "density"): ("--density", "MergeMethodArguments", "moved", ""),
    ("MergeArguments", "scope"): ("--scope", "MergeMethodArguments", "moved", ""),
    ("MergeArguments", "aggregate"): ("--aggregate", "MergeMethodArguments", "moved", ""),
    ("MergeArguments", "seed"): ("--dare_seed", "MergeMethodArguments", "renamed", ""),
    ("MergeArguments", "rescale"): ("--rescale", "MergeMethodArguments", "moved", ""),
    ("MergeArguments", "sign_election"): ("--sign_election", "MergeMethodArguments", "moved", ""),
    ("MergeArguments", "gamma"): ("--gamma", "MergeMethodArguments", "moved", ""),
    ("MergeArguments", "tall_lambda"): ("--tall_lambda", "MergeMethodArguments", "moved", ""),
    ("MergeArguments", "min_agreement"): ("--min_agreement", "MergeMethodArguments", "moved", ""),
    ("MergeArguments", "base_method"): ("--base_method", "MergeMethodArguments", "moved", ""),
    ("MergeArguments", "beta"): ("--beta", "MergeMethodArguments", "moved", ""),
    ("MergeArguments", "lines_alpha"): ("--lines_alpha", "MergeMethodArguments", "moved", ""),
    ("MergeArguments", "coefficients"): ("--coefficients", "MergeMethodArguments", "moved", ""),
    ("MergeArguments", "dtype"): ("--dtype", "MergeOutputArguments", "moved", ""),
    ("MergeArguments", "token"): ("--token", "HubOptions", "moved", ""),
    ("MergeArguments", "cache_dir"): ("--cache_dir", "HubOptions", "moved", ""),
    ("MergeArguments", "local_files_only"): ("--local_files_only", "HubOptions", "moved", ""),
    ("MergeArguments", "allow_pickle"): ("--allow_pickle", "HubOptions", "moved", ""),
    ("MergeArguments", "max_relative_distance"): (
        "--max_relative_distance",
        "SourceArguments",
        "moved",
        "+ --allow_distant (recipe had no way to say None from the command line)",
    ),
    ("MergeArguments", "max_shard_size"): ("--max_shard_size", "MergeOutputArguments", "moved", ""),
    ("MergeArguments", "overwrite"): ("--overwrite_output_dir", "MergeOutputArguments", "renamed", ""),
    ("MergeArguments", "wait_for_lock"): ("--wait_for_lock", "MergeOutputArguments", "moved", "issue 15"),
    ("MergeArguments", "push_to_hub"): (
        "--push_to_hub + --hub_model_id",
        "MergeOutputArguments + PushOptions",
        "renamed",
        "",
    ),
    ("MergeArguments", "private"): ("--hub_private_repo", "PushOptions", "renamed", ""),
    ("MergeArguments", "commit_message"): ("--commit_message", "PushOptions", "moved", ""),
    ("MergeArguments", "progress"): ("--disable_tqdm", "CommonArguments", "renamed", ""),
    # ------------------------------------------------------------------ hf-simo predict (issue 10)
    ("hf-simo predict", "model"): (
        "MODEL (positional) = model_name_or_path",
        "PredictArguments",
        "same",
        "positional declared by the verb; `model_name_or_path:` in YAML",
    ),
    ("hf-simo predict", "images"): ("IMAGE... (positional) = images", "PredictArguments", "same", "image files"),
    ("hf-simo predict", "output_dir"): ("--output_dir", "PredictArguments", "same", "dashed --output-dir kept"),
    ("hf-simo predict", "tasks"): ("--tasks", "PredictArguments", "same", "task names"),
    ("hf-simo predict", "revision"): (
        "--model_revision",
        "PredictArguments",
        "renamed",
        "the revision read of MODEL; bare --revision retired",
    ),
    ("hf-simo predict", "device"): ("--device", "PredictArguments", "same", ""),
    ("hf-simo predict", "batch_size"): (
        "--per_device_eval_batch_size",
        "PredictArguments",
        "renamed",
        "transformers spelling, as evaluate",
    ),
    ("hf-simo predict", "no_progress"): ("--disable_tqdm", "CommonArguments", "renamed", ""),
    # ------------------------------------------------------------------ top level
    ("hf-simo", "debug"): (
        "--debug",
        "CommonArguments",
        "moved",
        "top-level `hf-simo --debug VERB` and `VERB --debug` (recipes too): traceback of a SimoError",
    ),
    ("hf-simo", "version"): ("--version", "cli (top level)", "same", ""),
}

NEW_OPTIONS = [
    (
        "--head / --head_options",
        "DemoArguments",
        "issue 14: the preset's heads (nyuv2 linear, taskonomy DPT, fusion width 64), forwarded to fine-tuning and MTL",
    ),
    (
        "--num_threads",
        "MergeOutputArguments",
        "torch threads for the merge (issue 12); default all cores (torch's default); same output for any count",
    ),
    (
        "--config x.yaml",
        "every verb and recipe (SimoArgumentParser)",
        "YAML sets defaults, command line overrides (TRL's TrlParser semantics); the old single `x.yaml` argument still works",
    ),
    (
        "--log_level",
        "CommonArguments",
        "debug/info/warning/error/critical (transformers spelling); default info for verbs/recipes; HF_SIMO_VERBOSITY env",
    ),
    ("--model_revision", "EvaluateArguments, PredictArguments", "read revision of MODEL"),
    (
        "--token / --cache_dir / --local_files_only",
        "HubOptions on hf-simo predict",
        "predict reads MODEL from the Hub (allow_pickle refused: SimoModel loads safetensors only)",
    ),
    (
        "--hub_model_id / --hub_revision / --create_pr",
        "PushOptions",
        "on every verb that can push (merge, realign, finetune, train_mtl, pretrain_encoder, push)",
    ),
    (
        "--token / --cache_dir / --local_files_only / --allow_pickle",
        "HubOptions",
        "now on realign, relationships, evaluate, finetune, train_mtl (reading sources); push uses --token only (others refused there)",
    ),
    (
        "--density ... --lines_alpha, --dare_seed, --coefficients",
        "MergeMethodArguments",
        "now flat options of realign too",
    ),
    ("--max_relative_distance", "SourceArguments", "now on realign and relationships"),
    ("--head_weight_decay", "RealignArguments", "head re-alignment's AdamW weight decay (1e-4, today hard-wired)"),
    (
        "--feature_cache_dtype",
        "RealignArguments",
        "issue 12: storage dtype of head re-alignment's feature cache (float32; bfloat16/float16 halve it)",
    ),
    # issue 14 (the shipped encoder, fine-tuning as practised)
    (
        "--pretrain_encoder / --model_name_or_path",
        "DemoArguments",
        "the demo fine-tunes from the shipped encoder, a given one, or one it pre-trains",
    ),
    ("--pretrain_encoder", "FinetuneArguments, MTLArguments", "pre-train a quick encoder instead of the shipped one"),
    (
        "--stage2_encoder_learning_rate / --layer_decay",
        "FinetuneArguments, MTLArguments",
        "the encoder's own stage-2 learning rate and layer-wise decay",
    ),
    ("--early_stopping_patience", "EncoderArguments", "pre-training stops at a validation plateau"),
    (
        "--run_dir / --destination / --max_megabytes / --from_checkpoint / --provisional / --note",
        "ShipEncoderArguments",
        "recipes/ship_encoder.py: a pre-training run -> the shipped encoder",
    ),
    # issue 13 (importers and exporters)
    (
        "--model_name_or_path / --model_revision / --task / --output_dir / --overwrite_output_dir",
        "ExportArguments",
        "hf-simo export MODEL --task depth --output_dir DIR (a new verb)",
    ),
    (
        "--token / --cache_dir / --local_files_only / --allow_pickle",
        "HubOptions on hf-simo export",
        "export reads MODEL from the Hub",
    ),
    (
        "--task",
        "EvaluateArguments",
        "hf-simo evaluate of a transformers DPT-DINOv2 / Depth Anything MODEL: the task it is imported as, and the "
        "dataset column it is scored on (a task *name*, as in finetune and export)",
    ),
]


CHANGES = {"same", "moved", "renamed", "removed", "new behaviour"}
# the verbs and recipes, and the module that declares each (its `Command` as COMMAND, or the attribute named)
ENTRIES = {
    "hf-simo demo": "hf_simo.cli.demo",
    "hf-simo merge": "hf_simo.cli.merge",
    "hf-simo realign, recipes/realign.py": "hf_simo.cli.realign",
    "hf-simo evaluate": "hf_simo.cli.evaluate",
    "hf-simo relationships": "hf_simo.cli.relationships",
    "hf-simo card": "hf_simo.cli.card",
    "hf-simo push": "hf_simo.cli.push",
    "hf-simo predict": "hf_simo.cli.predict",
    "hf-simo export": "hf_simo.cli.export",
    "recipes/merge.py": "hf_simo.cli.merge:RECIPE",
    "recipes/finetune.py": "hf_simo.cli.finetune",
    "recipes/train_mtl.py": "hf_simo.cli.train_mtl",
    "recipes/pretrain_encoder.py": "hf_simo.cli.pretrain_encoder",
    "recipes/ship_encoder.py": "hf_simo.cli.ship_encoder",
}
RUNNER_OPTIONS = {"config"}  # --config, added by SimoArgumentParser to every dataclass command (a new option)


def command_of(entry: str):
    """The `Command` of an entry (every verb and recipe is generated from its dataclasses)."""
    module_name, _, attribute = ENTRIES[entry].partition(":")
    return getattr(importlib.import_module(module_name), attribute or "COMMAND")


def current_options() -> Iterator[tuple[str, str, str]]:
    """(entry, owner dataclass, dest) for every option accepted today, plus the top-level ones."""
    from hf_simo.utils.logging import CommonArguments

    yield ("hf-simo", "hf-simo", "debug")
    yield ("hf-simo", "hf-simo", "version")
    for entry in ENTRIES:
        for cls in (*command_of(entry).arguments, CommonArguments):
            for f in dataclasses.fields(cls):
                yield (entry, cls.__name__, f.name)


def targets() -> set[tuple[str, str]]:
    """(owner after issue 11, dest) of every row's one name, and of the new options."""
    out = set()
    for name, owner, _, _ in MAPPING.values():
        names, owners = name.split(" + "), [o.strip() for o in owner.split(" + ")]
        pairs = zip(names, owners) if len(names) == len(owners) else ((n, o) for n in names for o in owners)
        for part, part_owner in pairs:
            if "(positional)" in part:
                dest = part.split("=")[-1].strip() if "=" in part else part.split()[0].lower()
            else:
                dest = part.split()[0].lstrip("-")
            out.add((part_owner, dest.split("/")[0].strip()))
    for name, owner, _ in NEW_OPTIONS:  # "--a / --b" owned by the dataclasses named in `owner`
        classes = [w.strip(",()") for w in owner.split() if w.strip(",()").endswith(("Arguments", "Options"))]
        for option in (w.strip(",") for w in name.replace("/", " ").split() if w.startswith("--")):
            out |= {(cls, option.lstrip("-")) for cls in classes}
    return out


def main() -> int:
    print("| before (owner: option) | one name | owner after issue 11 | change | note |")
    print("|---|---|---|---|---|")
    for (key, dest), (name, owner, change, note) in MAPPING.items():
        print(f"| {key}: `{dest}` | `{name}` | {owner} | {change} | {note} |")
    print()
    print("| new option | owner | what |")
    print("|---|---|---|")
    for name, owner, what in NEW_OPTIONS:
        print(f"| `{name}` | {owner} | {what} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
