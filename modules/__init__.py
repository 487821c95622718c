"""Component packages: retrieval (rag), speech in (asr), speech out (tts) and drawing (image)."""
