"""dvc.yaml tells the truth: each stage's deps are exactly the code it imports, its params exist."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reprokit.config import config_from_dict, flatten

ROOT = Path(__file__).resolve().parents[2]
DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
STAGES = DVC_YAML["stages"]


def _imported_project_files(module: str) -> set[str]:
    code = (
        f"import json, sys, {module}\n"
        "print(json.dumps([getattr(m, '__file__', None) for m in list(sys.modules.values())]))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    files = set()
    for f in json.loads(out.stdout.strip().splitlines()[-1]):
        if f and Path(f).is_absolute():
            try:
                rel = Path(f).resolve().relative_to(ROOT)
            except ValueError:
                continue
            if rel.parts[0] in ("reprokit", "stages") and rel.name != "__init__.py" or rel.as_posix() == "reprokit/__init__.py":
                files.add(rel.as_posix())
    return files


def _covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.slow
@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_are_exactly_the_code_it_imports(stage):
    spec = STAGES[stage]
    module = spec["cmd"].split()[2]  # python -m stages.<name> ...
    imported = _imported_project_files(module)
    code_deps = [d for d in spec["deps"] if d.startswith(("reprokit", "stages"))]
    missing = sorted(f for f in imported if not _covered(f, code_deps))
    unused = sorted(d for d in code_deps if not any(_covered(f, [d]) for f in imported))
    assert not missing, f"{stage} imports files not in its deps: {missing}"
    assert not unused, f"{stage} lists deps it never imports: {unused}"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_params_name_existing_keys(stage):
    flat = flatten(config_from_dict({}).to_dict())
    for key in STAGES[stage].get("params", []):
        assert key in flat or any(k.startswith(key + ".") for k in flat), f"{stage}: unknown param {key}"


def test_every_metrics_file_is_uncached_and_in_runs():
    for name, spec in STAGES.items():
        for entry in spec.get("metrics", []):
            (path, opts), = entry.items()
            assert path.startswith("runs/") and opts == {"cache": False}, (name, path)


def test_model_is_declared_as_a_registry_artifact():
    art = DVC_YAML["artifacts"]["embedding-model"]
    assert art["type"] == "model" and art["path"] == STAGES["train"]["outs"][0]
