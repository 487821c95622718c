"""The scale-out layout of docs/deploy.md on one machine, on loopback ports, and the load bench against it.

    eval "$(../shared/dev-models/fetch)"
    .venv/bin/python bench/deploy_local.py [--replicas 2] [--load --sessions 20 --seconds 60] [--burst 10]
        [--engine-nice 10] [--engine-threads 1]

Starts, each as its own process:

- an **engine** app (`python -m app serve`) that hears (dev Whisper-base) and speaks (espeak-ng) for the
  others through its `/v1/audio/transcriptions` and `/v1/audio/speech` — standing in for a FunASR/ChatTTS
  server on a GPU box;
- a **Chroma server** (`chroma run`, shipped with the chromadb package) for the shared sentence vectors,
  when this version of the app has `rag.chroma.url`;
- N **replicas** of the app with `asr.backend=openai` and `tts.backend=openai` pointing at the engine.

Without `--load` it prints the URLs and serves until Ctrl+C; with it, it runs bench/bench_load.py against the
replicas (players spread over them), prints each process's memory growth after the warm-up, and stops
everything. With `--burst N` the load runs twice: typed players alone, then the same typed players with
N more who only speak, so that the typed p50s compare in one deployment.
A reverse proxy with sticky sessions (docs/deploy.md) would sit in front of the replicas; LMDeploy's
`api_server` behind `lmdeploy serve proxy` would be the chat model (here: the extractive default).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench_rag import free_port, rss_mb

from app.config import Settings

REPO = Path(__file__).resolve().parent.parent


def wait_up(url: str, proc: subprocess.Popen[bytes], what: str, seconds: float = 180) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited early (exit code {proc.returncode})")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"{what} did not come up at {url}")


def app(root: Path, name: str, env: dict[str, str], nice: int = 0) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    command = [sys.executable, "-m", "app", "--set", f"app.data_dir={root / name}", "serve", "--port", str(port)]
    log = open(root / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, **env},
        preexec_fn=(lambda: os.nice(nice)) if nice else None,  # only os.nice, before exec
    )
    url = f"http://127.0.0.1:{port}"
    wait_up(url + "/", proc, name)
    return proc, url


def wait_vectors(url: str, timeout: float = 1800) -> float:
    """Seconds until the Chroma server at ``url`` holds a complete knowledge-base collection and no build."""
    import chromadb

    started = time.monotonic()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    client = chromadb.HttpClient(host=host, port=int(port))
    while time.monotonic() - started < timeout:
        collections = client.list_collections()
        building = any(c.name.endswith("-build") for c in collections)
        complete = any((c.metadata or {}).get("complete") for c in collections if not c.name.endswith("-build"))
        if complete and not building:
            return time.monotonic() - started
        time.sleep(2)
    raise SystemExit(f"the shared vectors were not built within {timeout:.0f} s (see the replicas' logs)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--load", action="store_true", help="run bench/bench_load.py against the replicas")
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--voice-share", type=float, default=0.3)
    parser.add_argument(
        "--engine-nice",
        type=int,
        default=0,
        help="run the engine at this niceness: on a shared box the replicas' typed answers go first",
    )
    parser.add_argument(
        "--engine-threads",
        type=int,
        default=0,
        help="Whisper threads on the engine (asr.whisper.cpu_threads; 0 = all cores)",
    )
    parser.add_argument(
        "--burst",
        type=int,
        default=0,
        help="compare typed latency: a typed-only run, then the same players plus this many speaking only",
    )
    args = parser.parse_args()
    whisper = os.environ.get("WULEWULE_DEV_WHISPER", "")
    if not whisper:
        parser.error('WULEWULE_DEV_WHISPER is unset: eval "$(../shared/dev-models/fetch)"')
    root = Path(tempfile.mkdtemp(prefix="wulewule-deploy-"))
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        engine_env = {"WULEWULE_ASR__BACKEND": "whisper", "WULEWULE_ASR__WHISPER__MODEL": whisper}
        engine_env["WULEWULE_TTS__BACKEND"] = "espeak"
        engine_env["WULEWULE_ASR__WHISPER__CPU_THREADS"] = str(args.engine_threads)
        engine_env["WULEWULE_ASR__VAD"] = "false"  # the replicas trim silence before they send (docs/deploy.md)
        procs["engine"], engine = app(root, "engine", engine_env, nice=args.engine_nice)
        replica_env = {
            "WULEWULE_ASR__BACKEND": "openai",
            "WULEWULE_ASR__OPENAI__BASE_URL": engine + "/v1",
            "WULEWULE_TTS__BACKEND": "openai",
            "WULEWULE_TTS__OPENAI__BASE_URL": engine + "/v1",
        }
        if "chroma" in type(Settings().rag).model_fields:  # rag.chroma.url: the shared vectors
            port = free_port()
            chroma = [str(Path(sys.executable).parent / "chroma"), "run", "--path", str(root / "chroma")]
            log = open(root / "chroma.log", "wb")  # noqa: SIM115 - lives as long as the process
            procs["chroma"] = subprocess.Popen([*chroma, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
            wait_up(f"http://127.0.0.1:{port}/api/v2/heartbeat", procs["chroma"], "chroma")
            replica_env["WULEWULE_RAG__CHROMA__URL"] = f"http://127.0.0.1:{port}"
        urls = []
        for i in range(args.replicas):
            procs[f"replica{i + 1}"], url = app(root, f"replica{i + 1}", replica_env)
            urls.append(url)
        print(f"engine   {engine}  (ASR + voice for the replicas)")
        for i, url in enumerate(urls, 1):
            print(f"replica{i} {url}")
        print(f"logs in {root}")
        if not args.load:
            while True:
                time.sleep(3600)
        if "chroma" in procs:
            # The replicas build the shared vectors in the background after they start (one builds, the
            # others wait for it): done before the clock, so that neither the build's CPU nor the
            # collection filling up is counted as the load's.
            print(f"shared vectors built in {wait_vectors(replica_env['WULEWULE_RAG__CHROMA__URL']):.0f} s")
        before = {name: rss_mb(p.pid) for name, p in procs.items()}
        load = [sys.executable, str(REPO / "bench" / "bench_load.py"), "--url", *[u + "/" for u in urls]]
        load += ["--sessions", str(args.sessions), "--seconds", str(args.seconds)]
        load += ["--voice-share", str(args.voice_share), "--draw-share", "0"]
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in procs}
        done = threading.Event()

        def sample() -> None:  # each process's memory once a second while the load runs
            start = time.monotonic()
            while not done.wait(1.0):
                for name, proc in procs.items():
                    samples[name].append((time.monotonic() - start, rss_mb(proc.pid)))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        if args.burst:
            # Typed players alone, then the same typed players beside a burst of spoken ones, against the
            # same processes: how much recognition on the engine slows the replicas' typed answers.
            typed_only = [*load, "--voice-share", "0"]  # the last --voice-share wins
            subprocess.run(typed_only, check=False, cwd=REPO)
            subprocess.run([*typed_only, "--voice-sessions", str(args.burst)], check=False, cwd=REPO)
        else:
            subprocess.run(load, check=False, cwd=REPO)
        done.set()
        sampler.join()
        # Growth as bench_load.py measures it: from the end of the warm-up (the first quarter) to the end.
        print(f"{'process':<10} {'idle MiB':>8} {'warm MiB':>8} {'end MiB':>8} {'growth':>7}")
        for name in procs:
            warm_at = samples[name][-1][0] / 4 if samples[name] else 0.0
            warm = next((mb for t, mb in samples[name] if t >= warm_at), before[name])
            end = samples[name][-1][1] if samples[name] else before[name]
            print(f"{name:<10} {before[name]:8.0f} {warm:8.0f} {end:8.0f} {(end / warm - 1) * 100:6.1f}%")
    except KeyboardInterrupt:
        pass
    finally:
        for proc in procs.values():
            proc.terminate()
        for proc in procs.values():
            proc.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
