import json
import subprocess
import sys

from tests.conftest import REPO_ROOT, run_cli


def test_help_lists_subcommands():
    result = run_cli("--help")
    assert "env" in result.stdout


def test_env_reports_stack_as_json():
    report = json.loads(run_cli("env", "--json", check=False).stdout)
    assert report["packages"]["torch"] is not None
    assert report["packages"]["transformers"].startswith("5.")


def test_unknown_subcommand_fails():
    result = run_cli("no-such-command", check=False)
    assert result.returncode != 0
    assert "invalid choice" in result.stderr


def test_import_does_not_load_heavy_optional_stacks():
    # `import hf_spatial` must stay light (target < 3 s, measured by hand): the simulator, trainers and
    # dataset stacks load on use only.
    heavy = ("pyroomacoustics", "trl", "datasets", "peft")
    code = f"import sys, hf_spatial; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"
