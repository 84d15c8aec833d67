"""One logger (transformers' conventions: HF_SIMO_VERBOSITY, main process only) and one progress-bar switch
(hf_simo's group of huggingface_hub's bars; HF_HUB_DISABLE_PROGRESS_BARS wins), and `CommonArguments`."""

from __future__ import annotations

import io
import logging
import os
import subprocess
import sys
import textwrap

import pytest
from huggingface_hub.utils import are_progress_bars_disabled as hub_bars_disabled

from hf_simo.errors import OptionError
from hf_simo.utils import logging as simo_logging
from hf_simo.utils.logging import CommonArguments, get_logger, progress_bar


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter (logging and progress-bar state are process-wide), stderr captured."""
    environment = {k: v for k, v in os.environ.items() if k not in ("RANK", "LOCAL_RANK", "HF_SIMO_VERBOSITY")}
    environment.pop("HF_HUB_DISABLE_PROGRESS_BARS", None)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env={**environment, **env},
        check=False,
    )


LOGS = """
    from hf_simo.utils.logging import get_logger
    log = get_logger("hf_simo.some.module")
    log.debug("a debug line")
    log.info("an info line")
    log.warning("a warning line")
    log.info("said by every process", extra={"main_process_only": False})
"""


def test_library_default_is_warning_and_messages_are_plain_lines_on_stderr():
    result = _run(LOGS)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["a warning line"] and result.stdout == ""


def test_verbosity_comes_from_hf_simo_verbosity():
    result = _run(LOGS, HF_SIMO_VERBOSITY="debug")
    assert result.stderr.splitlines() == ["a debug line", "an info line", "a warning line", "said by every process"]
    result = _run(LOGS, HF_SIMO_VERBOSITY="nonsense")
    assert "HF_SIMO_VERBOSITY='nonsense' is not one of" in result.stderr and "a warning line" in result.stderr


def test_only_the_main_process_logs_unless_asked():
    result = _run(LOGS, HF_SIMO_VERBOSITY="info", RANK="1")
    assert result.stderr.splitlines() == ["said by every process"]
    result = _run(LOGS, HF_SIMO_VERBOSITY="info", RANK="0")
    assert "an info line" in result.stderr


def test_records_go_to_the_application_handlers_when_it_configured_logging():
    code = "import logging\nlogging.basicConfig(format='APP %(name)s %(message)s')\n" + textwrap.dedent(LOGS)
    result = _run(code)
    assert result.stderr.splitlines() == ["APP hf_simo.some.module a warning line"]  # once, in the app's format


def test_get_logger_names_children_of_the_library_logger(caplog):
    assert get_logger("hf_simo.merging.engine").name == "hf_simo.merging.engine"
    assert get_logger("benchmarks.merge").name == "hf_simo.benchmarks.merge"
    assert get_logger().name == "hf_simo"
    with caplog.at_level(logging.INFO, logger="hf_simo"):
        get_logger("hf_simo.x").info("seen by pytest's handler")
    assert "seen by pytest's handler" in caplog.text


def test_set_verbosity_sets_the_library_level():
    before = simo_logging.get_verbosity()
    try:
        simo_logging.set_verbosity("error")
        assert simo_logging.get_verbosity() == logging.ERROR
        simo_logging.set_verbosity_info()
        assert simo_logging.get_verbosity() == logging.INFO
        with pytest.raises(ValueError, match="unknown log level"):
            simo_logging.set_verbosity("loud")
    finally:
        simo_logging.set_verbosity(before)


def _shown(bar_factory) -> str:
    stream = io.StringIO()
    bar = bar_factory(stream)
    for _ in bar:
        pass
    bar.close()
    return stream.getvalue()


def test_progress_bars_have_one_switch():
    def bar(stream):
        return progress_bar(range(3), desc="work", file=stream)

    assert "work" in _shown(bar)
    simo_logging.disable_progress_bars()
    try:
        assert simo_logging.are_progress_bars_disabled()
        assert _shown(bar) == ""
        assert not hub_bars_disabled("huggingface_hub")  # only hf_simo's group
    finally:
        simo_logging.enable_progress_bars()
    assert "work" in _shown(bar)


def test_hf_hub_disable_progress_bars_wins():
    code = """
        import io
        from hf_simo.utils.logging import enable_progress_bars, progress_bar
        enable_progress_bars()  # warns: the environment variable has priority
        stream = io.StringIO()
        for _ in progress_bar(range(3), desc="work", file=stream):
            pass
        assert stream.getvalue() == "", stream.getvalue()
        print("silent")
    """
    result = _run(code, HF_HUB_DISABLE_PROGRESS_BARS="1")
    assert result.returncode == 0 and result.stdout.strip() == "silent", result.stderr


def test_progress_bars_only_on_the_main_process():
    code = """
        import io
        from hf_simo.utils.logging import progress_bar
        stream = io.StringIO()
        for _ in progress_bar(range(3), desc="work", file=stream):
            pass
        print(repr(stream.getvalue()))
    """
    assert _run(code, RANK="1").stdout.strip() == "''"
    assert "work" in _run(code, RANK="0").stdout


def test_common_arguments_disable_every_bar_and_set_the_level_then_restore():
    import datasets

    before_level = simo_logging.get_verbosity()
    common = CommonArguments(log_level="debug", disable_tqdm=True)
    with common.applied():
        assert simo_logging.get_verbosity() == logging.DEBUG
        assert (
            hub_bars_disabled() and hub_bars_disabled("huggingface_hub") and simo_logging.are_progress_bars_disabled()
        )
        assert not datasets.is_progress_bar_enabled()
        assert os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] == "1"
    assert simo_logging.get_verbosity() == before_level
    assert not hub_bars_disabled() and not simo_logging.are_progress_bars_disabled()
    assert datasets.is_progress_bar_enabled() and "HF_DATASETS_DISABLE_PROGRESS_BARS" not in os.environ


def test_common_arguments_apply_in_a_fresh_process():
    """As a verb run from a shell does: nothing but the logging module imported (huggingface_hub loads its tqdm
    module lazily)."""
    code = """
        from hf_simo.utils.logging import CommonArguments
        for disable in (False, True):
            with CommonArguments(disable_tqdm=disable).applied():
                pass
        print("ok")
    """
    result = _run(code)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-2000:]


def test_common_arguments_default_level_is_info_or_the_environment(monkeypatch):
    monkeypatch.delenv("HF_SIMO_VERBOSITY", raising=False)
    assert CommonArguments().level == logging.INFO
    monkeypatch.setenv("HF_SIMO_VERBOSITY", "error")
    assert CommonArguments().level == logging.ERROR
    assert CommonArguments(log_level="WARNING").level == logging.WARNING
    with pytest.raises(OptionError, match="--log_level must be debug, info, warning, error or critical, got 'loud'"):
        CommonArguments(log_level="loud")
