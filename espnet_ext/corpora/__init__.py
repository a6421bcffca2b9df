"""Data preparation (stage 1) for real corpora: each module turns a release into Kaldi data dirs."""
