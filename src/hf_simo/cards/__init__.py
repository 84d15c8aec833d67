"""Model cards (README.md) for single-task, merged and re-aligned `SimoModel` checkpoints.

- `data`: `SimoCardData`, what a card says (pure); `sections`: its template entries and the `EvalResult`
  conversions (pure); `origin`: which README hf_simo may rewrite (pure);
- `io`: rendering the template, writing README.md atomically, parameter counts from safetensors headers.

Built as SpanMarker and SetFit build theirs: a `SimoCardData` dataclass (a `huggingface_hub.CardData`) holds what
the card says, its `to_dict` feeds a Jinja template shipped as package data (`hf_simo.model_cards`, the top-level
`model_cards/` folder of the repository) and its `to_yaml` the metadata block; `huggingface_hub.ModelCard
.from_template` renders both. The kind of card is decided from the config: `config.realignment` set -> re-aligned,
else `config.merge` set -> merged, else one task -> single-task (several tasks without either: multi-task).

Metadata decisions:

- `library_name: hf_simo`. `transformers` would make the Hub show an `AutoModel.from_pretrained` snippet that fails
  without `import hf_simo` (the `simo` model type is registered by hf_simo, not by transformers, and there is no
  remote code); the card's own usage section shows the working snippet.
- `pipeline_tag` only where a transformers pipeline runs the model: `depth-estimation` for a single depth or
  disparity task, `image-segmentation` for a single segmentation task; multi-task cards use hf_simo's
  `simo-dense-prediction` pipeline in their snippet and set none.
- Which README is rewritten (`card_needs_writing`): a missing one, transformers' generic auto-generated card, or an
  unedited hf_simo card of another config (an HTML comment under its front matter names the config it describes and
  a digest of the card); a card the user wrote or edited is kept, and so is hf_simo's card of the same config (it
  may carry evaluation results).
- `base_model`: the Hub ids of the merged source checkpoints (`base_model_relation: merge`) for merged and
  re-aligned models, else the pre-trained encoder θ_0 (`finetune`). Local folders are never written to the metadata
  (the Hub could not resolve them) and appear in the text by folder name only, not by absolute path; θ_0 that is
  the encoder shipped with hf_simo (`hf_simo.encoders`) is named as such, with the hf_simo version, the digest of
  its weights and whether its provenance marks it provisional.
- evaluation results go to `model-index` through `huggingface_hub.EvalResult`, one entry per (task, metric):
  `task_type` from the task kind (`image-segmentation`, `depth-estimation`, `image-to-image` for normals and generic
  regression), `metric_type` = hf_simo's metric key (`miou`, `abs_err`, `mean_angle`, ...; values as
  `MultiTaskMetrics.compute` returns them: fractions for mIoU/accuracy, degrees for angles), `metric_name` =
  `"<task> / <metric label>"` (which head the value belongs to), `metric_config` = the task kind (the configuration
  of hf_simo's `evaluate` module). `ModelCard.load(...).data.eval_results` gives them back unchanged.
"""

from typing import TYPE_CHECKING

from ..utils.lazy import lazy_exports


_EXPORTS = {
    "CITATION": "hf_simo.cards.data",
    "DEFAULT_TAGS": "hf_simo.cards.data",
    "KIND_LABELS": "hf_simo.cards.sections",
    "KIND_TAGS": "hf_simo.cards.data",
    "LIBRARY_NAME": "hf_simo.cards.data",
    "PIPELINE_TAGS": "hf_simo.cards.data",
    "SimoCardData": "hf_simo.cards.data",
    "TASK_TYPES": "hf_simo.cards.sections",
    "TASK_TYPE_NAMES": "hf_simo.cards.sections",
    "TEMPLATE_NAME": "hf_simo.cards.io",
    "TRANSFORMERS_GENERIC_TEXT": "hf_simo.cards.origin",
    "YAML_FIELDS": "hf_simo.cards.data",
    "build_model_card": "hf_simo.cards.io",
    "card_kind": "hf_simo.cards.sections",
    "card_needs_writing": "hf_simo.cards.origin",
    "card_origin": "hf_simo.cards.origin",
    "config_fingerprint": "hf_simo.cards.origin",
    "eval_results_from_metrics": "hf_simo.cards.sections",
    "is_hub_id": "hf_simo.cards.sections",
    "load_card_config": "hf_simo.cards.io",
    "metrics_from_eval_results": "hf_simo.cards.sections",
    "parameter_counts": "hf_simo.cards.io",
    "refresh_model_card": "hf_simo.cards.io",
    "template_path": "hf_simo.cards.io",
    "write_model_card": "hf_simo.cards.io",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # for IDEs and type checkers; at run time the table above resolves the names
    from hf_simo.cards.data import (
        CITATION,
        DEFAULT_TAGS,
        KIND_TAGS,
        LIBRARY_NAME,
        PIPELINE_TAGS,
        YAML_FIELDS,
        SimoCardData,
    )
    from hf_simo.cards.io import (
        TEMPLATE_NAME,
        build_model_card,
        load_card_config,
        parameter_counts,
        refresh_model_card,
        template_path,
        write_model_card,
    )
    from hf_simo.cards.origin import TRANSFORMERS_GENERIC_TEXT, card_needs_writing, card_origin, config_fingerprint
    from hf_simo.cards.sections import (
        KIND_LABELS,
        TASK_TYPE_NAMES,
        TASK_TYPES,
        card_kind,
        eval_results_from_metrics,
        is_hub_id,
        metrics_from_eval_results,
    )
