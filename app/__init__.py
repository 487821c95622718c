"""wulewule (悟了悟了): an AI companion for Black Myth: Wukong players — UI, CLI and orchestration."""
