"""Speech synthesis for the embedded corpus."""
