"""dvc.yaml tells the truth: each stage's deps are exactly the layers its code imports, its params exist."""

import pytest
import yaml

from reprokit.core.config import config_from_dict, flatten
from tests.import_graph import ROOT, direct_imports, file_closure, imported_closure, layer_of, runs_nothing

DVC_YAML = yaml.safe_load((ROOT / "dvc.yaml").read_text())
# A `foreach` stage (prepare@<dataset>) is checked through its `do` template.
STAGES = {name: spec.get("do", spec) for name, spec in DVC_YAML["stages"].items()}

# Which layers each layer may import: imports flow one way, down this list.
ALLOWED_LAYERS = {
    "reprokit/core": set(),
    "reprokit/data": {"reprokit/core"},
    "reprokit/log": {"reprokit/core"},
    "reprokit/train": {"reprokit/core", "reprokit/data", "reprokit/log"},
    "reprokit/evaluate": {"reprokit/core", "reprokit/data"},
    # visualize and provenance (compare) read validate's per-query table, whose format evaluate owns.
    "reprokit/visualize": {"reprokit/core", "reprokit/data", "reprokit/evaluate"},
    "reprokit/provenance": {"reprokit/core", "reprokit/data", "reprokit/evaluate"},
    "reprokit/mirror": {"reprokit/core"},
    "reprokit/project": {"reprokit/core"},
    # `reprokit sweep`: runs trials as DVC experiments through the CLI, never imported by a stage.
    "reprokit/tune": {"reprokit/core"},
    # The stages' work sits on top, beside cli.py: it may call every layer.
    "reprokit/pipeline": {
        "reprokit/core",
        "reprokit/data",
        "reprokit/log",
        "reprokit/train",
        "reprokit/evaluate",
        "reprokit/visualize",
        "reprokit/provenance",
        "reprokit/mirror",
    },
}


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_deps_are_exactly_the_layers_it_imports(stage):
    spec = STAGES[stage]
    module = spec["cmd"].split()[2]  # python -m stages.<name> ...
    closure = imported_closure(module)
    if ROOT / "reprokit/train/checkpoint.py" in closure:
        # The model is built from params' model.name (models.py here), which importlib loads at run
        # time: what models.py imports, the stage runs too. models.py itself: the test below.
        closure |= file_closure(*direct_imports(ROOT / "models.py"))
    imported = {layer_of(f) for f in closure if not runs_nothing(f)}
    code_deps = {d for d in spec["deps"] if d.startswith(("reprokit", "stages"))}
    assert imported - code_deps == set(), f"{stage} imports code not in its deps"
    assert code_deps - imported == set(), f"{stage} lists deps it never imports"


@pytest.mark.parametrize("layer", sorted(ALLOWED_LAYERS))
def test_imports_flow_down_the_layers(layer):
    wrong = {}
    for path in sorted(p for p in (ROOT / layer).rglob("*.py") if "templates" not in p.parts):  # templates: data
        for dep in direct_imports(path):
            target = layer_of(dep)
            if target not in (layer, "reprokit/__init__.py") and target not in ALLOWED_LAYERS[layer]:
                wrong[path.relative_to(ROOT).as_posix()] = target
    assert not wrong, f"{layer} imports layers above it: {wrong}"


def test_every_layer_has_a_rule():
    folders = {p.relative_to(ROOT).as_posix() for p in (ROOT / "reprokit").iterdir() if (p / "__init__.py").is_file()}
    assert folders == set(ALLOWED_LAYERS)


def test_the_import_walk_sees_lazy_imports():
    # cli.py imports reproduce inside a function: the walk must still find it.
    assert ROOT / "reprokit/provenance/reproduce.py" in direct_imports(ROOT / "reprokit/cli.py")


def test_dynamically_imported_backends_stay_inside_the_mirror_layer():
    # registry.py imports backends by name (importlib), which no source walk sees; the mirror stage
    # still depends on them because each lives in reprokit/mirror, a dependency of that stage.
    from reprokit.mirror.registry import BACKENDS

    for spec in BACKENDS.values():
        assert (ROOT / "reprokit/mirror" / f"{spec.module}.py").is_file(), spec


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stage_params_name_existing_keys(stage):
    flat = flatten(config_from_dict({}).to_dict())
    for key in STAGES[stage].get("params", []):
        assert key in flat or any(k.startswith(key + ".") for k in flat), f"{stage}: unknown param {key}"


def test_every_metrics_file_is_uncached_and_in_runs():
    for name, spec in STAGES.items():
        for entry in spec.get("metrics", []):
            ((path, opts),) = entry.items()
            assert path.startswith("runs/") and opts == {"cache": False}, (name, path)


def test_model_is_declared_as_a_registry_artifact():
    art = DVC_YAML["artifacts"]["embedding-model"]
    assert art["type"] == "model" and art["path"] == STAGES["train"]["outs"][0]


def test_recorded_params_are_the_stage_params():
    """What a stage records for the pipeline run's identity is exactly what DVC tracks for it.
    (visualize reads its list from dvc.yaml at run time: tests/unit/test_stage_deps.py.)"""
    from reprokit.pipeline import validate

    assert list(validate.PARAMS) == STAGES["validate"]["params"]


def test_report_runs_after_visualize_and_before_mirror():
    """The report reads every validate and visualize output; the mirror sends the report on."""
    deps = STAGES["report"]["deps"]
    assert {"runs/validate", "runs/visualize"} <= set(deps) and "runs/train/model.ckpt" not in deps
    assert STAGES["report"]["outs"] == ["runs/report"]
    assert "runs/report" in STAGES["mirror"]["deps"]


@pytest.mark.parametrize("stage", ["train", "validate", "visualize", "report"])
def test_stages_that_read_the_data_depend_on_it(stage):
    # The dataframe and every image under data.root: an edited image or row re-runs the stage.
    assert {"${data.dataframe}", "${data.root}"} <= set(STAGES[stage]["deps"])


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_stages_that_load_the_trained_model_depend_on_it_and_its_code(stage):
    # Loading the checkpoint rebuilds the network from model.name (models.py here): a retrained
    # model or an edited models.py must re-run every stage that runs the model (validate; visualize's Grad-CAM).
    spec = STAGES[stage]
    loads = ROOT / "reprokit/train/checkpoint.py" in imported_closure(spec["cmd"].split()[2])
    if loads and stage != "train":
        assert {"runs/train/model.ckpt", "models.py"} <= set(spec["deps"]), stage
    assert loads == (stage in ("train", "validate", "visualize")), stage
