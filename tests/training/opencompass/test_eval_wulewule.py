"""The OpenCompass config: benchmarks and models where OpenCompass expects them, paths matching the pipeline's.

OpenCompass itself is not installed here (it pins its own stack; the config's docstring says how to set it
up), so the file is read with ``ast``.
"""

from __future__ import annotations

import ast

from tests.conftest import REPO
from training.layout import layout_for
from training.settings import load_training_settings

CONFIG = REPO / "training" / "opencompass" / "eval_wulewule.py"


def _module() -> ast.Module:
    return ast.parse(CONFIG.read_text(encoding="utf-8"))


def _assigned(module: ast.Module) -> dict[str, ast.expr]:
    return {
        t.id: n.value for n in module.body if isinstance(n, ast.Assign) for t in n.targets if isinstance(t, ast.Name)
    }


def test_datasets_are_read_from_opencompass_configs():
    module = _module()
    with_block = next(n for n in module.body if isinstance(n, ast.With))
    assert ast.unparse(with_block.items[0].context_expr) == "read_base()"
    imported = {alias.name for node in with_block.body for alias in node.names}
    modules = {node.module for node in with_block.body}
    assert imported == {"ceval_datasets", "cmmlu_datasets", "mmlu_datasets", "gsm8k_datasets"}
    assert all(m.startswith("opencompass.configs.datasets.") for m in modules)
    names = _assigned(module)
    assert {"datasets", "models"} <= names.keys()
    assert ast.unparse(names["models"]) == "[wulewule_api]"


def test_paths_match_the_pipeline_and_the_server():
    names = _assigned(_module())
    settings = load_training_settings()
    merged = layout_for(settings).merged_dir("sft").relative_to(REPO)
    assert ast.literal_eval(names["MERGED_MODEL"]) == str(merged)
    assert ast.literal_eval(names["BASE_MODEL"]) == settings.preset.base
    assert ast.literal_eval(names["API_BASE"]) == "http://127.0.0.1:23333/v1"  # the app's llm.openai.base_url
    api = {kw.arg: kw.value for kw in names["wulewule_api"].keywords}
    assert ast.unparse(api["type"]) == "OpenAISDK" and ast.literal_eval(api["path"]) == "wulewule"
    assert "--model-name wulewule" in (ast.get_docstring(_module()) or "")
