"""Dense vectors on a real Chroma server shared by replicas: built once, other embedders refused."""

import contextlib
import shutil
import socket
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import httpx
import numpy as np
import pytest

from modules.rag.dense import ChromaServer, DenseIndex, DenseMismatch, DenseUnavailable, dense_dir, sentence_units
from modules.rag.index import IndexSettings, KnowledgeIndex

pytestmark = pytest.mark.slow


class FakeEmbedder:
    """Deterministic vectors from a hash of the text; counts what it embeds; slow enough to overlap."""

    def __init__(self, name: str = "fake-embedder", delay_s: float = 0.02) -> None:
        self.name = name
        self.delay_s = delay_s
        self.passages = 0
        self._count = threading.Lock()

    def _vectors(self, texts):
        rows = [np.random.default_rng(zlib.crc32(t.encode())).standard_normal(16) for t in texts]
        matrix = np.asarray(rows, dtype=np.float32).reshape(len(texts), 16)
        return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)

    def embed_queries(self, texts):
        return self._vectors(texts)

    def embed_passages(self, texts):
        with self._count:
            self.passages += len(texts)
        time.sleep(self.delay_s)
        return self._vectors(texts)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chroma_url(tmp_path_factory: pytest.TempPathFactory):
    chroma = Path(sys.executable).parent / "chroma"
    if not chroma.exists() and shutil.which("chroma") is None:
        pytest.skip("the chroma CLI (pip install chromadb) is not installed: cannot start a Chroma server")
    port = _free_port()
    log = tmp_path_factory.mktemp("chroma-log") / "server.log"
    cmd = [str(chroma if chroma.exists() else "chroma"), "run", "--path", str(tmp_path_factory.mktemp("chroma-db"))]
    with log.open("wb") as out:
        proc = subprocess.Popen([*cmd, "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=out)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/api/v2/heartbeat", timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"could not start `chroma run` on port {port}: {log.read_text(errors='replace')[-500:]}")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def server(chroma_url: str) -> ChromaServer:
    shared = ChromaServer(chroma_url, timeout_s=10, stale_build_s=60, poll_s=0.1)
    client = shared.client()
    for collection in client.list_collections():  # each test starts from an empty server
        client.delete_collection(collection.name)
    return shared


@pytest.fixture
def index(kb_dir: Path, tmp_path: Path) -> KnowledgeIndex:
    return KnowledgeIndex.open([kb_dir], tmp_path / "cache", IndexSettings())


def _open(embedder, index, server, progress=None):
    directory = dense_dir(index.directory, embedder.name)
    return DenseIndex.open(embedder, directory, index.chunks, progress, batch_size=4, server=server)


def test_two_replicas_at_once_build_the_vectors_exactly_once(index, server):
    embedder = FakeEmbedder()  # shared, so its count covers both replicas
    results: dict[int, DenseIndex] = {}
    errors: list[BaseException] = []
    notes: list[str] = []

    class Progress:
        def __call__(self, done, total):
            pass

        def waiting(self, note):
            notes.append(note)

    def replica(i: int) -> None:
        try:
            results[i] = _open(embedder, index, server, Progress())
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=replica, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    units = sentence_units(index.chunks)
    assert embedder.passages == len(units)  # one replica embedded, the other waited and loaded
    assert notes and notes[0].startswith("waiting for replica ")
    np.testing.assert_allclose(results[0].matrix, results[1].matrix, atol=1e-6)
    ranked = [r.rank_chunks("黑熊精在哪里", 3) for r in results.values()]
    assert [c for c, _ in ranked[0]] == [c for c, _ in ranked[1]]  # (float32 vs the server's round trip)
    # A third replica later just loads, and the lock is gone.
    late = FakeEmbedder()
    assert len(_open(late, index, server).units) == len(units) and late.passages == 0
    names = {c.name for c in server.client().list_collections()}
    assert names == {f"wulewule-kb-{index.directory.name}"}


REPLICA = """
import sys
from pathlib import Path
from modules.rag.dense import ChromaServer
from modules.rag.index import IndexSettings, KnowledgeIndex
from tests.modules.rag.test_dense_server import FakeEmbedder, _open
index = KnowledgeIndex.open([Path(sys.argv[1])], Path(sys.argv[2]), IndexSettings())
embedder = FakeEmbedder()
dense = _open(embedder, index, ChromaServer(sys.argv[3], timeout_s=10, poll_s=0.1))
print(embedder.passages, len(dense.units), float(dense.matrix.sum()))
"""


def test_two_replica_processes_build_once(kb_dir, index, server, tmp_path):
    root = Path(__file__).resolve().parents[3]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", REPLICA, str(kb_dir), str(tmp_path / f"replica{i}"), server.url],
            cwd=root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=180) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in outs]
    embedded, sizes, sums = zip(*(out.split() for out, _ in outs), strict=True)
    units = len(sentence_units(index.chunks))
    assert sorted(int(n) for n in embedded) == [0, units]  # exactly one process embedded
    assert {int(n) for n in sizes} == {units} and len({round(float(x), 3) for x in sums}) == 1


def test_a_stale_claim_is_taken_over(index, server):
    client = server.client()
    name = f"wulewule-kb-{index.directory.name}-build"
    client.create_collection(name, metadata={"building_by": "dead:1", "alive_at": time.time() - 3600})
    embedder = FakeEmbedder()
    dense = _open(embedder, index, server)
    assert embedder.passages == len(dense.units) > 0
    assert name not in {c.name for c in client.list_collections()}


def test_another_embedder_is_refused_naming_both(index, server):
    _open(FakeEmbedder("model-a", delay_s=0), index, server)
    other = FakeEmbedder("model-b", delay_s=0)
    with pytest.raises(DenseMismatch) as refused:
        _open(other, index, server)
    message = str(refused.value)
    assert "model-a" in message and "model-b" in message and "rag.embedding.backend" in message
    assert other.passages == 0  # nothing rebuilt over the shared vectors


def test_a_dead_server_is_a_clear_error(index):
    dead = ChromaServer(f"http://127.0.0.1:{_free_port()}", timeout_s=2)
    with pytest.raises(DenseUnavailable, match=r"cannot reach the Chroma server at http://127\.0\.0\.1:\d+"):
        _open(FakeEmbedder(), index, dead)
    with pytest.raises(DenseUnavailable, match="not an http"):
        _open(FakeEmbedder(), index, ChromaServer("chroma:8000"))
