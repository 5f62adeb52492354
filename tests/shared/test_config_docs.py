"""The configuration reference lists every field of every config model, with a meaning."""

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_configuration_reference_is_complete_and_current():
    spec = importlib.util.spec_from_file_location("gen_config_reference", DOCS / "gen_config_reference.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    for model, meanings in gen.MEANING.items():
        missing = [f for f in model.model_fields if not meanings.get(f)]
        assert not missing, f"{model.__name__} fields without a meaning in docs/gen_config_reference.py: {missing}"
    assert (DOCS / "configuration.md").read_text() == gen.render(), "run: python docs/gen_config_reference.py"
