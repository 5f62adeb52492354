"""docs/copytrade.md's API reference is the one generated from the app's OpenAPI spec."""

import importlib.util
from pathlib import Path

DOCS = Path(__file__).resolve().parents[3] / "docs"


def test_api_reference_is_generated_from_the_current_spec():
    spec = importlib.util.spec_from_file_location("gen_copytrade_api", DOCS / "gen_copytrade_api.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    page = (DOCS / "copytrade.md").read_text()
    assert page == gen.render(page), "run: python docs/gen_copytrade_api.py"
    for path in ("/api/trade", "/api/trade/adjust", "/api/account/{account_index}", "/health"):
        assert f"`{'GET' if 'trade' not in path else 'POST'} {path}`" in page
