"""The orchestration of a text turn, top to bottom:

question -> checks (empty, too long) -> follow-up made stand-alone -> retrieval -> answer stream.

Every stage reports typed events, so the UI, the CLI and the tests read the same turn. Backends
are built once, lazily, from the settings; a missing model is a start-up error that names the
config key and the command that fixes it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from pathlib import Path

from app.config import REPO_ROOT, Settings
from app.events import Answer, ChatEvent, Notice, Source, SourcesFound, TextDelta, collect
from app.followup import leans_on_context, resolve_followup
from llm.base import Answerer, ChatModelError, ChatTurn
from llm.extractive import ExtractiveAnswerer
from llm.grounded import GroundedAnswerer
from modules.model_files import ModelLocation, ModelNotFoundError, locate_model
from modules.rag.dense import BackgroundDense, ChromaServer, DenseIndex, dense_dir, load_probes
from modules.rag.embedding import EmbedderUnavailable, load_embedder
from modules.rag.index import IndexSettings, KnowledgeIndex
from modules.rag.rerank import CrossEncoderReranker
from modules.rag.retriever import HybridRetriever
from modules.rag.text import mostly_english, normalize
from modules.rag.types import Passage
from modules.status import BackendStatus

log = logging.getLogger(__name__)

EMPTY_QUESTION_ZH = "请先说说想问什么吧，比如「黑熊精在哪里打？」或「隐藏结局怎么触发？」"
EMPTY_QUESTION_EN = "Ask me anything about Black Myth: Wukong, e.g. “Where is the Black Bear Guai fought?”"


def _model_fix(key: str, spec: str) -> str:
    """How to get a retrieval model: the download preset that carries it, or a local copy."""
    preset = "cpu" if "embedding" in key else "gpu"
    return (
        f"run `python -m app download {preset}` (needs network; it fetches {spec} into models/), "
        f"or set {key} to a local directory; `python -m app doctor` checks it"
    )


class KnowledgeChat:
    """Answers questions about the game from the knowledge base; one per process."""

    def __init__(self, settings: Settings, answerer: Answerer | None = None) -> None:
        """``answerer`` overrides llm.backend (for embedding the assistant, and for tests)."""
        self.settings = settings
        self.components: list[BackendStatus] = []
        self._embedding = self._locate("rag.embedding.model", settings.rag.embedding.model)
        self._reranker_loc = self._locate("rag.reranker.model", settings.rag.reranker.model)
        self._retriever: HybridRetriever | None = None
        self.dense_build: BackgroundDense | None = None  # the sentence vectors, built or loaded on a thread
        self._vectors_after_s = 0.0
        self._answerer: Answerer | None = answerer
        self._extractive: ExtractiveAnswerer | None = None
        self.startup_notices: list[str] = []  # problems found while loading, shown to the player once

    # -- setup -------------------------------------------------------------------------------

    def _locate(self, key: str, spec: str) -> ModelLocation | None:
        """Where a model slot's model is; a configured *path* that is missing is fatal."""
        if not spec.strip():
            return None
        loc = locate_model(spec, REPO_ROOT)
        if loc.path is None and not loc.is_hub_id:
            raise ModelNotFoundError(f"config key {key}: path {spec!r} does not exist. {_model_fix(key, spec)}")
        if loc.path is None:
            log.info(
                "%s: %s is not downloaded; %s",
                key,
                spec,
                "the bundled embedder is used" if "embedding" in key else "reranking is off",
            )
        return loc

    @property
    def knowledge_roots(self) -> list[Path]:
        roots = [self.settings.resolve(p) for p in self.settings.knowledge.paths]
        user = self.settings.user_kb_dir
        return [*roots, user] if user.is_dir() else roots

    def warm_up(self, wait_for_vectors: bool = False, vectors_after_s: float = 0.0) -> None:
        """Load or build the index and the answerer now instead of on the first question.

        The dense vectors come on a thread (BM25 answers meanwhile), started ``vectors_after_s``
        seconds from now so that the app's own start-up has the cores first; ``wait_for_vectors``
        blocks until they are ready (or have failed), for the CLI and evaluation.
        """
        self._vectors_after_s = vectors_after_s
        self.retriever  # noqa: B018 - the property builds everything
        if wait_for_vectors and self.dense_build is not None:
            self.dense_build.wait()
        model = self.answerer.model
        if model is not None:
            model.start()  # a managed model server (LMDeploy) loads its model now, not on the first question

    @property
    def retriever(self) -> HybridRetriever:
        if self._retriever is None:
            rag = self.settings.rag
            index = KnowledgeIndex.open(
                self.knowledge_roots,
                self.settings.data_dir / "index",
                IndexSettings(chunk_chars=rag.chunk_chars),
                source_base=REPO_ROOT,
            )
            if index.cache_error:
                self.startup_notices.append(
                    f"知识库索引无法写入磁盘（{index.cache_error}），本次在内存中运行，向量检索关闭。"
                    f"检查 {self.settings.data_dir} 是否可写、磁盘是否已满。"
                )
            reranker = None
            if self._reranker_loc and self._reranker_loc.path is not None:
                reranker = CrossEncoderReranker(self._reranker_loc.path, rag.reranker.device)
            self._retriever = HybridRetriever(
                index,
                rag.candidates,
                rag.rrf_k,
                reranker=reranker,
                rerank_top_n=rag.reranker.top_n,
                dense_weight=rag.embedding.fusion_weight,
            )
            if rag.embedding.backend != "none" and not index.cache_error:
                self.dense_build = BackgroundDense(self._load_dense).start(delay=self._vectors_after_s)
        return self._retriever

    def _load_dense(self, progress: Callable[[int, int], None]) -> DenseIndex:
        """Runs on the background thread: the embedder, then the vectors (cached beside the index)."""
        rag = self.settings.rag
        emb_path = self._embedding.path if self._embedding else None
        # A failure here (EmbedderUnavailable naming the fix) is logged once by BackgroundDense.
        embedder = load_embedder(rag.embedding.backend, emb_path, rag.embedding.device, rag.embedding.batch_size)
        assert embedder is not None  # backend "none" never starts a build
        index = self.retriever.index
        probes = load_probes(REPO_ROOT / "assets" / "calibration" / "off_topic.txt")
        directory = dense_dir(index.directory, embedder.name)
        chroma = rag.chroma
        server = ChromaServer(chroma.url, chroma.timeout_s, chroma.stale_build_s, chroma.poll_s) if chroma.url else None
        dense = DenseIndex.open(embedder, directory, index.chunks, progress, probes=probes, server=server)
        self.retriever.dense = dense
        return dense

    @property
    def extractive(self) -> ExtractiveAnswerer:
        """The model-free answerer: the default, and the fallback when a chat model fails."""
        if self._extractive is None:
            index = self.retriever.index
            llm = self.settings.llm
            self._extractive = ExtractiveAnswerer(
                index.tokenizer.tokens,
                index.bm25.idf,
                llm.max_answer_sentences,
                llm.min_relevance,
                find_entities=index.entities.find,
                expand=index.entities.expand,
                semantic=lambda: self.retriever.dense,
            )
        return self._extractive

    @property
    def answerer(self) -> Answerer:
        if self._answerer is None:
            llm = self.settings.llm
            if llm.backend == "extractive":
                self._answerer = self.extractive
            else:
                from llm.backends import create_chat_model

                model = create_chat_model(llm, REPO_ROOT, self.settings.data_dir / "logs")
                compact = llm.compact_context
                if compact == "auto":
                    compact = llm.backend == "llamacpp"
                extractive = self.extractive
                self._answerer = GroundedAnswerer(
                    model,
                    llm.system_prompt,
                    max_tokens=llm.max_tokens,
                    temperature=llm.temperature,
                    context_tokens=llm.context_tokens,
                    history_tokens=llm.history_tokens,
                    compact=(lambda q, ps: extractive.select(q, ps, llm.compact_sentences))
                    if compact in (True, "true")
                    else None,
                    fallback=extractive,
                )
        return self._answerer

    def standalone_question(self, question: str, history: Sequence[ChatTurn]) -> str:
        """A follow-up made stand-alone: by the chat model when there is one, else by rule."""
        find = self.retriever.index.entities.find
        if history and self.settings.llm.rewrite_followups and leans_on_context(question, find):
            rewritten = self.answerer.rewrite(question, history)
            if rewritten is not None:
                return rewritten
        return resolve_followup(question, history, find)

    def status(self) -> list[BackendStatus]:
        """Every backend and model: found or missing, and what fixes a missing one."""
        out = [BackendStatus("retrieval: BM25 (jieba) + entity aliases", True, "always on"), self._dense_status()]
        loc = self._reranker_loc
        key = "rag.reranker.model"
        if loc is None:
            out.append(BackendStatus(f"reranker ({key})", False, "disabled (empty in config)"))
        elif loc.path is None:
            out.append(
                BackendStatus(f"reranker ({key})", False, f"{loc.spec} not downloaded", _model_fix(key, loc.spec))
            )
        else:
            out.append(BackendStatus(f"reranker ({key})", True, f"{loc.spec} at {loc.path}"))
        out.append(self._llm_status())
        return out

    def _dense_status(self) -> BackendStatus:
        """The embedder that dense retrieval and the semantic reader use, loaded to prove it works."""
        emb = self.settings.rag.embedding
        name = f"dense retrieval (rag.embedding.backend={emb.backend})"
        if emb.backend == "none":
            return BackendStatus(name, False, "off: BM25 + aliases only", "set rag.embedding.backend=auto")
        path = self._embedding.path if self._embedding else None
        if self.dense_build is not None and self.dense_build.index is not None:
            return BackendStatus(name, True, f"{self.dense_build.index.embedder.name}, vectors ready")
        try:
            embedder = load_embedder(emb.backend, path, emb.device, emb.batch_size)
        except (EmbedderUnavailable, OSError, ValueError) as exc:
            fix = "pip install -r requirements.txt, or set rag.embedding.backend=none to silence this"
            if emb.backend == "sentence-transformers":
                fix = _model_fix("rag.embedding.model", emb.model)
            return BackendStatus(name, False, f"cannot load: {exc}", fix)
        assert embedder is not None
        state = self.dense_build.state if self.dense_build is not None else "vectors built on first use"
        where = f", vectors on {self.settings.rag.chroma.url}" if self.settings.rag.chroma.url else ""
        if self.dense_build is not None and self.dense_build.error:
            return BackendStatus(
                name, False, f"{embedder.name}{where} ({state})", "as the error says (BM25 + aliases answer meanwhile)"
            )
        return BackendStatus(name, True, f"{embedder.name}{where} ({state})")

    def _llm_status(self) -> BackendStatus:
        llm = self.settings.llm
        name = f"answerer (llm.backend={llm.backend})"
        if llm.backend == "extractive":
            return BackendStatus(name, True, "grounded extractive answers, no model")
        if llm.backend == "openai":
            return BackendStatus(
                name, True, f"OpenAI-compatible server at {llm.openai.base_url} (checked on first use)"
            )
        if llm.backend == "lmdeploy" and llm.lmdeploy.url:
            return BackendStatus(name, True, f"LMDeploy api_server at {llm.lmdeploy.url} (checked on first use)")
        key, spec = {
            "lmdeploy": ("llm.lmdeploy.model", llm.lmdeploy.model),
            "transformers": ("llm.transformers.model", llm.transformers.model),
            "llamacpp": ("llm.llamacpp.model", llm.llamacpp.model),
        }[llm.backend]
        loc = locate_model(spec, REPO_ROOT) if spec.strip() else None
        if loc is None or loc.path is None:
            from llm.backends import DOWNLOAD_HINT

            return BackendStatus(name, False, f"{key} = {spec!r} not found", DOWNLOAD_HINT[llm.backend])
        return BackendStatus(name, True, f"{spec} at {loc.path}")

    def status_line(self) -> str:
        retriever = self.retriever
        index = retriever.index
        parts = [
            f"知识库 {len(index.documents)} 条 / {len(index.chunks)} 段",
            "检索 BM25" + self.dense_words() + (" + 重排" if retriever.reranker else ""),
            f"回答 {self.answerer.name}",
            *(f"⚠️ {n}" for n in self.startup_notices),
        ]
        return " · ".join(parts)

    def dense_words(self) -> str:
        build = self.dense_build
        if build is None:
            return ""
        if build.index is not None:
            return " + 向量"
        if build.error:
            return "（向量检索未启用，见 doctor）"
        if build.total:
            return f"（向量索引构建中 {build.done}/{build.total}，完成后自动启用）"
        return "（向量索引加载中）"

    # -- a turn ------------------------------------------------------------------------------

    def ask_stream(self, question: str, history: Sequence[ChatTurn] = ()) -> Iterator[ChatEvent]:
        """Events of one turn, ending with the finished Answer."""
        started = time.perf_counter()
        notices: list[str] = []
        question = question.strip()
        english = mostly_english(question)
        if not normalize(question):
            text = EMPTY_QUESTION_ZH
            yield TextDelta(text)
            yield Answer(question, question, text, [], "none", [], _ms(started))
            return
        limit = self.settings.app.max_question_chars
        if len(question) > limit:
            notice = (
                f"The question was {len(question)} characters long; only the first {limit} were used."
                if english
                else f"问题太长（{len(question)} 字），只取了前 {limit} 字来回答。"
            )
            notices.append(notice)
            yield Notice(notice)
            question = question[:limit]

        standalone = self.standalone_question(question, history)
        passages = self.retriever.retrieve(standalone, self.settings.rag.top_k)
        sources = [_source(i, p) for i, p in enumerate(passages, 1)]
        yield SourcesFound(sources)
        pieces: list[str] = []
        backend = self.answerer.name
        try:
            # closing(): when the player stops (this generator is closed), the backend stops too.
            with closing(iter(self.answerer.stream(standalone, passages, history))) as stream:
                for piece in stream:
                    pieces.append(piece)
                    yield TextDelta(piece)
        except ChatModelError as exc:
            # The model failed (a dead server, a timeout): keep what was written, say what went
            # wrong, and answer from the knowledge base so the player is not left empty-handed.
            log.warning("chat backend %s failed: %s", backend, exc)
            notice = f"模型服务出错（{exc}），下面改用知识库原文回答。"
            notices.append(notice)
            yield Notice(notice)
            lead = "\n\n" if pieces else ""
            pieces.append(lead)
            yield TextDelta(lead)
            for piece in self.extractive.stream(standalone, passages, history):
                pieces.append(piece)
                yield TextDelta(piece)
            backend = f"{backend}+{self.extractive.name}"
        yield Answer(question, standalone, "".join(pieces).strip(), sources, backend, notices, _ms(started))

    def ask(self, question: str, history: Sequence[ChatTurn] = ()) -> Answer:
        """The turn's events collected into its Answer."""
        return collect(self.ask_stream(question, history))


def _source(index: int, passage: Passage) -> Source:
    chunk = passage.chunk
    return Source(index, chunk.title, chunk.section, chunk.text, chunk.source, passage.score)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
