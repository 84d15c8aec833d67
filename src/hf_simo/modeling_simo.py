"""`SimoModel`: one DINOv2-family encoder, one pass, every task's head.

The forward is split in two so re-alignment can reuse it: `encode` runs the encoder once and returns the
layer-normed hidden states every head needs, `decode` runs the heads on them and brings each prediction to the
input resolution. A model with one task is the single-task checkpoint format; merging stacks their heads.
The encoder is a `Dinov2Model`, `Dinov2WithRegistersModel` or `DINOv3ViTModel`, picked by the backbone config's
`model_type` (`hf_simo.encoder_families`); it is the `dinov2` attribute in every family.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers.utils import ModelOutput

from .block_adapters import attach_block_adapters, validate_rank
from .configuration_simo import SimoConfig, TaskSpec
from .encoder_families import ENCODER_FAMILIES, EncoderFamily, encoder_family, num_prefix_tokens
from .errors import DataError, UnknownTaskError
from .heads import build_head
from .hub import CheckpointError, resolve_repo, safetensors_files
from .image_processing_simo import make_image_processor
from .losses import task_loss, unit_vectors
from .modeling_outputs import DEPTH_KINDS, TaskOutput, task_output
from .weights import check_checkpoint_matches_config


@dataclass
class SimoEncoding(ModelOutput):
    """What the encoder computed once for all heads.

    features: feature key -> hidden states (B, 1 + h*w, C), CLS token first, register tokens left out: +i the
        layer-normed output of block i (1-based), -i its raw output (`configuration_simo.feature_key`).
    grid: the patch grid (h, w). padding: (top, bottom, left, right) pixels added to reach a patch multiple.
    """

    features: dict[int, torch.Tensor] | None = None
    grid: tuple[int, int] | None = None
    padding: tuple[int, int, int, int] | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class SimoModelOutput(ModelOutput):
    """Per-task predictions at the input resolution and, with labels, per-task losses and their unweighted mean.

    predictions: task -> (B, K, H, W) logits for segmentation, (B, C, H, W) values otherwise (unit vectors for
        surface normals); what losses and metrics read.
    task_outputs: task -> the same prediction as transformers' standard output of its kind
        (`SemanticSegmenterOutput.logits`, `DepthEstimatorOutput.predicted_depth` (B, H, W), `SurfaceNormalsOutput`,
        `DenseRegressionOutput`; see `hf_simo.modeling_outputs`), so `post_process_*` of image processors read them.
    logits / predicted_depth: the segmentation logits / the (B, H, W) depth when exactly one task of the run is a
        segmentation / a depth or disparity task, so `processor.post_process_semantic_segmentation(out)` and
        `processor.post_process_depth_estimation(out)` work on the whole output as on a DPT model's; else None.
    """

    loss: torch.Tensor | None = None
    task_losses: dict[str, torch.Tensor] | None = None
    predictions: dict[str, torch.Tensor] | None = None
    task_outputs: dict[str, TaskOutput] | None = None
    logits: torch.Tensor | None = None
    predicted_depth: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class SimoPreTrainedModel(PreTrainedModel):
    config_class = SimoConfig
    config: SimoConfig
    base_model_prefix = "dinov2"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = [  # every family's embeddings and blocks (`Dinov2Layer`, `DINOv3ViTLayer`, ...)
        f"{family.model_class.removesuffix('Model')}{part}"
        for family in ENCODER_FAMILIES.values()
        for part in ("Embeddings", "Layer")
    ]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True


class SimoModel(SimoPreTrainedModel):
    """A DINOv2-family encoder shared by a `ModuleDict` of dense-prediction heads, one per task.

    Example:

    ```python
    >>> from hf_simo import SimoModel
    >>> model = SimoModel.from_pretrained("org/nyuv2-merged")
    >>> out = model(pixel_values)                      # one encoder pass, every task
    >>> out.predictions["depth"].shape                 # (B, 1, H, W)
    >>> out = model(pixel_values, labels={"depth": depth})  # + task_losses and their mean in out.loss
    ```
    """

    def __init__(self, config: SimoConfig):
        super().__init__(config)
        self.dinov2 = encoder_family(config.backbone_config).build(config.backbone_config)
        # Never used without masked-image pre-training; frozen so DDP does not wait for its gradient.
        if getattr(self.dinov2.embeddings, "mask_token", None) is not None:
            self.dinov2.embeddings.mask_token.requires_grad_(False)
        self.heads = nn.ModuleDict(
            {name: build_head(spec, config.backbone_config) for name, spec in config.task_specs.items()}
        )
        self.post_init()
        if config.block_adapter is not None:  # after post_init: adapters start at identity, not random
            attach_block_adapters(
                self.encoder_blocks(),
                config.block_adapter,
                config.backbone_config.hidden_size,
                config.block_adapter_rank,
            )

    # ------------------------------------------------------------------ constructors

    @classmethod
    def from_backbone(
        cls,
        backbone: str | os.PathLike | PreTrainedModel,
        tasks: dict[str, TaskSpec | dict[str, Any]],
        *,
        revision: str | None = None,
        token: str | bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        local_files_only: bool = False,
        allow_pickle: bool = False,
        **config_kwargs,
    ) -> SimoModel:
        """Pre-trained encoder (Hub id, folder, or a `Dinov2Model` / `Dinov2WithRegistersModel` / `DINOv3ViTModel`)
        + freshly initialised heads for `tasks`.

        The encoder's id and resolved commit are recorded as `config.base_model_name_or_path` /
        `base_model_revision`, the θ_0 that merging subtracts.
        """
        base_name, base_revision = None, None
        if is_encoder_model(backbone):
            encoder = backbone
            base_name = backbone.config.name_or_path or None
        elif isinstance(backbone, (str, os.PathLike)):
            resolved = resolve_repo(
                backbone,
                revision,
                token=token,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                allow_pickle=allow_pickle,
            )
            safetensors_files(resolved.path, source=resolved.describe(), allow_pickle=allow_pickle)
            encoder = load_dinov2_encoder(resolved.path, source=resolved.describe(), allow_pickle=allow_pickle)
            base_name, base_revision = resolved.name_or_path, resolved.commit or resolved.revision
        else:
            classes = ", ".join(f.model_class for f in ENCODER_FAMILIES.values())
            raise TypeError(f"backbone must be a Hub id, a folder or one of {classes}, got {type(backbone).__name__}")
        config = SimoConfig(
            backbone_config=encoder.config.to_dict(),
            tasks=tasks,
            base_model_name_or_path=config_kwargs.pop("base_model_name_or_path", base_name),
            base_model_revision=config_kwargs.pop("base_model_revision", base_revision),
            **config_kwargs,
        )
        model = cls(config)
        model.dinov2.load_state_dict(encoder.state_dict())
        return model

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: str | os.PathLike,
        *model_args,
        tasks: list[str] | None = None,
        allow_pickle: bool = False,
        task: str | None = None,
        **kwargs,
    ) -> SimoModel:
        """`PreTrainedModel.from_pretrained`, safetensors only unless `allow_pickle=True`, and strict.

        The checkpoint is resolved through `hf_simo.hub.resolve_repo` (a folder, or a Hub repo id with `revision`,
        `token`, `cache_dir`, `local_files_only`; offline mode honoured), then checked against its config before
        any weight is loaded: a head without weights, weights of a head the config does not declare or a tensor
        of the wrong shape is an error that names the task, not a warning followed by random weights.
        `tasks` keeps a subset of the heads. A transformers checkpoint hf_simo imports (DPT-DINOv2, Depth Anything
        v1/v2; `hf_simo.interop`) loads as a single-task model whose task is named `task` (e.g. `task="depth"`).
        """
        if kwargs.get("use_safetensors") is False and not allow_pickle:
            raise ValueError("use_safetensors=False loads pickle weights; pass allow_pickle=True to allow it")
        if kwargs.get("subfolder"):
            raise ValueError("subfolder is not supported; pass the folder that holds config.json directly")
        hub = {k: kwargs.pop(k) for k in ("revision", "token", "cache_dir", "local_files_only") if k in kwargs}
        resolved = resolve_repo(
            pretrained_model_name_or_path,
            hub.get("revision"),
            token=hub.get("token"),
            cache_dir=hub.get("cache_dir"),
            local_files_only=hub.get("local_files_only", False),
            allow_pickle=allow_pickle,
        )
        source = resolved.describe()
        files = safetensors_files(resolved.path, source=source, allow_pickle=allow_pickle)
        if task is not None or _config_model_type(resolved.path) not in ("simo", None):
            if tasks is not None:
                raise CheckpointError(
                    f"{source}: tasks= selects heads of a SimoModel; name an imported task with task="
                )
            return cls._from_imported(resolved, task, files, allow_pickle)
        config = kwargs.pop("config", None) or SimoConfig.from_pretrained(resolved.path)
        if not isinstance(config, SimoConfig):
            raise CheckpointError(
                f"{source} is a {config.model_type!r} checkpoint, not a SimoModel (model_type 'simo')"
            )
        if tasks is not None:
            unknown = [t for t in tasks if t not in config.tasks]
            if unknown:
                raise UnknownTaskError(f"unknown task(s) {unknown}: {source} has tasks {config.task_names}")
        if files:
            check_checkpoint_matches_config(cls, config, files, source)
            kwargs["use_safetensors"] = True
        model = super().from_pretrained(resolved.path, *model_args, config=config, **kwargs)
        if isinstance(model, tuple):  # output_loading_info=True
            model[0].config.name_or_path = resolved.name_or_path
        else:
            model.config.name_or_path = resolved.name_or_path
        loaded = model[0] if isinstance(model, tuple) else model
        if tasks is not None:
            loaded.select_tasks(list(tasks))
        freeze_unused_parameters(loaded)  # from_pretrained re-enables every gradient; DDP needs these off
        return model

    @classmethod
    def from_task_source(cls, name_or_path: str | os.PathLike, task: str, **kwargs) -> SimoModel:
        """A task source as merging reads it: a SimoModel checkpoint as is, a transformers checkpoint hf_simo imports
        (DPT-DINOv2, Depth Anything) as the task `task` (the realign and relationships jobs' single-task models)."""
        hub = {k: kwargs[k] for k in ("revision", "token", "cache_dir", "local_files_only") if k in kwargs}
        resolved = resolve_repo(name_or_path, hub.pop("revision", None), **hub)
        if _config_model_type(resolved.path) in ("simo", None):
            return cls.from_pretrained(name_or_path, **kwargs)
        return cls.from_pretrained(name_or_path, task=task, **kwargs)

    @classmethod
    def _from_imported(cls, resolved, task: str | None, files, allow_pickle: bool) -> SimoModel:
        from transformers.initialization import no_init_weights

        from .interop.loading import imported_model_state

        config, state, provenance = imported_model_state(resolved.path, task, resolved.describe(), files, allow_pickle)
        with no_init_weights():
            model = cls(config)
        model.load_state_dict(state, strict=True)
        model.config.name_or_path = resolved.name_or_path
        model.config.sources = {
            task: {"name_or_path": resolved.name_or_path, "revision": resolved.revision, "commit": resolved.commit}
            | provenance
        }
        freeze_unused_parameters(model)
        return model.eval()

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        *args,
        image_processor=None,
        model_card: bool | dict[str, Any] = True,
        push_to_hub: bool = False,
        repo_id: str | None = None,
        token: str | None = None,
        private: bool | None = None,
        revision: str | None = None,
        commit_message: str | None = None,
        commit_description: str | None = None,
        create_pr: bool = False,
        **kwargs,
    ):
        """`PreTrainedModel.save_pretrained` (safetensors) + the image processor users need to prepare inputs
        (default: `make_image_processor(self.config)`) and hf_simo's model card (`README.md`).

        The card is written unless `model_card=False` (a dict passes options to `hf_simo.cards.write_model_card`:
        `repo_id`, `eval_results`, `dataset_name`, ...); an existing README is replaced only when it is
        transformers' generic card or hf_simo's card of another config (`hf_simo.cards.card_needs_writing`), never
        when you wrote it. `push_to_hub=True` then publishes the whole folder through `hf_simo.publishing
        .push_folder_to_hub` (as `hf-simo push` does) to `repo_id` (default: the folder's name).
        """
        super().save_pretrained(save_directory, *args, **kwargs)
        if not kwargs.get("is_main_process", True):
            return
        (image_processor or make_image_processor(self.config)).save_pretrained(save_directory)
        card_options = dict(model_card) if isinstance(model_card, dict) else {}
        if push_to_hub and repo_id and "repo_id" not in card_options and "/" in repo_id:
            card_options["repo_id"] = repo_id
        if model_card is not False:
            from .cards import refresh_model_card

            refresh_model_card(save_directory, self.config, **card_options)
        if push_to_hub:
            from .publishing import push_folder_to_hub

            return push_folder_to_hub(
                save_directory,
                repo_id or Path(save_directory).resolve().name,
                token=token,
                private=bool(private),
                revision=revision,
                commit_message=commit_message,
                commit_description=commit_description,
                create_pr=create_pr,
            )
        return None

    def push_to_hub(
        self,
        repo_id: str,
        *,
        commit_message: str | None = None,
        commit_description: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        revision: str | None = None,
        create_pr: bool = False,
        max_shard_size: int | str | None = "50GB",
        tags: list[str] | None = None,
    ):
        """Publish the model as `hf-simo push` does: weights, image processor and hf_simo's card (with
        `library_name: hf_simo`), saved into a temporary folder first. The repo's README is kept when its owner
        wrote it. Returns a `hf_simo.publishing.PushResult` (`commit_url`, `oid`, `pr_url` as transformers'
        `CommitInfo`)."""
        from .publishing import push_model_to_hub

        return push_model_to_hub(
            self,
            repo_id,
            token=token,
            private=private,
            revision=revision,
            commit_message=commit_message,
            commit_description=commit_description,
            create_pr=create_pr,
            max_shard_size=max_shard_size,
            tags=tags,
        )

    def enable_block_adapters(self, kind: str = "linear", rank: int | None = None) -> SimoModel:
        """Add identity-initialised adapters after every encoder block, in place (see `hf_simo.block_adapters`)."""
        if self.config.block_adapter is not None:
            raise ValueError(f"this model already has {self.config.block_adapter!r} block adapters")
        hidden = self.config.backbone_config.hidden_size
        if kind == "relu":
            validate_rank(rank, hidden)
        attach_block_adapters(self.encoder_blocks(), kind, hidden, rank)
        self.encoder_blocks().to(device=self.device, dtype=self.dtype)
        self.config.block_adapter = kind
        self.config.block_adapter_rank = rank if kind == "relu" else None
        return self

    @property
    def encoder_family(self) -> EncoderFamily:
        """The family of the encoder (`hf_simo.encoder_families`), from `config.backbone_config.model_type`."""
        return encoder_family(self.config.backbone_config)

    def encoder_blocks(self) -> nn.ModuleList:
        """The encoder's transformer blocks, in order (where block adapters go)."""
        return self.encoder_family.block_modules(self.dinov2)

    # ------------------------------------------------------------------ tasks

    @property
    def task_names(self) -> list[str]:
        return list(self.heads.keys())

    def add_task(self, name: str, spec: TaskSpec | dict[str, Any]) -> None:
        """Add a freshly initialised head for a new task."""
        if name in self.heads:
            raise ValueError(f"task {name!r} already exists; drop it first to replace its head")
        tasks = {**self.config.tasks, name: spec}
        new_config = self.config.with_tasks(tasks)
        head = build_head(new_config.get_task(name), self.config.backbone_config)
        head.apply(self._init_weights)
        self.heads[name] = head.to(device=self.device, dtype=self.dtype)
        self.config.tasks = new_config.tasks
        self.config.sync_label_maps()

    def select_tasks(self, names: list[str]) -> SimoModel:
        """Keep only the heads of `names` (in that order), in place."""
        self.check_task_names(names)
        self.heads = nn.ModuleDict({name: self.heads[name] for name in names})
        self.config.tasks = {name: self.config.tasks[name] for name in names}
        self.config.sync_label_maps()
        return self

    def drop_tasks(self, names: list[str]) -> SimoModel:
        """Remove the heads of `names`, in place."""
        self.check_task_names(names)
        return self.select_tasks([name for name in self.task_names if name not in set(names)])

    def check_task_names(self, names) -> None:
        """`UnknownTaskError` (a `KeyError`) naming the tasks of `names` this model does not have."""
        if isinstance(names, str):
            raise TypeError(f"expected a list of task names, got the string {names!r}")
        unknown = [name for name in names if name not in self.heads]
        if unknown:
            raise UnknownTaskError(f"unknown task(s) {unknown}; this model has tasks {self.task_names}")

    # ------------------------------------------------------------------ forward

    def encode(
        self,
        pixel_values: torch.Tensor,
        layers: list[int] | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
    ) -> SimoEncoding:
        """One encoder pass: layer-normed hidden states of `layers` (default: all blocks any head reads)."""
        self._check_pixel_values(pixel_values)
        layers = self.config.feature_layers() if layers is None else sorted(set(layers))
        patch = _as_pair(self.config.backbone_config.patch_size)
        height, width = pixel_values.shape[-2:]
        padding = (0, 0, 0, 0)
        if self.config.pad_to_patch_multiple:
            pad_h, pad_w = (-height) % patch[0], (-width) % patch[1]
            if pad_h or pad_w:
                padding = (pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2)
                pixel_values = F.pad(pixel_values, (padding[2], padding[3], padding[0], padding[1]))
        grid = (pixel_values.shape[-2] // patch[0], pixel_values.shape[-1] // patch[1])
        outputs = self.dinov2(
            pixel_values, output_hidden_states=True, output_attentions=bool(output_attentions), return_dict=True
        )
        # feature keys: +i = final-norm(hidden_states[i]), -i = the raw output of block i (configuration_simo);
        # register tokens (between CLS and the patches) are dropped, so every head reads CLS + the patch grid
        norm = self.encoder_family.norm_module(self.dinov2)
        prefix = num_prefix_tokens(self.config.backbone_config)
        features = {}
        for key in layers:
            tokens = norm(outputs.hidden_states[key]) if key > 0 else outputs.hidden_states[-key]
            features[key] = tokens if prefix == 1 else torch.cat([tokens[:, :1], tokens[:, prefix:]], dim=1)
        return SimoEncoding(
            features=features,
            grid=grid,
            padding=padding,
            hidden_states=outputs.hidden_states if output_hidden_states else None,
            attentions=outputs.attentions if output_attentions else None,
        )

    def decode(
        self, encoding: SimoEncoding, tasks: list[str] | None = None, output_size: tuple[int, int] | None = None
    ) -> dict[str, torch.Tensor]:
        """Run the heads on an encoding; predictions at `output_size` (default: the un-padded input size)."""
        tasks = self.task_names if tasks is None else list(tasks)
        self.check_task_names(tasks)
        top, bottom, left, right = encoding.padding or (0, 0, 0, 0)
        patch = _as_pair(self.config.backbone_config.patch_size)
        padded = (encoding.grid[0] * patch[0], encoding.grid[1] * patch[1])
        predictions = {}
        for name in tasks:
            out = self.heads[name](encoding.features, encoding.grid)
            if out.shape[-2:] != padded:
                out = F.interpolate(out, size=padded, mode="bilinear", align_corners=False)
            out = out[..., top : padded[0] - bottom, left : padded[1] - right]
            if output_size is not None and tuple(out.shape[-2:]) != tuple(output_size):
                out = F.interpolate(out, size=tuple(output_size), mode="bilinear", align_corners=False)
            if self.config.tasks[name]["kind"] == "surface_normals":
                out = unit_vectors(out)
            predictions[name] = out
        return predictions

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: dict[str, torch.Tensor] | None = None,
        tasks: list[str] | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> SimoModelOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch_size, num_channels, height, width)`):
            Normalized images (see the saved image processor). Any size of at least one patch.
        labels (`dict[str, torch.Tensor]`, *optional*):
            Task -> labels at the input resolution: `(B, H, W)` integer class ids for segmentation, `(B, C, H, W)`
            floats otherwise (`(B, H, W)` is accepted for one channel). Invalid pixels carry the task's
            `ignore_index` / `invalid_value`. Losses are computed for the tasks present.
        tasks (`list[str]`, *optional*):
            Run only these heads (default: all).
        """
        if kwargs:
            raise TypeError(f"SimoModel.forward got unexpected argument(s) {sorted(kwargs)}")
        return_dict = self.config.return_dict if return_dict is None else return_dict
        tasks = self.task_names if tasks is None else list(tasks)
        self.check_task_names(tasks)
        if labels is not None:
            if not isinstance(labels, dict):
                raise TypeError(f"labels must be a dict of task name -> tensor, got {type(labels).__name__}")
            unknown = [name for name in labels if name not in tasks]
            if unknown:
                where = "this model has tasks" if any(n not in self.heads for n in unknown) else "selected tasks are"
                raise KeyError(f"labels given for task(s) {unknown} that are not run; {where} {tasks}")
        encoding = self.encode(
            pixel_values, output_hidden_states=output_hidden_states, output_attentions=output_attentions
        )
        predictions = self.decode(encoding, tasks)

        loss, task_losses = None, None
        if labels is not None and labels:
            task_losses = {}
            for name, target in labels.items():
                spec = self.config.get_task(name)
                target = check_task_labels(name, spec, target, pixel_values)
                task_losses[name] = task_loss(spec, predictions[name], target)
            loss = torch.stack(list(task_losses.values())).mean()

        kinds = {name: self.config.tasks[name]["kind"] for name in predictions}
        task_outputs = {
            name: task_output(kinds[name], prediction, (task_losses or {}).get(name))
            for name, prediction in predictions.items()
        }
        segmentation = [name for name, kind in kinds.items() if kind == "semantic_segmentation"]
        depth = [name for name, kind in kinds.items() if kind in DEPTH_KINDS]
        output = SimoModelOutput(
            loss=loss,
            task_losses=task_losses,
            predictions=predictions,
            task_outputs=task_outputs,
            logits=task_outputs[segmentation[0]].logits if len(segmentation) == 1 else None,
            predicted_depth=task_outputs[depth[0]].predicted_depth if len(depth) == 1 else None,
            hidden_states=encoding.hidden_states,
            attentions=encoding.attentions,
        )
        return output if return_dict else output.to_tuple()

    def _check_pixel_values(self, pixel_values: torch.Tensor) -> None:
        if not isinstance(pixel_values, torch.Tensor):
            raise TypeError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}")
        if (pixel_values.ndim == 4 and pixel_values.shape[0] == 0) or (
            pixel_values.ndim < 4 and pixel_values.numel() == 0
        ):
            raise ValueError(
                f"pixel_values is an empty batch (0 images, shape {tuple(pixel_values.shape)}); pass at least one image"
            )
        if pixel_values.ndim != 4:
            raise ValueError(
                f"pixel_values must have shape (batch, channels, height, width), got {tuple(pixel_values.shape)}"
            )
        channels = self.config.backbone_config.num_channels
        if pixel_values.shape[1] != channels:
            raise ValueError(
                f"pixel_values has {pixel_values.shape[1]} channels, the encoder expects {channels}; "
                "pass RGB images as (batch, 3, height, width)"
            )
        patch = _as_pair(self.config.backbone_config.patch_size)
        height, width = pixel_values.shape[-2:]
        if height < patch[0] or width < patch[1]:
            raise ValueError(
                f"image of {height}x{width} pixels is smaller than one {patch[0]}x{patch[1]} patch; "
                f"resize inputs to at least {patch[0]}x{patch[1]}"
            )
        if not pixel_values.is_floating_point():
            raise TypeError(f"pixel_values must be floating point (normalized images), got {pixel_values.dtype}")
        if not torch.compiler.is_compiling() and not torch.isfinite(pixel_values).all():
            raise ValueError("pixel_values contain NaN or inf; check the image loading and normalisation")


_UNUSED_PARAMETER_MARKERS = ("embeddings.mask_token", ".fusion_stage.layers.0.residual_layer1.", "adapter_slot.weight")


def is_unused_parameter(name: str) -> bool:
    """Parameters no forward pass trains: DINOv2's mask token (no masked-image modelling here), the residual unit
    of DPT's first fusion layer (it never gets a residual) and folded adapter slots (PEFT trains LoRA on them)."""
    return any(marker in name for marker in _UNUSED_PARAMETER_MARKERS)


def freeze_unused_parameters(module: nn.Module) -> nn.Module:
    """Set `requires_grad=False` on `is_unused_parameter` names, so DDP does not wait for their gradients."""
    for name, param in module.named_parameters():
        if is_unused_parameter(name):
            param.requires_grad_(False)
    return module


def _as_pair(value) -> tuple[int, int]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value, value)


def check_task_labels(name: str, spec: TaskSpec, labels: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
    """Validate one task's labels against its spec; return them in the canonical shape."""
    if not isinstance(labels, torch.Tensor):
        raise TypeError(f"labels for task {name!r} must be a torch.Tensor, got {type(labels).__name__}")
    batch, _, height, width = pixel_values.shape
    if spec.is_classification:
        if labels.ndim == 4 and labels.shape[1] == 1:
            labels = labels[:, 0]
        expected = (batch, height, width)
        if tuple(labels.shape) != expected:
            raise DataError(
                f"labels for task {name!r} must have shape {expected} (class ids), got {tuple(labels.shape)}"
            )
        if labels.is_floating_point() or labels.dtype == torch.bool:
            raise TypeError(f"labels for task {name!r} must be integer class ids (torch.long), got {labels.dtype}")
        labels = labels.long()
        valid = labels[labels != spec.ignore_index]
        if valid.numel() and (valid.min() < 0 or valid.max() >= spec.num_outputs):
            bad = valid[(valid < 0) | (valid >= spec.num_outputs)][0].item()
            raise DataError(
                f"labels for task {name!r} contain class id {bad}, outside [0, {spec.num_outputs}) and not the "
                f"ignore index {spec.ignore_index}"
            )
        return labels
    channels = spec.num_outputs
    if labels.ndim == 3 and channels == 1:
        labels = labels.unsqueeze(1)
    expected = (batch, channels, height, width)
    if tuple(labels.shape) != expected:
        raise DataError(f"labels for task {name!r} must have shape {expected}, got {tuple(labels.shape)}")
    if not labels.is_floating_point():
        raise TypeError(f"labels for task {name!r} must be floating point, got {labels.dtype}")
    if not torch.compiler.is_compiling() and not torch.isfinite(labels).all():
        raise DataError(
            f"labels for task {name!r} contain NaN or inf; mark invalid pixels with invalid_value="
            f"{spec.invalid_value} instead"
        )
    return labels


def _config_model_type(path: Path) -> str | None:
    import json

    config_file = Path(path) / "config.json"
    return json.loads(config_file.read_text()).get("model_type") if config_file.is_file() else None


def is_encoder_model(module: object) -> bool:
    """Whether `module` is a bare encoder of a supported family (`Dinov2Model`, `Dinov2WithRegistersModel`,
    `DINOv3ViTModel`), the kind `from_backbone` takes."""
    family = ENCODER_FAMILIES.get(getattr(getattr(module, "config", None), "model_type", None))
    return family is not None and isinstance(module, family.model_cls())


def load_dinov2_encoder(
    path: str | os.PathLike, *, source: str | None = None, allow_pickle: bool = False
) -> PreTrainedModel:
    """The encoder of a local folder: a `Dinov2Model`, `Dinov2WithRegistersModel` or `DINOv3ViTModel` checkpoint
    (their `*Backbone` checkpoints hold the same tensors), or a SimoModel's encoder; anything else is refused."""
    from transformers import AutoConfig

    source = source or os.fspath(path)
    config = AutoConfig.from_pretrained(path)
    if config.model_type == "simo":
        return SimoModel.from_pretrained(path, allow_pickle=allow_pickle).dinov2
    family = ENCODER_FAMILIES.get(config.model_type)
    if family is None:
        raise CheckpointError(
            f"{source} is a {config.model_type!r} model, not DINOv2 (nor DINOv2 with registers, nor DINOv3); hf_simo "
            "needs a Dinov2Model, Dinov2WithRegistersModel or DINOv3ViTModel encoder such as facebook/dinov2-base"
        )
    return family.model_cls().from_pretrained(path, use_safetensors=not allow_pickle)


__all__ = [
    "SimoEncoding",
    "SimoModel",
    "SimoModelOutput",
    "SimoPreTrainedModel",
    "check_task_labels",
    "freeze_unused_parameters",
    "is_encoder_model",
    "is_unused_parameter",
    "load_dinov2_encoder",
]
