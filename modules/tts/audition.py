"""Choose the Monkey-King voice: render one line with many seeded ChatTTS speakers, listen, ship one.

``python -m app voice audition [--line …] [-n 8] [--out DIR]`` renders (``run_audition`` -> ``iter_audition``);
after listening, ``python -m app voice audition --choose K`` calls ``choose_candidate`` to copy candidate K to
``tts.chattts.speaker`` (``assets/voices/monkey_king.pt``) marked as auditioned, with the line and the
weights it was heard with. Auditioning only means something with the released weights: on random
weights every candidate is noise.

Files in the output folder: ``candidate_K_seedS.wav`` and ``candidate_K_seedS.pt`` per candidate,
and ``candidates.json`` listing them (what ``choose_candidate`` reads).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from modules.audio_types import AudioClip
from modules.model_files import locate_model
from modules.tts.chattts_tts import ChatTTSSynthesizer, check_model_dir
from modules.tts.normalize import normalize_for_speech
from modules.tts.service import write_wav
from modules.tts.settings import TtsSettings
from modules.tts.speaker import SpeakerEmbedding, draw_speaker, load_speaker, save_speaker

DEFAULT_LINE = "俺老孙来也！天命人，黑风山的黑熊精就在前头，跟俺走一趟。"
INDEX = "candidates.json"


@dataclass(frozen=True)
class Candidate:
    """One auditioned voice: its number, seed, rendered line and speaker file."""

    index: int
    seed: int
    wav: Path
    speaker: Path
    seconds: float


def iter_audition(
    synth: ChatTTSSynthesizer,
    out_dir: Path,
    line: str = DEFAULT_LINE,
    n_candidates: int = 8,
    seed0: int = 0,
) -> Iterator[Candidate]:
    """Render line with the voices seeds seed0 … seed0+n-1 name, writing each WAV + speaker as it is done."""
    if n_candidates < 1:
        raise ValueError(f"n_candidates must be at least 1, got {n_candidates}")
    spoken = normalize_for_speech(line)
    if not spoken:
        raise ValueError(f"the audition line {line!r} has nothing to say")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chat = synth.chat  # loads the model: candidates are drawn from its speaker statistics
    stats = (chat.speaker.std.float().cpu().numpy(), chat.speaker.mean.float().cpu().numpy())
    candidates: list[Candidate] = []
    for index in range(n_candidates):
        seed = seed0 + index
        speaker = replace(draw_speaker(seed, stats), line=line, model=str(synth.model_dir))
        chunks = [clip.samples for clip in synth.render(spoken, speaker=speaker)]
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
        stem = f"candidate_{index}_seed{seed}"
        wav = write_wav(AudioClip(samples, synth.sample_rate), out_dir / f"{stem}.wav")
        pt = save_speaker(speaker, out_dir / f"{stem}.pt")
        candidate = Candidate(index, seed, wav, pt, len(samples) / synth.sample_rate)
        candidates.append(candidate)
        _write_index(out_dir, line, synth, candidates)  # after each one: an interrupted audition still counts
        yield candidate


def audition(
    synth: ChatTTSSynthesizer,
    out_dir: Path,
    line: str = DEFAULT_LINE,
    n_candidates: int = 8,
    seed0: int = 0,
) -> list[Candidate]:
    """All candidates of iter_audition, rendered and written to out_dir (with candidates.json)."""
    return list(iter_audition(synth, out_dir, line, n_candidates, seed0))


def _write_index(out_dir: Path, line: str, synth: ChatTTSSynthesizer, candidates: list[Candidate]) -> None:
    index_data = {
        "line": line,
        "model": str(synth.model_dir),
        "checksums_verified": synth.verify_checksums,
        "candidates": [{**asdict(c), "wav": c.wav.name, "speaker": c.speaker.name} for c in candidates],
    }
    (out_dir / INDEX).write_text(json.dumps(index_data, ensure_ascii=False, indent=2), encoding="utf-8")


def list_candidates(out_dir: Path) -> list[Candidate]:
    """The candidates an earlier audition wrote to out_dir."""
    index_file = Path(out_dir) / INDEX
    if not index_file.is_file():
        raise FileNotFoundError(f"no audition in {out_dir}: run `python -m app voice audition` first")
    data = json.loads(index_file.read_text(encoding="utf-8"))
    return [
        Candidate(c["index"], c["seed"], Path(out_dir) / c["wav"], Path(out_dir) / c["speaker"], c["seconds"])
        for c in data["candidates"]
    ]


def choose_candidate(out_dir: Path, index: int, dest: Path, note: str = "") -> SpeakerEmbedding:
    """Ship candidate ``index`` of the audition in out_dir as the voice file dest (marked auditioned)."""
    candidates = {c.index: c for c in list_candidates(out_dir)}
    if index not in candidates:
        raise ValueError(f"no candidate {index} in {out_dir}; there are {sorted(candidates)}")
    data = json.loads((Path(out_dir) / INDEX).read_text(encoding="utf-8"))
    speaker = load_speaker(candidates[index].speaker)
    verified = bool(data.get("checksums_verified"))
    chosen = replace(
        speaker,
        auditioned=verified,  # a voice heard on weights that failed ChatTTS's check proves nothing
        source=f"audition candidate {index} (seed {speaker.seed})",
        note=note or ("" if verified else "auditioned on weights that skipped ChatTTS's sha256 check"),
    )
    dest = Path(dest)
    if dest.exists():
        shutil.copy2(dest, dest.with_name(dest.name + ".bak"))  # the voice it replaces stays recoverable
    save_speaker(chosen, dest)
    return chosen


def run_audition(
    settings: TtsSettings,
    repo_root: Path,
    line: str,
    n: int,
    out_dir: Path,
    *,
    choose: int | None = None,
    speaker_file: Path | None = None,
    seed0: int = 0,
) -> Iterator[str]:
    """``python -m app voice audition``: progress lines; with ``choose=K``, ship candidate K instead of rendering.

    Rendering needs the ChatTTS model (ModelNotFoundError names tts.chattts.model and the download).
    ``speaker_file`` is where a chosen voice goes (default: tts.chattts.speaker under repo_root).
    """
    dest = speaker_file or settings.chattts.speaker
    dest = dest if dest.is_absolute() else repo_root / dest
    if choose is not None:
        chosen = choose_candidate(out_dir, choose, dest)
        yield f"saved candidate {choose} (seed {chosen.seed}) as {dest}"
        if not chosen.auditioned:
            yield "not marked auditioned: those candidates were rendered on weights that skipped ChatTTS's sha256 check"
        return
    spec = settings.chattts.model
    root = check_model_dir(locate_model(spec, repo_root).path if spec.strip() else None, spec)
    synth = ChatTTSSynthesizer(settings.chattts, root, None)
    yield f"loading ChatTTS from {root} …"
    for candidate in iter_audition(synth, out_dir, line, n, seed0):
        yield f"candidate {candidate.index}: seed {candidate.seed}, {candidate.seconds:.1f} s -> {candidate.wav}"
    yield f"listen, then ship one: python -m app voice audition --choose K (writes {dest})"
