"""`hf-simo`: the command line.

    hf-simo demo            the whole pipeline on the embedded benchmark, from nothing (the README's main job)
    hf-simo merge           merge single-task checkpoints into one SimoModel folder
    hf-simo realign         merge, re-align on the validation split, evaluate, save (= recipes/realign.py)
    hf-simo evaluate        metrics of a SimoModel on a dataset split
    hf-simo relationships   task relationships: sweep θ_0 + λ·τ_t and plot every task's normalized performance
    hf-simo card            (re)write the model card of a saved model folder
    hf-simo push            publish a saved model folder to the Hub
    hf-simo predict         predict every task for image files: one PNG per image and task, and a grid

Exit codes: 0 success, 1 the command failed (bad input, a checkpoint that does not fit, ...: one line on stderr, no
traceback; `--debug` shows it), 2 the command line itself is wrong (unknown verb or option).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__


EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

# Verbs whose options are dataclasses parsed by HfArgumentParser (so YAML files work too): the rest of the command
# line goes to them as is.
DATACLASS_VERBS = {
    "demo": ("hf_simo.demo", "demo_main", "the whole pipeline on the embedded benchmark, from nothing"),
    "realign": ("hf_simo.realign.job", "realign_main", "merge, re-align on validation, evaluate on test, save"),
}


class _Parser(argparse.ArgumentParser):
    """argparse with 'did you mean' for option typos; usage errors exit with code 2."""

    def error(self, message: str):
        if "unrecognized arguments" in message:
            known = _option_strings(self)
            for word in message.split(":", 1)[1].split():
                close = difflib.get_close_matches(word.split("=")[0], known, n=1)
                if close:
                    message += f" (did you mean {close[0]}?)"
        elif "invalid choice" in message:
            for action in self._actions:
                if isinstance(action, argparse._SubParsersAction):
                    wrong = message.split("invalid choice: ", 1)[1].split("'")[1]
                    close = difflib.get_close_matches(wrong, list(action.choices), n=1)
                    if close:
                        message += f"; did you mean {close[0]!r}?"
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _option_strings(parser: argparse.ArgumentParser) -> list[str]:
    """Every option of `parser` and of its sub-commands (unrecognized options surface at the top level)."""
    options = []
    for action in parser._actions:
        options += action.option_strings
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                options += _option_strings(sub)
    return options


def _user_errors() -> tuple[type[BaseException], ...]:
    """The recipes' user errors, plus the built-in ones a verb raises for bad paths, names and values."""
    from .training.cli import user_errors

    return (*user_errors(), FileExistsError, FileNotFoundError, KeyError, ValueError)


def _one_line(err: BaseException) -> str:
    text = err.args[0] if isinstance(err, KeyError) and err.args else str(err)
    return " ".join(str(text).split())


# ------------------------------------------------------------------------------------------------ verbs


def _evaluate(args: argparse.Namespace) -> int:
    from .atomic import atomic_write_json
    from .metrics import format_metric
    from .modeling_simo import SimoModel
    from .pipeline import evaluate_model
    from .training.data import load_training_data

    model = SimoModel.from_pretrained(args.model, revision=args.revision, tasks=args.tasks).eval()
    data = load_training_data(
        args.dataset,
        dataset_path=args.dataset_path,
        image_size=args.image_size,
        test_samples=args.samples if args.split == "test" else None,
        validation_samples=args.samples if args.split == "validation" else 200,
    )
    if args.split not in data:
        raise KeyError(f"split {args.split!r} not in the dataset; it has {list(data)}")
    results = evaluate_model(model, data[args.split], batch_size=args.batch_size)
    lines = ["| task | metric | value |", "|---|---|--:|"]
    for task, metrics in results.items():
        for name, value in metrics.items():
            lines.append(f"| {task} | {name} | {format_metric(name, value)} |")
    print("\n".join(lines))
    if args.output:
        atomic_write_json(
            args.output,
            {"model": args.model, "dataset": args.dataset, "split": args.split, "results": results},
            indent=2,
            default=str,
        )
        print(f"wrote {args.output}")
    return EXIT_OK


def _check_relationship_options(args: argparse.Namespace) -> list[float]:
    """Every option of `relationships` that can be checked before the sweep (minutes of work): the λ grid."""
    from .analysis.relationships import check_lambda_grid, lambda_grid_index

    try:
        grid = check_lambda_grid(args.lambdas)
    except (TypeError, ValueError) as err:
        raise ValueError(f"--lambdas: {err}") from err
    if lambda_grid_index(args.matrix_lambda, grid) is None:
        raise ValueError(
            f"--matrix-lambda {args.matrix_lambda:g} is not on the λ grid {[f'{v:g}' for v in grid]}; add it to "
            "--lambdas or pass one of them"
        )
    output = Path(args.output_dir)
    if output.exists() and not output.is_dir():
        raise ValueError(f"--output-dir {output} is a file, not a folder")
    return grid


def _relationships(args: argparse.Namespace) -> int:
    from .analysis import describe_relationships, relationship_matrix
    from .analysis.plots import plot_relationship_matrix, plot_relationships
    from .atomic import atomic_write_text
    from .merging.sources import DEFAULT_MAX_RELATIVE_DISTANCE
    from .pipeline import run_relationships

    _check_relationship_options(args)
    result, report_files = run_relationships(
        args.task,
        base=args.base,
        dataset=args.dataset,
        dataset_path=args.dataset_path,
        image_size=args.image_size,
        samples=args.samples,
        lambdas=args.lambdas,
        batch_size=args.batch_size,
        max_relative_distance=None if args.allow_distant else DEFAULT_MAX_RELATIVE_DISTANCE,
        progress=not args.no_progress,
    )
    matrix = relationship_matrix(result, args.matrix_lambda)  # everything is computed before anything is written
    report = describe_relationships(result, args.matrix_lambda)
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    files = plot_relationships(result, output / "relationships")  # each file is written atomically
    files += plot_relationship_matrix(matrix, output / "relationship_matrix")
    atomic_write_text(output / "relationships.md", report + "\n\n" + matrix.to_markdown() + "\n")
    result.save(output / "relationships.json")
    print(report)
    for path in [*files, output / "relationships.md", output / "relationships.json", *report_files]:
        print(f"wrote {path}")
    return EXIT_OK


def _card(args: argparse.Namespace) -> int:
    from .cards import build_model_card, write_model_card

    kwargs = {"dataset_name": args.dataset_name, "repo_id": args.repo_id}
    if args.results:
        try:
            data = json.loads(Path(args.results).read_text())
        except json.JSONDecodeError as err:
            raise ValueError(
                f"--results {args.results} is not valid JSON ({err.msg} at line {err.lineno}, column {err.colno}); "
                "pass the file `hf-simo evaluate --output` or the realign job's results.json wrote"
            ) from err
        kwargs["eval_results"] = data.get("results", data) if isinstance(data, dict) else data
        if isinstance(kwargs["eval_results"], dict) and all(
            isinstance(v, dict) and all(isinstance(x, dict) for x in v.values())
            for v in kwargs["eval_results"].values()
        ):  # a realign results.json: {row: {task: {metric: value}}} -> the last row is the model's
            rows = kwargs["eval_results"]
            kwargs["eval_results"] = rows[list(rows)[-1]]
    if args.print:
        print(build_model_card(args.folder, **kwargs))
        return EXIT_OK
    path = write_model_card(args.folder, **kwargs)
    print(f"wrote {path}")
    return EXIT_OK


def _push(args: argparse.Namespace) -> int:
    from .publishing import push_folder_to_hub

    result = push_folder_to_hub(
        args.folder,
        args.repo_id,
        token=args.token,
        private=args.private,
        revision=args.revision,
        commit_message=args.commit_message,
        create_pr=args.create_pr,
        dry_run=args.dry_run,
    )
    if args.dry_run:
        print(f"would push {len(result.files)} file(s) to {result.repo_id}: {', '.join(result.files)}")
    else:
        print(f"pushed {len(result.files)} file(s) to {result.repo_id}: {result.url}")
    return EXIT_OK


def _predict(args: argparse.Namespace) -> int:
    from .predict import predict_to_folder

    written = predict_to_folder(
        args.model,
        args.images,
        args.output_dir,
        tasks=args.tasks,
        revision=args.revision,
        device=args.device,
        batch_size=args.batch_size,
        progress=not args.no_progress,
    )
    print(f"wrote {len(written)} file(s) for {len(args.images)} image(s) to {args.output_dir}")
    return EXIT_OK


# ------------------------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hf-simo",
        description="Build one multi-task dense-prediction model from single-task DINOv2 checkpoints (SIMO merging).",
        epilog="Run `hf-simo <verb> --help` for the options of a verb.",
    )
    parser.add_argument("--version", action="version", version=f"hf_simo {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of errors")
    verbs = parser.add_subparsers(dest="command", metavar="<verb>", parser_class=_Parser)

    for name, (_, _, help) in DATACLASS_VERBS.items():
        verbs.add_parser(name, help=help, add_help=False)

    from .merging.cli import add_merge_subparser

    add_merge_subparser(verbs)

    evaluate = verbs.add_parser("evaluate", help="metrics of a SimoModel on a dataset split")
    evaluate.add_argument("model", help="SimoModel folder or Hub repo id")
    evaluate.add_argument("--revision", help="revision of a Hub repo")
    evaluate.add_argument("--tasks", nargs="+", help="evaluate only these tasks")
    _data_options(evaluate)
    evaluate.add_argument("--split", default="test", help="dataset split (default: test)")
    evaluate.add_argument(
        "--samples", type=_positive_int, default=500, help="samples of the embedded benchmark's split"
    )
    evaluate.add_argument("--output", help="also write the metrics as JSON here")
    evaluate.set_defaults(func=_evaluate)

    relationships = verbs.add_parser(
        "relationships", help="task relationships: sweep θ_0 + λ·τ_t, plot normalized performance against λ"
    )
    relationships.add_argument(
        "--task", action="append", required=True, metavar="[NAME=]SOURCE[@REV]", help="single-task checkpoint; repeat"
    )
    relationships.add_argument("--base", help="θ_0 (default: the base recorded in the checkpoints)")
    relationships.add_argument(
        "--allow-distant", action="store_true", help="only warn about task encoders far from the base"
    )
    _data_options(relationships)
    relationships.add_argument(
        "--samples", type=_positive_int, default=200, help="validation samples evaluated per point"
    )
    relationships.add_argument("--lambdas", type=float, nargs="+", help="λ grid (default 0, 0.1, ..., 1.5)")
    relationships.add_argument("--matrix-lambda", type=float, default=1.0, help="λ of the T×T matrix (default 1)")
    relationships.add_argument("--output-dir", default="relationships", help="where plots and the report go")
    relationships.add_argument("--no-progress", action="store_true", help="no progress bars")
    relationships.set_defaults(func=_relationships)

    card = verbs.add_parser("card", help="(re)write the model card (README.md) of a saved model folder")
    card.add_argument("folder", help="the model folder")
    card.add_argument("--results", help="JSON of evaluation results (hf-simo evaluate --output, or realign's)")
    card.add_argument("--dataset-name", help="dataset the results were measured on")
    card.add_argument("--repo-id", help="Hub repo id shown in the usage snippet")
    card.add_argument("--print", action="store_true", help="print the card instead of writing README.md")
    card.set_defaults(func=_card)

    push = verbs.add_parser("push", help="publish a saved model folder to the Hugging Face Hub")
    push.add_argument("folder", help="the model folder (config.json, safetensors, preprocessor, README.md)")
    push.add_argument("repo_id", help="org/name")
    push.add_argument("--token", help="write token (default: HF_TOKEN or `hf auth login`); never printed")
    push.add_argument("--private", action="store_true", help="create the repo as private")
    push.add_argument("--revision", help="branch to commit to (created if missing)")
    push.add_argument("--commit-message", help="commit message")
    push.add_argument("--create-pr", action="store_true", help="open a pull request instead of committing")
    push.add_argument("--dry-run", action="store_true", help="validate and list the files; no token, no network")
    push.set_defaults(func=_push)

    predict = verbs.add_parser("predict", help="predict every task for image files and write PNGs")
    predict.add_argument("model", help="SimoModel folder or Hub repo id")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    predict.add_argument(
        "--output-dir", required=True, help="where the PNGs go (<image>.<task>.png, <image>.grid.png)"
    )
    predict.add_argument("--tasks", nargs="+", help="predict only these tasks (default: all)")
    predict.add_argument("--revision", help="revision of a Hub repo")
    predict.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    predict.add_argument("--batch-size", type=int, default=4, help="images per forward pass (default 4)")
    predict.add_argument("--no-progress", action="store_true", help="no progress bar")
    predict.set_defaults(func=_predict)
    return parser


def _positive_int(text: str) -> int:
    """argparse type: a size or count; 0 and negatives are a usage error naming the option."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="nyuv2", help="embedded preset, real dataset name or saved folder")
    parser.add_argument("--dataset-path", help="root folder of a real dataset")
    parser.add_argument("--image-size", type=_positive_int, default=64, help="image side of the embedded benchmark")
    parser.add_argument("--batch-size", type=_positive_int, default=64, help="evaluation batch size")


def _run_dataclass_verb(verb: str, argv: Sequence[str], debug: bool = False) -> int:
    import importlib

    module, function, _ = DATACLASS_VERBS[verb]
    main: Callable = getattr(importlib.import_module(module), function)
    try:
        main(list(argv))
    except SystemExit as exit_:  # HfArgumentParser usage errors (2), run_recipe's one-line user errors
        cause = exit_.__cause__
        if debug and cause is not None:  # the error run_recipe turned into one line, with its traceback
            raise cause from cause.__cause__
        if isinstance(exit_.code, str):
            print(f"hf-simo {verb}: {exit_.code}", file=sys.stderr)
            return EXIT_FAILURE
        return EXIT_OK if exit_.code is None else int(exit_.code)
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    if debug:
        argv.remove("--debug")
    if argv and argv[0] in DATACLASS_VERBS:
        sys.argv[0] = f"hf-simo {argv[0]}"
        return _run_dataclass_verb(argv[0], argv[1:], debug)
    parser = build_parser()
    args = parser.parse_args(argv)
    args.debug = debug  # verbs that report their own errors (merge) re-raise them
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except _user_errors() as err:
        if debug:
            raise
        print(f"hf-simo {args.command}: error: {_one_line(err)}", file=sys.stderr)
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
