"""OpenCompass config: standard benchmarks for the fine-tuned model, to catch what fine-tuning cost.

The game questions are measured by ``python -m app eval`` (our labelled sets, any backend); this config measures
general Chinese and English knowledge and reasoning (C-Eval, CMMLU, MMLU, GSM8K), where a fine-tune that
over-fits the game data loses points against the base model. Run the base and the fine-tuned model through it and
compare the two tables.

Set up OpenCompass in its own environment (it pins its own torch / transformers) and get its datasets:

    python3 -m venv .venv-eval && .venv-eval/bin/pip install "opencompass[api]"
    # datasets: https://github.com/open-compass/opencompass#-dataset-preparation (OpenCompassData-core zip),
    # unpacked so that ./data/ceval, ./data/cmmlu … exist in the directory you run from

Evaluate the served model (``.venv-serve/bin/lmdeploy serve api_server
work_dirs/wulewule_v1_1_8b/wulewule_v1_1_8b-w4a16-4bit --model-format awq --model-name wulewule --server-port
23333``), from the repository root:

    .venv-eval/bin/opencompass training/opencompass/eval_wulewule.py --work-dir work_dirs/opencompass

To evaluate the merged fp16 model in-process instead, or the base model for the comparison, put
``wulewule_hf`` / ``base_hf`` in ``models`` (needs a GPU). Quick trial: add ``--debug`` and cut the datasets.
"""

from mmengine.config import read_base
from opencompass.models import HuggingFacewithChatTemplate, OpenAISDK

with read_base():
    from opencompass.configs.datasets.ceval.ceval_gen_5f30c7 import ceval_datasets
    from opencompass.configs.datasets.cmmlu.cmmlu_gen import cmmlu_datasets
    from opencompass.configs.datasets.gsm8k.gsm8k_gen import gsm8k_datasets
    from opencompass.configs.datasets.mmlu.mmlu_gen import mmlu_datasets

datasets = [*ceval_datasets, *cmmlu_datasets, *mmlu_datasets, *gsm8k_datasets]

API_BASE = "http://127.0.0.1:23333/v1"  # lmdeploy serve api_server (the app's llm.openai.base_url)
MERGED_MODEL = "work_dirs/wulewule_v1_1_8b/sft-merged"  # python -m training run sft-merge
BASE_MODEL = "internlm/internlm2_5-1_8b-chat"

api_meta_template = dict(
    round=[
        dict(role="HUMAN", api_role="HUMAN"),
        dict(role="BOT", api_role="BOT", generate=True),
    ],
    reserved_roles=[dict(role="SYSTEM", api_role="SYSTEM")],
)

# The model as the app serves it: AWQ 4-bit behind LMDeploy's OpenAI-compatible server.
wulewule_api = dict(
    type=OpenAISDK,
    abbr="wulewule-w4a16-api",
    path="wulewule",  # the server's --model-name
    key="EMPTY",
    openai_api_base=API_BASE,
    tokenizer_path=MERGED_MODEL,
    meta_template=api_meta_template,
    query_per_second=4,
    max_out_len=1024,
    max_seq_len=4096,
    temperature=0.01,
    batch_size=8,
    retry=3,
)

# The merged fp16 model and the base model in-process (transformers, one GPU each).
wulewule_hf = dict(
    type=HuggingFacewithChatTemplate,
    abbr="wulewule-fp16-hf",
    path=MERGED_MODEL,
    model_kwargs=dict(trust_remote_code=True),
    tokenizer_kwargs=dict(trust_remote_code=True),
    max_out_len=1024,
    batch_size=8,
    run_cfg=dict(num_gpus=1),
)
base_hf = dict(wulewule_hf, abbr="internlm2_5-1_8b-chat-hf", path=BASE_MODEL)

models = [wulewule_api]
